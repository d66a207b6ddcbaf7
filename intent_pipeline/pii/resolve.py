"""From Presidio's raw findings to the spans that are masked: overlaps resolved, names widened,
placeholders written.

Overlaps: the lower registry tier wins (a cue-anchored "account number 12345678" beats the phone
matcher reading the same digits; any pattern beats an NER span it overlaps: "bill INV-123" is a bill
id, not a name); within a tier the longest span wins (an e-mail beats the domain inside it), then
the surest. NER spans made only of plan and product words ("Premium", "Pro") are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import regex

from intent_pipeline.pii.recognizers.person_cue import NOT_NAME_WORDS, extend_name, is_title_case
from intent_pipeline.pii.registry import NER_ENTITIES
from intent_pipeline.pii.words import is_common_or_typo

# Words spaCy's small model tags as a name or place in capitalised support messages; none of them is
# personal data, and masking them would erase the intent ("Premium account", "Cancel my order").
NOT_PII_WORDS = frozenset(
    """pro premium standard basic gold platinum business corporate cancel refund order invoice bill
    account newsletter support customer service delivery shipping payment paypal visa mastercard
    amazon apple google delete switch""".split()
)
_CAP_WORD_BEFORE = regex.compile(r"(?<![\w'])((?:[A-Z]'[A-Z][a-z]+|[A-Z][a-z]+))\s+$")


@dataclass(frozen=True)
class PiiEntity:
    """One masked span, as offsets into the text given to `mask()` (the raw value itself is not kept)."""

    entity_type: str
    start: int
    end: int
    score: float


def is_ner_false_positive(value: str) -> bool:
    words = [w.strip(".,'!?") for w in value.lower().split()]
    return all(w in NOT_PII_WORDS for w in words if w)


def resolve_overlaps(results: Iterable, text: str, tiers: Mapping[str, int], default_tier: int = 1) -> list[PiiEntity]:
    """Non-overlapping spans from Presidio `RecognizerResult`s (or `PiiEntity`s), in text order."""
    def tier(r) -> int:
        meta = getattr(r, "recognition_metadata", None) or {}
        return tiers.get(meta.get("recognizer_name", ""), default_tier)

    chosen: list[PiiEntity] = []
    for r in sorted(results, key=lambda r: (tier(r), -(r.end - r.start), -r.score, r.start)):
        if r.entity_type in NER_ENTITIES and is_ner_false_positive(text[r.start : r.end]):
            continue
        if all(r.end <= c.start or r.start >= c.end for c in chosen):
            chosen.append(PiiEntity(r.entity_type, r.start, r.end, round(float(r.score), 3)))
    return sorted(chosen, key=lambda e: e.start)


def widen_names(text: str, entities: list[PiiEntity]) -> list[PiiEntity]:
    """A masked name takes in the rest of the name: a capitalised first name before it, a surname and
    particles after it ("Ashley [PERSON]" and "[PERSON] connolly" cannot remain)."""
    out: list[PiiEntity] = []
    for i, entity in enumerate(entities):
        start, end = entity.start, entity.end
        if entity.entity_type == "PERSON":
            before = _CAP_WORD_BEFORE.search(text[:start])
            if (before and before.group(1).lower() not in NOT_NAME_WORDS and not is_title_case(text, start, end)
                    and (not out or out[-1].end <= before.start(1))):
                start = before.start(1)
            following = entities[i + 1].start if i + 1 < len(entities) else len(text)
            end = min(max(end, extend_name(text, start, end)), max(end, following))
        out.append(entity if (start, end) == (entity.start, entity.end)
                   else PiiEntity(entity.entity_type, start, end, entity.score))
    return out


_CITY_WORD = (r"(?!(?:please|pls|plz|thanks|thx|instead|not|and|or|but|asap|the|a|to|for|in|on|at|is|it|its|it's|uk|"
              r"usa|us|then|if|so|postcode|post|code|postal|zip|zipcode|plz|pin|eircode)\b)[^\W\d_][\w'’.-]*")
_CITY_BETWEEN = regex.compile(rf"^[\s,]+((?:{_CITY_WORD}[\s,]+){{0,2}}{_CITY_WORD}),?\s*(?:-\s*)?$", regex.IGNORECASE)
_CITY_AFTER = regex.compile(rf"^(?:[\s,]+|\s*-\s*)((?:{_CITY_WORD}\s+){{0,1}}{_CITY_WORD})(?=\s*(?:[,.;!?]|$|\s(?!{_CITY_WORD})))",
                            regex.IGNORECASE)


_CODE_AFTER_STREET = regex.compile(
    rf"^[\s,]+(?:{_CITY_WORD}[\s,]+){{0,3}}(?:-\s*)?(\d{{4,6}})(?![\w$€£%]|[.,]\d|\s?(?:usd|eur|gbp|dollars?|euros?)\b)",
    regex.IGNORECASE)


_SEPARATOR = regex.compile(r"^[\s,\-]*$")
_TOWN_TYPES = frozenset({"PERSON", "LOCATION"})


def _codes_after_streets(text: str, entities: list[PiiEntity]) -> list[PiiEntity]:
    """Postcodes (and towns NER called a person) right after a street address; see complete_addresses."""
    out = list(entities)
    for i, street in enumerate(entities):
        if street.entity_type != "STREET_ADDRESS":
            continue
        j, cursor = i + 1, street.end
        # a town NER found between street and code is a town, whatever NER called it
        while j < len(out) and out[j].entity_type in _TOWN_TYPES and _SEPARATOR.match(text[cursor : out[j].start]):
            out[j] = PiiEntity("LOCATION", out[j].start, out[j].end, out[j].score)
            cursor, j = out[j].end, j + 1
        limit = out[j].start if j < len(out) else len(text)
        code = _CODE_AFTER_STREET.match(text[cursor:limit])
        if code:
            out.append(PiiEntity("POSTCODE", cursor + code.start(1), cursor + code.end(1), 0.6))
        elif (j < len(out) and out[j].entity_type == "ID" and text[out[j].start : out[j].end].isdigit()
              and len(text[out[j].start : out[j].end]) <= 6 and _CODE_AFTER_STREET.match(text[cursor : out[j].end])):
            out[j] = PiiEntity("POSTCODE", out[j].start, out[j].end, out[j].score)  # an Indian PIN, not an id
    return sorted(out, key=lambda e: e.start)


def complete_addresses(text: str, entities: list[PiiEntity]) -> list[PiiEntity]:
    """An address is read as a whole: a 4-6 digit code within three words after a street address is
    its postcode ("calle mayor 10, 28013 madrid"); the town is 1-3 words between a street address and
    its postcode ("12 high st, leeds, ls1 4ab") or 1-2 words right after such a postcode."""
    entities = _codes_after_streets(text, entities)
    added: list[PiiEntity] = []
    for first, second in zip(entities, entities[1:]):
        if first.entity_type == "STREET_ADDRESS" and second.entity_type == "POSTCODE":
            between = _CITY_BETWEEN.match(text[first.end : second.start])
            if between:  # words between a street and its postcode are its town, even "west hunter"
                added.append(PiiEntity("LOCATION", first.end + between.start(1), first.end + between.end(1), 0.5))
    for i, entity in enumerate(entities):
        after_address = i > 0 and entities[i - 1].entity_type == "STREET_ADDRESS" and not text[
            entities[i - 1].end : entity.start].strip(" ,-").count(" ") > 2
        if entity.entity_type == "POSTCODE" and after_address:
            limit = entities[i + 1].start if i + 1 < len(entities) else len(text)
            after = _CITY_AFTER.match(text[entity.end : limit])
            if after and not all(is_common_or_typo(w) for w in after.group(1).split()):
                added.append(PiiEntity("LOCATION", entity.end + after.start(1), entity.end + after.end(1), 0.5))
    if not added:
        return entities
    kept = [a for a in added if all(a.end <= e.start or a.start >= e.end for e in entities)]
    return sorted(entities + kept, key=lambda e: e.start)


def apply_placeholders(text: str, entities: list[PiiEntity], placeholders: Mapping[str, str]) -> str:
    parts, cursor = [], 0
    for entity in entities:
        parts.append(text[cursor : entity.start])
        parts.append(placeholders[entity.entity_type])
        cursor = entity.end
    parts.append(text[cursor:])
    return "".join(parts)
