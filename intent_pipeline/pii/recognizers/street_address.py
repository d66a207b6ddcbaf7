"""StreetAddressRecognizer: house number + street name + street type, in English and common
continental forms, with flat/apartment/unit parts.

- English: "12 high street", "4567 smith ports apt 123", "flat 3 14 kings rd", "221b baker st";
  street types are USPS Publication 28's suffixes and their abbreviations plus UK/IN/AU ones;
- prefix forms: "12 rue de la paix", "calle mayor 10", "via roma, 15", "avenida paulista 1000";
- German compounds: "hauptstraße 5", "müllerstr. 12a", "am schmidtweg 3".

A street type alone proves little ("500 reward points", "3 usb ports"), so types that are also
ordinary nouns in a support chat are accepted only when an address cue is present ("my address",
"ship to", "deliver to", "live at", "moved to"). After such a cue, a house number (up to four digits;
five digits and a word are a postcode and a town) or a flat / house-number part followed by one to
four words is an address whatever its street type, when a stop, a closing word or a postcode follows.
"""

from __future__ import annotations

from typing import ClassVar

import regex

from presidio_analyzer import Pattern, PatternRecognizer

from intent_pipeline.pii.recognizers.base import cue_regex

# USPS suffixes (and abbreviations) that are rarely anything but a street type.
STREET_TYPES = """alley aly allee annex anx arcade arc avenue ave av bayou byu beach bch bend bnd bluff blf bluffs
bottom btm boulevard blvd branch br bridge brg brook brk brooks burg bg burgs bypass byp camp cp canyon cyn
cape cpe causeway cswy center ctr centre circle cir circles cliff clf cliffs clfs close common commons
corner cor corners cors course crse court ct courts cts cove cv coves creek crk crescent cres cr crest
crossing xing crossroad crossroads curve curv dale dl dam dm divide dv drive dr drives dvs estate est
estates ests expressway expy extension ext extensions exts falls fls ferry fry field fld fields flds flat
flats ford frd fords forest frst forge frg forges fork frk forks frks fort ft freeway fwy garden gdn gardens
gdns gateway gtwy pine glen gln glens green grn greens grove grv groves harbor hbr harbors haven hvn heights hts
highway hwy hill hl hills hls hollow holw inlet islands iss isle junction jct junctions keys knoll knl
knolls knls lake lk lakes lks landing lndg lane ln loop mall manor mnr manors meadow mdw meadows mdws
mews mill ml mills mls motorway mount mt mountain mtn mountains mtns neck nck orchard orch oval overpass
opas parade parkway pkwy parkways pike pines pnes plain pln plains plns plaza plz prairie pr radial radl
ranch rnch rapid rpd rapids rpds ridge rdg ridges rdgs river riv road rd roads rds route rte shoal shl
shoals shls shore shr shores shrs skyway skwy spring spg springs spgs spurs square sq squares sqs stravenue
stra stream strm street st streets sts summit smt terrace ter tce throughway trwy trafficway trfy trail trl
trailer trlr tunnel tunl turnpike tpke underpass upas centers ctrs rue passage valley vly valleys vlys viaduct via villa vlg village
villages vlgs ville vl vista vis walk walks wall way wy ways well wells nagar marg chowk ganj zila
esplanade promenade quay wharf grange rise vale alleyway amble approach artery boardwalk brow circuit
concourse copse deviation downs driveway easement entrance fairway firetrail frontage glade highroad interchange
laneway lookout meander nook outlook pathway quays ramble reserve retreat ridgeway serviceway siding slope
subway tarn tollway tor turn wynd footway""".split()
# Street types that are also everyday nouns in support chat: only after an address cue.
AMBIGUOUS_TYPES = """park parks point points port ports view views light lights key lock locks pass path
place run rest row track trace station club mission union spur fork ramp loaf island mountain shores
course lodge crest center dip towers tower union unions break end edge top gap link return round reach follow chase brace pocket
strip""".split()
# Street words that come first ("rue de la paix"): non-English ones alone name a street.
PREFIX_TYPES = """rue chemin allée allee impasse quai calle avenida avda paseo carrer camino ronda pasaje
alameda viale piazza piazzale vicolo corso largo strada contrada borgo rua travessa praça praca rodovia
estrada rotonda incrocio stretto vico vial cañada urbanización urbanizacion callejón callejon
pasadizo rambla acceso carretera glorieta travesía travesia canale cuesta bajada barranco subida c/ c. avda. av.""".split() + [
    f"{street} {particle}" for street in ("avenue", "boulevard", "place", "route", "cours", "square")
    for particle in ("de", "du", "des", "de la", "d'")]
