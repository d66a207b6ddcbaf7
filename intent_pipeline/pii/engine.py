"""The masking engine: text in, typed placeholders out, one message or a batch.

`PiiMasker` runs spaCy's NER once per message (in batches, `nlp.pipe`), asks each registered recognizer whether it could match at all (a digit, a cue
word, an '@'), and runs Presidio's analyzer with just those; most chat messages need none. Findings
are resolved into non-overlapping spans (resolve.py), each street address is completed with its town
and postcode (addresses.py), and the spans are replaced by the registry's placeholders.

`mask_batch` masks identical texts once, can fork worker processes, and masks every other
occurrence of a name or place found anywhere in the batch (spaCy finds "Jones" in one sentence and
misses it in the next).

Raw PII values never leave this package in clear: `MaskResult.entities` holds offsets, and stage 1
keeps only salted digests of them (intent_pipeline/pii_digests.py).
"""

from __future__ import annotations

import functools
import multiprocessing
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import regex
from tqdm import tqdm

from intent_pipeline.pii.analyzer import LANGUAGE, artifacts_for, build_analyzer
from intent_pipeline.pii.registry import NER_ENTITIES, NER_LABELS, PLACEHOLDERS, entries
from intent_pipeline.pii.addresses import complete_addresses
from intent_pipeline.pii.resolve import PiiEntity, apply_placeholders, resolve_overlaps, widen_names
from intent_pipeline.pii.words import foreign_stop_words, is_ordinary_word
from intent_pipeline.text import clean_text

# Presidio's pattern scores: phone matches start at 0.4, spaCy entities 0.85, validated cards and
# IBANs 1.0; the weak SSN patterns (0.05) and unvalidated guesses stay below this line.
SCORE_THRESHOLD = 0.4
BATCH_SIZE = 256
# A found name spreads to messages that missed it only while it was missed at most this many times per
# message it was found in (mask_repeated_names).
SPREAD_MAX_MISSED_PER_FOUND = 2


@dataclass
class MaskResult:
    text: str  # the masked text
    entities: list[PiiEntity] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        return Counter(e.entity_type for e in self.entities)


