"""Builds intent_pipeline/pii/data/coarse_places.txt: countries, continents, regions and nationalities.

A place that large identifies nobody: HIPAA's Safe Harbor de-identification keeps every geographic unit
of a state and above, and removes only smaller ones (towns, streets, postcodes). Support messages name
countries for what they ask ("Do you work in China?", "ship to Canada", "exchange GBP for euros"), so
masking them erased the intent (BANKING77: 2% of all messages). The masker keeps these names and masks
every smaller place as before. A development tool, run by hand when the list should change (the list
is committed):

    pip install faker==40.63.0
    python tools/build_coarse_places.py

Country names come from Faker's en_US address provider (MIT licence), without the parenthesised
notes; the short forms, regions and nationality words below are written by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

from faker.providers.address.en_US import Provider

OUT = Path(__file__).resolve().parent.parent / "intent_pipeline" / "pii" / "data" / "coarse_places.txt"

SHORT_FORMS = """uk | u.k. | us | u.s. | usa | u.s.a. | uae | america | the states | britain | great britain | england |
scotland | wales | northern ireland | holland | russia | south korea | north korea | korea | czechia |
vietnam | iran | syria | laos | taiwan | hong kong | macau | bolivia | venezuela | tanzania | moldova |
the netherlands | the uk | the us | the usa | the united states | the united kingdom | the uae | the philippines"""
REGIONS = """europe | asia | africa | north america | south america | latin america | central america | the americas |
oceania | antarctica | australasia | the middle east | middle east | scandinavia | the caribbean | caribbean |
the balkans | the baltics | southeast asia | south east asia | east asia | eu | the eu | eea | the eea | eurozone |
the eurozone | european union | the european union | european economic area | the european economic area | sepa zone"""
NATIONALITIES = """american | british | english | scottish | welsh | irish | french | german | spanish | italian |
portuguese | dutch | belgian | swiss | austrian | swedish | norwegian | danish | finnish | icelandic | polish |
czech | slovak | hungarian | romanian | bulgarian | greek | turkish | russian | ukrainian | croatian | serbian |
slovenian | estonian | latvian | lithuanian | european | canadian | mexican | brazilian | argentinian | argentine |
chilean | colombian | peruvian | venezuelan | cuban | australian | new zealand | chinese | japanese | korean |
indian | pakistani | bangladeshi | thai | vietnamese | filipino | indonesian | malaysian | singaporean |
egyptian | moroccan | nigerian | kenyan | south african | israeli | saudi | emirati | qatari | iranian | iraqi"""

# Also common first names: spaCy sometimes reads "I spoke to Jordan" as a place, so these stay masked.
FIRST_NAMES = {"chad", "jordan", "georgia", "india", "israel", "kenya", "asia", "america"}


def main() -> None:
    countries = {re.sub(r"\s*\(.*\)", "", c).lower() for c in Provider.countries}
    hand = {p.strip() for block in (SHORT_FORMS, REGIONS, NATIONALITIES) for p in block.replace("\n", " ").split("|")}
    names = sorted((countries | hand) - FIRST_NAMES - {""})
    OUT.write_text("\n".join(names) + "\n", encoding="utf-8")
    print(f"{len(names)} names -> {OUT}")


if __name__ == "__main__":
    main()