ENGLISH_PREFIX_TYPES = "avenue boulevard bd via route place plaza".split()
GERMAN_SUFFIXES = r"(?:straße|strasse|str\.|str\b|gasse|weg|platz|allee|damm|ufer|chaussee|steig|pfad|(?-i:ring)|-ring)"
ADDRESS_CUES = ["address", "addr", "ship to", "shipping to", "deliver to", "delivered to", "send to", "sent to",
                "live at", "living at", "moved to", "move to", "located at", "lives at", "post it to", "mail to",
                "ship it to", "send it to", "deliver it to", "mail it to", "should go to", "go to", "goes to",
                "billing address", "shipping address", "delivery address", "home address", "new address"]

_NUM = r"(?<![\w])\d{1,5}[a-z]?(?:\s?[-/]\s?\d{1,4}[a-z]?)?"
# A house number after the street name has at most 4 digits: "rue joseph maillet 57907" ends in a postcode.
_NUM_AFTER = r"(?<![\w])\d{1,4}[a-z]?(?:\s?[-/]\s?\d{1,4}[a-z]?)?(?!\d)"
_UNIT = (r"(?:(?:flat|apt|apartment|appartamento|unit|suite|ste|room|rm|floor|fl|studio|piso|puerta|piano|"
         r"bldg|building|block|h\.?\s?no|house\s+no|no|#)\.?\s*#?\s*\d{1,5}[a-z]?(?!\s?\d[a-z]{2}\b)|\d{1,3}(?:st|nd|rd|th)\s+floor)")
_STOP = (r"(?!(?:the|a|an|of|for|from|my|to|in|on|at|and|or|with|is|it|this|that|your|our|their|order|orders|"
         r"item|items|number|account|card|payment|refund|times|days|day|weeks|months|years|hours|usd|eur|gbp|"
         r"postcode|post|code|zip|please|pls|thanks|thx|instead|not|but|also|city|near|next|asap|if|when|because|"
         r"so|then|call|ring|deliver|send|ship|was|were|are|be|by|as)\b)")
_WORD = _STOP + r"[^\W\d_](?:[^\W\d_]|['’.-])*"  # no digits: "y9g2y1" is a postcode, not a street word
_TYPE = r"(?:{})\.?(?![\w])"
# What may follow an address written without a street type: a postcode ("145 ward ride 1316 mooremouth").
_POSTCODE_AHEAD = r"\d{4,6}(?![\w.,])|[a-z]{1,2}\d[a-z\d]?\s?\d[a-z]{2}\b|[a-z]\d[a-z]\s?\d[a-z]\d\b"


def _types(words: list[str]) -> str:
    return _TYPE.format("|".join(regex.escape(w) for w in sorted(set(words), key=len, reverse=True)))


def _english(types: str) -> str:
    # "12 high st", "flat 3, 12 high st", "flat 66c brenda drive", "12 high st apt 4"
    return rf"(?:{_UNIT},?\s+(?:{_NUM},?\s+)?|{_NUM},?\s+)(?:{_WORD}\s+){{1,4}}?{types}(?:,?\s+{_UNIT})?"