class PiiMasker:
    """Replaces PII with typed placeholders; build it once (`get_masker`) and reuse it."""

    def __init__(self, spacy_model: str, mask_unknown_ids: bool = True, score_threshold: float = SCORE_THRESHOLD) -> None:
        self.spacy_model = spacy_model
        self.mask_unknown_ids = mask_unknown_ids
        self.score_threshold = score_threshold
        used = entries(mask_unknown_ids)
        self.analyzer, recognizers = build_analyzer(spacy_model, used)
        self.tiers = {r.name: e.tier for e, r in zip(used, recognizers)}
        self.statistical = frozenset(r.name for e, r in zip(used, recognizers) if e.statistical)
        foreign_stop_words()  # loaded before any worker is forked
        # Per recognizer: (entity types, digits its values need, cheap test or None); a recognizer with
        # neither (spaCy's) runs only when NER found something.
        self._gates = []
        for entry, recognizer in zip(used, recognizers):
            digits = entry.min_digits if entry.min_digits is not None else getattr(recognizer, "MIN_DIGITS", 0)
            gate = entry.could_match or (None if digits else getattr(recognizer, "could_match", None))
            self._gates.append((tuple(entry.placeholders), digits, gate))

    def _wanted(self, text: str, has_ner: bool) -> list[str]:
        wanted: dict[str, None] = {}
        n_digits = sum(map(str.isdigit, text))
        for entity_types, digits, gate in self._gates:
            if n_digits < digits:
                continue
            if digits or (gate(text) if gate is not None else has_ner):
                wanted.update(dict.fromkeys(entity_types))
        return list(wanted)

    def _mask_doc(self, doc, text: str | None = None) -> MaskResult:
        """Mask `text` (default: the doc's own), whose NER ran on `doc` (same length: see ner_view)."""
        text = doc.text if text is None else text
        if not text:
            return MaskResult(text)
        wanted = self._wanted(text, any(e.label_ in NER_LABELS for e in doc.ents))
        if not wanted:
            return MaskResult(text)  # no recognizer could report anything: skip Presidio's per-text overhead
        artifacts = artifacts_for(doc, self.analyzer.nlp_engine)
        results = self.analyzer.analyze(text, LANGUAGE, entities=wanted, score_threshold=self.score_threshold,
                                        nlp_artifacts=artifacts)
        found = resolve_overlaps(results, text, self.tiers, statistical=self.statistical)
        entities = complete_addresses(text, widen_names(text, found))
        return MaskResult(apply_placeholders(text, entities, PLACEHOLDERS), entities)

    def mask(self, text: str) -> MaskResult:
        """Mask one message (already cleaned with `clean_text`)."""
        return self._mask_serial([text])[0]

    def _mask_serial(self, texts: Sequence[str], progress: tqdm | None = None) -> list[MaskResult]:
        out = []
        nlp = self.analyzer.nlp_engine.nlp[LANGUAGE]
        views = [ner_view(t) for t in texts]
        as_typed = {t: doc for t, doc in zip(
            (t for t, v in zip(texts, views) if v != t),
            nlp.pipe((t for t, v in zip(texts, views) if v != t), batch_size=BATCH_SIZE))}
        for text, doc in zip(texts, nlp.pipe(views, batch_size=BATCH_SIZE)):
            if text in as_typed:
                add_entities(doc, as_typed[text])
            out.append(self._mask_doc(doc, text))
            if progress is not None:
                progress.update(1)
        return out

    def mask_batch(
        self, texts: Sequence[str], n_process: int = 1, progress: bool = False, chunk_size: int = 500,
        groups: Sequence[Hashable] | None = None,
    ) -> list[MaskResult]:
        """Mask many messages: identical texts are masked once; `n_process` > 1 forks worker processes.

        A name or place found in one message is masked wherever else it occurs in the batch, or only
        within the same group when `groups` (one key per text) is given: a server batching several
        users' requests passes one key per request, so one user's name never shows up as a mask in
        another user's message.
        """
        unique = list(dict.fromkeys(texts))
        bar = tqdm(total=len(unique), desc="masking PII", unit="msg", disable=not progress)
        with bar:
            if n_process <= 1 or len(unique) < 2 * chunk_size:
                masked = self._mask_serial(unique, bar)
            else:
                masked = self._mask_parallel(unique, n_process, chunk_size, bar)
        by_text = dict(zip(unique, masked))
        if groups is not None and len(groups) != len(texts):
            raise ValueError(f"groups has {len(groups)} keys for {len(texts)} texts")
        out: list[MaskResult | None] = [None] * len(texts)
        members: dict[Hashable, list[int]] = {}
        for i, key in enumerate(groups if groups is not None else [None] * len(texts)):
            members.setdefault(key, []).append(i)
        for indexes in members.values():
            group_texts = list(dict.fromkeys(texts[i] for i in indexes))
            spread = dict(zip(group_texts, mask_repeated_names(group_texts, [by_text[t] for t in group_texts])))
            for i in indexes:
                out[i] = spread[texts[i]]
        return out  # type: ignore[return-value]

    def _mask_parallel(self, texts: list[str], n_process: int, chunk_size: int, bar: tqdm) -> list[MaskResult]:
        chunks = [texts[i : i + chunk_size] for i in range(0, len(texts), chunk_size)]
        # Fork shares this already-loaded masker with the workers (no model reload per process).
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        out: list[MaskResult] = []
        global _worker_masker
        _worker_masker = self  # forked workers inherit it; spawned ones build their own
        with context.Pool(n_process, initializer=_init_worker, initargs=(self.spacy_model, self.mask_unknown_ids)) as pool:
            for result in pool.imap(_mask_chunk, chunks):
                out.extend(result)
                bar.update(len(result))
        return out


def ner_view(text: str) -> str:
    """What spaCy reads first: an ALL-CAPS message in Title Case, else the message itself.

    The small model finds no names in capitals ("I SPOKE TO MARK JOHNSON") but does once they are
    cased as names usually are; the offsets stay valid because only the case changes (a message
    whose length would change, e.g. with "ß", is read as it is).
    """
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 4 or sum(c.isupper() for c in letters) < 0.8 * len(letters):
        return text
    cased = text.title()
    return cased if len(cased) == len(text) else text


def add_entities(doc, other) -> None:
    """Add `other`'s entities (same text, other casing) to `doc` where they overlap none of its own.

    An ALL-CAPS message is read twice: in Title Case spaCy finds the names, as typed it sometimes
    finds a place ("FROM LEEDS") that Title Case hides.
    """
    from spacy.util import filter_spans

    extra = [doc.char_span(e.start_char, e.end_char, label=e.label_) for e in other.ents]
    doc.ents = filter_spans(list(doc.ents) + [span for span in extra if span is not None])


