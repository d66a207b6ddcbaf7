"""From Presidio's raw findings to the spans that are masked: overlaps resolved, names widened,
placeholders written (the town and postcode around an address: addresses.py).

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


def apply_placeholders(text: str, entities: list[PiiEntity], placeholders: Mapping[str, str]) -> str:
    parts, cursor = [], 0
    for entity in entities:
        parts.append(text[cursor : entity.start])
        parts.append(placeholders[entity.entity_type])
        cursor = entity.end
    parts.append(text[cursor:])
    return "".join(parts)