def _prefixed(prefixes: str, need_number: bool) -> str:
    words = rf"(?:\s+(?:{_WORD}|\d{{1,2}}(?:st|nd|rd|th)\b)){{1,5}}"
    number_after = rf",?\s+(?:n[°o.º]?\s*)?{_NUM_AFTER}(?:,?\s+{_UNIT})?"
    if need_number:
        return rf"(?:{_NUM},?\s+{prefixes}{words}|{prefixes}{words}{number_after})(?![\w])"
    return rf"(?:{_NUM},?\s+{prefixes}{words}|{prefixes}{words}(?:{number_after})?)(?![\w])"


# A street name that a house number follows ("via roma 15", "hauptstraße 5").
_NAMED_STREET = (rf"(?:\b{_types(PREFIX_TYPES + ENGLISH_PREFIX_TYPES)}(?:\s+{_WORD}){{1,5}}|[^\W\d_][\w-]*{GERMAN_SUFFIXES}),?\s+")


class StreetAddressRecognizer(PatternRecognizer):
    """Street addresses (see the module docstring); patterns and cues are overridable."""

    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("street number + name + type", _english(_types(STREET_TYPES)), 0.75),
        Pattern("foreign prefix street", _prefixed(rf"\b{_types(PREFIX_TYPES)}", need_number=False), 0.7),
        Pattern("english prefix street", _prefixed(rf"\b{_types(ENGLISH_PREFIX_TYPES)}", need_number=True), 0.6),
        Pattern("german street", rf"\b(?:(?:am|an der|auf dem|im|in der|zum|zur|alte|alter|neue|neuer|große|grosse|kleine|"
                                 rf"hohe|lange|obere|untere)\s+)?[^\W\d_][\w-]*{GERMAN_SUFFIXES}\s*{_NUM}(?![\w])", 0.7),
    ]
    CONTEXT: ClassVar[list[str]] = ADDRESS_CUES

    def __init__(self, patterns: list[Pattern] | None = None, context: list[str] | None = None,
                 supported_entity: str = "STREET_ADDRESS", supported_language: str = "en") -> None:
        context = list(self.CONTEXT if context is None else context)
        patterns = list(self.PATTERNS if patterns is None else patterns)
        if context:  # after an address cue: a number and 1-4 words, any street type
            cue = cue_regex(context)
            ambiguous = _english(_types(STREET_TYPES + AMBIGUOUS_TYPES))
            patterns.append(Pattern("after address cue", rf"(?<={cue}[\w\s:,'-]{{0,30}}?){ambiguous}", 0.7))
            lead = rf"(?<={cue}(?:[^\W\d]|[\s:,'-]){{0,30}}?\s)(?:(?:{_UNIT},?\s+)?{_NUM_AFTER}|{_UNIT}),?"
            patterns.append(Pattern("number + words after address cue",
                                    rf"(?<!{_NAMED_STREET}){lead}(?:\s+{_WORD}){{1,4}}?(?:,?\s+{_UNIT})?(?=\s*(?:[,.;!?]|$|\s(?:and|please|pls|"
                                    r"thanks|thx|asap|instead|from|in|for)\b))", 0.6))
            # Before a postcode, only words that hold no street type and follow no named street: in "12 high
            # st leeds 12345" and "calle mayor 10 madrid 28013" the words before the code are the town.
            patterns.append(Pattern("number + words before a postcode", rf"(?<!{_NAMED_STREET}){lead}"
                                    rf"(?:\s+(?!{_types(STREET_TYPES)}){_WORD}){{1,4}}?(?:,?\s+{_UNIT})?"
                                    rf"(?=\s+(?:{_POSTCODE_AHEAD}))", 0.6))
        super().__init__(supported_entity=supported_entity, patterns=patterns, context=context,
                         supported_language=supported_language, name=type(self).__name__)

    MIN_DIGITS: ClassVar[int] = 1  # the house number