def mask_repeated_names(texts: Sequence[str], results: list[MaskResult]) -> list[MaskResult]:
    """Mask every other occurrence of a name or place found anywhere in the batch.

    Values made only of common or stop words are left out: a lower-case cue name that happens to be a
    word must not spread through the batch. So is a value left unmasked in more than
    `SPREAD_MAX_MISSED_PER_FOUND` messages for each one it was found in: spaCy finds "Jones" in one
    sentence and misses it in the next, but a word it called a name in 8 of 300 messages ("ATM") is a word.
    """
    found: dict[str, str] = {}
    found_in: Counter = Counter()
    for text, result in zip(texts, results):
        names = {text[e.start : e.end].lower(): e.entity_type for e in result.entities if e.entity_type in NER_ENTITIES}
        for value, entity_type in names.items():
            if not all(is_ordinary_word(w) for w in value.split()):
                found[value] = entity_type
                found_in[value] += 1
    if not found:
        return results
    pattern = _alternatives(found)
    missed = [_missed(pattern, text, result) for text, result in zip(texts, results)]
    missed_in = Counter(value for extra in missed for value in {m.group(0).lower() for m in extra})
    spread = {v for v in found if missed_in[v] <= SPREAD_MAX_MISSED_PER_FOUND * found_in[v]}
    out = []
    for text, result, extra in zip(texts, results, missed):
        entities = [PiiEntity(found[m.group(0).lower()], m.start(), m.end(), 0.5)
                    for m in extra if m.group(0).lower() in spread]
        if entities:
            entities = widen_names(text, sorted(result.entities + entities, key=lambda e: e.start))
            result = MaskResult(apply_placeholders(text, entities, PLACEHOLDERS), entities)
        out.append(result)
    return out


def _alternatives(values: Iterable[str]) -> regex.Pattern:
    alternatives = "|".join(regex.escape(v) for v in sorted(values, key=len, reverse=True))
    return regex.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", regex.IGNORECASE)


def _missed(pattern: regex.Pattern, text: str, result: MaskResult) -> list:
    """The occurrences of found values in `text` that its own masking left alone."""
    return [m for m in pattern.finditer(text) if all(m.end() <= e.start or m.start() >= e.end for e in result.entities)]


_worker_masker: PiiMasker | None = None


def _init_worker(spacy_model: str, mask_unknown_ids: bool) -> None:
    global _worker_masker
    if _worker_masker is None or (_worker_masker.spacy_model, _worker_masker.mask_unknown_ids) != (
            spacy_model, mask_unknown_ids):
        _worker_masker = get_masker(spacy_model, mask_unknown_ids)


def _mask_chunk(texts: list[str]) -> list[MaskResult]:
    assert _worker_masker is not None
    return _worker_masker._mask_serial(texts)


def get_masker(spacy_model: str, mask_unknown_ids: bool | None = None) -> PiiMasker:
    """The masker for `spacy_model`, built once per process (loading spaCy + Presidio takes seconds).

    `mask_unknown_ids` defaults to the MASK_UNKNOWN_IDS setting.
    """
    if mask_unknown_ids is None:
        from config import get_settings

        mask_unknown_ids = get_settings().mask_unknown_ids
    return _cached_masker(spacy_model, mask_unknown_ids)


@functools.lru_cache(maxsize=4)
def _cached_masker(spacy_model: str, mask_unknown_ids: bool) -> PiiMasker:
    return PiiMasker(spacy_model, mask_unknown_ids)


def mask_then_truncate(masker: PiiMasker, texts: Sequence[str], max_chars: int,
                       groups: Sequence[Hashable] | None = None) -> list[tuple[str, bool]]:
    """Clean and mask whole messages, then cut each masked text to `max_chars`: (text, was it cut).

    Masking comes first because a cut can split a phone number or an address so that no recognizer
    sees it, and the unmasked half would then reach the model and the log. A cut never leaves half a
    placeholder behind.
    """
    results = masker.mask_batch([clean_text(t) for t in texts], n_process=1, groups=groups)
    return [truncate_masked(r.text, max_chars) for r in results]


_PLACEHOLDER_AT_END = regex.compile(r"\[[A-Z_]*$")


def truncate_masked(text: str, max_chars: int) -> tuple[str, bool]:
    """`text` cut to `max_chars` characters, without leaving a partial "[PHONE" at the end."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text, False
    cut = text[:max_chars]
    return _PLACEHOLDER_AT_END.sub("", cut).rstrip(), True
