"""From Presidio's raw findings to the spans that are masked: overlaps resolved, names widened,
placeholders written (the town and postcode around an address: addresses.py).

Overlaps: the lower registry tier wins (a cue-anchored "account number 12345678" beats the phone
matcher reading the same digits; any pattern beats an NER span it overlaps: "bill INV-123" is a bill
id, not a name); within a tier the longest span wins (an e-mail beats the domain inside it), then
the surest; two overlapping street addresses are one. NER spans made only of plan and product words
("Premium", "Pro") are dropped, and so are spaCy's lower-case guesses made of noise ("lol ok").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import regex

from intent_pipeline.pii.recognizers.person_cue import NOT_NAME_WORDS, extend_name, follows_cue, is_title_case
from intent_pipeline.pii.registry import NER_ENTITIES
from intent_pipeline.pii.words import (
    CHAT_WORDS,
    foreign_stop_words,
    is_coarse_place,
    is_common,
    is_contraction,
    is_frequent_or_typo,
    is_gibberish,
    is_ordinary_word,
    stop_words,
)

# Words spaCy's small model tags as a name or place in capitalised support messages; none of them is
# personal data, and masking them would erase the intent ("Premium account", "Cancel my order").
NOT_PII_WORDS = frozenset(
    """pro premium standard basic gold platinum business corporate cancel refund order invoice bill
    account newsletter support customer service delivery shipping payment paypal visa mastercard
    amazon apple google delete switch card cards withdrawal atm atms pin sepa iban swift bic cvv cvc crypto
    euro euros gbp usd eur aud cad nzd chf jpy cny hkd sgd inr rub sek nok dkk pln czk huf mxn brl zar""".split()
)
# Function words that never stand inside a personal name or a place name. spaCy's small model runs a
# name over them in Title-Case and ALL-CAPS chat ("When [Will My Order Ship]", "[MY PACKAGE HAS NOT
# ARRIVED]"), so a statistical span is cut at them. Left out on purpose: name and town particles (van, de,
# la, al, bin, of, upon, on, in, and) and words that are also first names (will, may, mark, grace, joy).
NEVER_IN_NAME = frozenset(
    """i me my mine you your yours we us our ours they them their it its this that these those a an
    is are was were am be been being has have had having do does did not no cannot can could would should
    when where what why how which who whom whose please pls plz thanks thank hi hello hey
    to for from with about into at by than then there here if or but so as yet just also very""".split()
)
# ... and words that start a place name ("The Hague") but never stand inside a person's name.
NEVER_IN_PERSON = NEVER_IN_NAME | {"the"}
_CAP_WORD_BEFORE = regex.compile(r"(?<![\w'])((?:[A-Z]'[A-Z][a-z]+|[A-Z][a-z]+))\s+$")


@dataclass(frozen=True)
class PiiEntity:
    """One masked span, as offsets into the text given to `mask()` (the raw value itself is not kept)."""

    entity_type: str
    start: int
    end: int
    score: float


def is_ner_false_positive(value: str) -> bool:
    """A name or place that is no personal data: support words only ("Premium account"), or a country
    or continent, which names what is asked about ("Do you work in China?"), not who asks."""
    words = [w.strip(".,'!?") for w in value.lower().split()]
    return all(w in NOT_PII_WORDS for w in words if w) or is_coarse_place(value)


# Two readings of one street address that overlap ("kobeltplatz 819" and "819, garmisch-partenkirchen")
# are one address.
MERGED = frozenset({"STREET_ADDRESS"})


def _merge(chosen: list[PiiEntity], i: int, r) -> None:
    c = chosen[i]
    start, end = min(c.start, r.start), max(c.end, r.end)
    if all(end <= o.start or start >= o.end for j, o in enumerate(chosen) if j != i):
        chosen[i] = PiiEntity(c.entity_type, start, end, c.score)


_SPAN_WORD = regex.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
# A word this frequent in English is no name in a lower-case span that NER alone found ("git", "lol ok").
NOISE_MAX_RANK = 1000


@functools.lru_cache(maxsize=1 << 16)
def _noise_word(word: str) -> bool:
    low = word.lower()
    return (low in stop_words() or low in CHAT_WORDS or low in foreign_stop_words() or is_gibberish(word)
            or is_frequent_or_typo(low, NOISE_MAX_RANK))


def is_statistical_false_positive(text: str, start: int, end: int, entity_type: str = "PERSON") -> bool:
    """A name or place that spaCy's small model alone found in words that carry no capital ("lol ok",
    "ciao come stai", "bnmbnmbnm vcx", "AAAAHHH"), and that is no name: its words are repeated, or
    each is a stop, chat, gibberish or frequent word (for a name, one common word alone: "git"), or the message is
    not English (two or more stop words of another language, more than English ones: "tu connais une
    bonne recette"). Capitalised spans and spans after a cue (person_cue.py) are not judged here."""
    words = _SPAN_WORD.findall(text[start:end])
    if not words or any(w[:1].isupper() and not w.isupper() for w in words):
        return False
    lowered = [w.lower() for w in words]
    if len(words) > 1 and len(set(lowered)) == 1:
        return True  # "blah blah blah"
    if all(_noise_word(w) for w in words) or entity_type == "PERSON" and len(words) == 1 and is_common(words[0]):
        return True  # a lone dictionary word is no name ("git"), but can be a place ("barcelona")
    message = [w.lower() for w in _SPAN_WORD.findall(text)]
    foreign = sum(w in foreign_stop_words() for w in message)
    return foreign >= 2 and foreign > sum(w in stop_words() for w in message)


def _capitals_say_nothing(text: str, words: list, split_at_capital: bool) -> bool:
    """Whether the capitals of these words carry no sign of a name: they are ALL CAPS or oddly cased
    ("WiLL"), the message is written in Title Case (a capitalised function word was cut away, or most
    other words are capitalised), or the first word opens the message."""
    start, end = words[0].start(), words[-1].end()
    if split_at_capital or is_title_case(text, start, end):
        return True
    if not any(c.isalpha() for c in text[:start]):
        return True  # a sentence's first word is capitalised whatever it is
    return all(not (w.group()[:1].isupper() and w.group()[1:].islower()) for w in words)


def _no_name_piece(text: str, words: list, entity_type: str, fragment: bool, split_at_capital: bool) -> bool:
    """A piece of a statistical span that is no name: noise (`is_statistical_false_positive`), or only
    ordinary words whose capitals say nothing: one word ("Order", "CAFÉ"), several with a support word
    ("Café Order"), or several in a span that was cut at function words ("Order Ship" in "Will My Order
    Ship"). A place keeps a lone word the
    frequency list ranks as rare ("Leeds"), and a word right after a person cue stays ("Hi Mark")."""
    start, end = words[0].start(), words[-1].end()
    if is_statistical_false_positive(text, start, end, entity_type):
        return True
    values = [w.group() for w in words]
    if not all(is_ordinary_word(w) for w in values) or not _capitals_say_nothing(text, words, split_at_capital):
        return False
    if any(w.lower() in NOT_PII_WORDS for w in values):
        return True  # a support word makes it a product or request, cue or not ("Hello Café Order")
    if follows_cue(text, start):
        return False
    if entity_type != "PERSON":
        return all(_noise_word(w) for w in values)
    # Several ordinary words stay a possible name ("WILL SMITH") unless cut from a sentence; words joined
    # by a hyphen are one word ("top-ups").
    return len(text[start:end].split()) == 1 or fragment


def name_pieces(text: str, start: int, end: int, entity_type: str = "PERSON") -> list[tuple[int, int]]:
    """What remains of a statistical (spaCy) name or place span: nothing where it is an emoji or
    punctuation, or no name; cut at function words no name contains (NEVER_IN_NAME), each piece judged on
    its own, so "Hi John, my package" keeps "John" and "When Will My Order Ship" loses every word."""
    words = list(_SPAN_WORD.finditer(text, start, end))
    if not words:
        # no letter: an emoji or punctuation is no name, but digits stay masked ("18/01/1946")
        return [(start, end)] if any(c.isdigit() for c in text[start:end]) else []
    never = NEVER_IN_PERSON if entity_type == "PERSON" else NEVER_IN_NAME
    cut = [w.group().lower() in never or is_contraction(w.group()) for w in words]
    if not any(cut):
        return [] if _no_name_piece(text, words, entity_type, False, False) else [(start, end)]
    split_at_capital = any(c and w.group()[:1].isupper() for c, w in zip(cut, words))
    pieces, run = [], []
    for word, is_cut in [*zip(words, cut), (None, True)]:
        if not is_cut:
            run.append(word)
        elif run:
            if not _no_name_piece(text, run, entity_type, True, split_at_capital):
                pieces.append((run[0].start(), run[-1].end()))
            run = []
    return pieces


@dataclass(frozen=True)
class _Piece:
    """A piece of a statistical span, standing in for Presidio's result in `resolve_overlaps`."""

    entity_type: str
    start: int
    end: int
    score: float
    recognition_metadata: dict


def resolve_overlaps(results: Iterable, text: str, tiers: Mapping[str, int], default_tier: int = 1,
                     statistical: frozenset[str] = frozenset()) -> list[PiiEntity]:
    """Non-overlapping spans from Presidio `RecognizerResult`s (or `PiiEntity`s), in text order;
    `statistical` names the recognizers (spaCy's) whose lower-case finds are checked for noise."""
    def name(r) -> str:
        meta = getattr(r, "recognition_metadata", None) or {}
        return meta.get("recognizer_name", "")

    def tier(r) -> int:
        return tiers.get(name(r), default_tier)

    candidates = []
    for r in results:
        if name(r) in statistical and r.entity_type in NER_ENTITIES:
            meta = getattr(r, "recognition_metadata", None) or {}
            candidates += [_Piece(r.entity_type, s, e, r.score, meta)
                           for s, e in name_pieces(text, r.start, r.end, r.entity_type)]
        else:
            candidates.append(r)
    chosen: list[PiiEntity] = []
    for r in sorted(candidates, key=lambda r: (tier(r), -(r.end - r.start), -r.score, r.start)):
        if r.entity_type in NER_ENTITIES and is_ner_false_positive(text[r.start : r.end]):
            continue
        overlapping = [i for i, c in enumerate(chosen) if r.start < c.end and c.start < r.end]
        if not overlapping:
            chosen.append(PiiEntity(r.entity_type, r.start, r.end, round(float(r.score), 3)))
        elif len(overlapping) == 1 and chosen[overlapping[0]].entity_type == r.entity_type in MERGED:
            _merge(chosen, overlapping[0], r)
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
