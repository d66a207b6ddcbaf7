"""Text cleaning and PII masking shared by stage 1, the app and the API: raw message -> masked message.

`clean_text()` normalises a message (Unicode NFKC, control and zero-width characters removed,
whitespace folded). `PiiMasker` then replaces personal data with typed placeholders, using spaCy
NER (names, places) and Presidio recognizers chosen for chat messages:

| placeholder     | found by                                                                 |
| --------------- | ------------------------------------------------------------------------ |
| `[PERSON]`      | spaCy NER (PERSON), via Presidio's SpacyRecognizer; plus context names:  |
|                 | "from/for/to/by/with/of/named/called/is/am/i'm" + two capitalised words  |
| `[LOCATION]`    | spaCy NER (GPE, LOC, FAC)                                                |
| `[EMAIL]`       | Presidio EmailRecognizer (tldextract's bundled suffix list, no network)  |
| `[PHONE]`       | Presidio PhoneRecognizer (libphonenumber; US, GB, DE, FR, IN, CA, ...)    |
| `[CREDIT_CARD]` | Presidio CreditCardRecognizer (Luhn-checked)                              |
| `[IBAN]`        | Presidio IbanRecognizer (checksum-validated)                             |
| `[US_SSN]`      | Presidio UsSsnRecognizer                                                 |
| `[IP_ADDRESS]`  | Presidio IpRecognizer                                                    |
| `[URL]`         | URL regex below (scheme, `www.` or a common TLD)                         |
| `[ORDER_ID]`, `[INVOICE_ID]`, `[BILL_ID]` | ID regexes below: the number after "order"/"invoice"/"bill" (the keyword stays), `INV-123...`, `#1234...` |

Only the value is replaced, so `purchase order# 9511291.` becomes `purchase order# [ORDER_ID].`
Deliberately left out: UK NHS, date, bank-number and driver-licence recognizers, whose patterns read
US phone numbers, dates and amounts as PII; and NER labels ORG/NORP/DATE (product words such as
"Pro" or "Premium" would be masked). Seed-data intent words are tested to stay unmasked.

Context names: spaCy's small model labels "bill from Justin Edwards" as ORG (ignored above), so a
capitalised first + last name right after a preposition or "named"/"is"/"am" is masked as a PERSON,
as are multi-word ORG spans in that position, unless a word is in NOT_PII_WORDS or the whole message
is Title Case (where every word is capitalised and capitals say nothing). When a name is masked, an
adjacent capitalised word joins it, so "Ashley [PERSON]" cannot remain.

Raw PII values never leave this module in clear: `MaskResult.entities` holds offsets, and stage 1
keeps only salted digests of them (intent_pipeline/pii_digests.py).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from intent_pipeline.errors import PipelineError

log = logging.getLogger(__name__)

# Column names accepted for message text and intent label in uploaded or raw CSV files.
TEXT_COLUMNS = ("text", "query", "message", "utterance")
LABEL_COLUMNS = ("label", "intent")
PLACEHOLDERS = {
    "PERSON": "[PERSON]",
    "LOCATION": "[LOCATION]",
    "EMAIL_ADDRESS": "[EMAIL]",
    "PHONE_NUMBER": "[PHONE]",
    "CREDIT_CARD": "[CREDIT_CARD]",
    "IBAN_CODE": "[IBAN]",
    "US_SSN": "[US_SSN]",
    "IP_ADDRESS": "[IP_ADDRESS]",
    "URL": "[URL]",
    "ORDER_ID": "[ORDER_ID]",
    "INVOICE_ID": "[INVOICE_ID]",
    "BILL_ID": "[BILL_ID]",
}
# Presidio's pattern scores: phone matches start at 0.4, SpaCy entities 0.85, validated cards and
# IBANs 1.0; the weak SSN patterns (0.05) and unvalidated guesses stay below this line.
SCORE_THRESHOLD = 0.4
NER_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}
# Words spaCy's small model tags as a name or place in capitalised support messages; none of them is
# personal data, and masking them would erase the intent ("Premium account", "Cancel my order").
NOT_PII_WORDS = frozenset(
    """pro premium standard basic gold platinum business corporate cancel refund order invoice bill
    account newsletter support customer service delivery shipping payment paypal visa mastercard
    amazon apple google delete switch""".split()
)
# Capitalised words that start sentences or name products rather than people: never part of a
# context name (see _context_names).
_NOT_NAME_WORDS = NOT_PII_WORDS | frozenset(
    """i my your our his her their the a an this that these those please hi hello hey dear thanks thank
    how what where when why who which can could would will shall is are was do does did get need want
    help me you it we they mr mrs ms dr new club""".split()
)
_CAP = r"(?:[A-Z]'[A-Z][a-z]+|[A-Z][a-z]+)"
_NAME_CONTEXT = r"(?<![\w'])(?i:from|for|to|by|with|of|named|called|is|am|i'm|im)\s+(?:(?i:mr|mrs|ms|dr)\.?\s+)?"
_CONTEXT_NAME = re.compile(_NAME_CONTEXT + rf"(?P<value>{_CAP}(?:-{_CAP})?\s+{_CAP}(?:-{_CAP})?)(?![\w'])")
_AFTER_CONTEXT = re.compile(_NAME_CONTEXT + r"$")
_WORD_BEFORE = re.compile(rf"(?<![\w'])({_CAP})\s+$")
_WORD_AFTER = re.compile(rf"^\s+({_CAP})(?![\w'])")
_WORD = re.compile(r"[A-Za-z][\w'-]*")
CONTEXT_NAME_SCORE = 0.6  # below spaCy's 0.85: a PERSON/LOCATION found by NER wins a tie
LANGUAGE = "en"
_NER_TYPES = frozenset(NER_LABELS.values())
_ID_TYPES = frozenset({"ORDER_ID", "INVOICE_ID", "BILL_ID"})
# Recognizers that cannot match a text lacking these characters are skipped for it: most chat
# messages have no digit, '@' or dotted name, and the phone/IBAN/card matchers dominate the cost.
_DIGIT_TYPES = ("PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", *sorted(_ID_TYPES))
_HAS_DIGIT = re.compile(r"\d")
_HAS_DOMAIN = re.compile(r"\w\.\w")
_SPACES = re.compile(r"\s+")
_ID_VALUE = r"(?P<value>(?:[A-Za-z]{1,4}-?)?\d[\w-]{3,})(?<![-_])\b"
_KEYWORD_ID = re.compile(
    r"(?i)\b(?P<kw>order|purchase|invoice|bill)\b(?:\s+(?:number|no\.?|num|nr\.?|id|ref(?:erence)?))?\s*[#:]?\s*#?\s*"
    + _ID_VALUE
)
_KEYWORD_ENTITY = {"order": "ORDER_ID", "purchase": "ORDER_ID", "invoice": "INVOICE_ID", "bill": "BILL_ID"}
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(?P<value>INV-?\d{4,})\b"), "INVOICE_ID"),
    (re.compile(r"(?i)\b(?P<value>(?:ORD|PO)-?\d{4,})\b"), "ORDER_ID"),
    (re.compile(r"(?<![\w#])(?P<value>#\s?\d{4,})\b"), "ORDER_ID"),
    (
        re.compile(
            r"(?i)(?P<value>\b(?:https?://|www\.)[^\s<>\"']+"
            r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|uk|de|fr|es|it|nl|info|biz|us|ca|au|eu|"
            r"app|dev|shop|store)\b(?:/[^\s<>\"']*)?)"
        ),
        "URL",
    ),
)
_URL_TRAILING = ".,;:!?)]}'\""


def find_column(columns: Sequence[object], candidates: Sequence[str], what: str, where: str = "the CSV") -> str:
    """The first column whose trimmed, lower-cased name is one of `candidates` (in their order)."""
    by_name = {str(c).strip().lower(): c for c in columns}
    for name in candidates:
        if name in by_name:
            return by_name[name]
    raise PipelineError(
        f"{where} has no {what} column: found {', '.join(map(str, columns)) or 'none'}; "
        f"expected one of {', '.join(candidates)}"
    )


@dataclass(frozen=True)
class PiiEntity:
    """One masked span, as offsets into the text given to `mask()` (the raw value itself is not kept)."""

    entity_type: str
    start: int
    end: int
    score: float


@dataclass
class MaskResult:
    text: str  # the masked text
    entities: list[PiiEntity] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        return Counter(e.entity_type for e in self.entities)


def clean_text(text: object) -> str:
    """Unicode NFKC, control/format characters dropped, whitespace folded to single spaces."""
    text = unicodedata.normalize("NFKC", "" if text is None else str(text))
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp"):
            kept.append(" ")  # tabs and line breaks separate words
        elif category not in ("Cf", "Cs", "Co", "Cn"):
            kept.append(char)  # zero-width and unassigned characters vanish without a trace
    return _SPACES.sub(" ", "".join(kept)).strip()


@functools.lru_cache(maxsize=1)
def offline_tld_extractor():
    """tldextract's default extractor fetches the public suffix list over the network on first use
    (Presidio's email check calls it); an empty URL list uses the snapshot bundled with the package."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def _build_analyzer(spacy_model: str):
    """Presidio AnalyzerEngine with the recognizers in the module docstring, fully offline."""
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UsSsnRecognizer,
    )

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return offline_tld_extractor()(pattern_text).fqdn != ""

    class RegexIdRecognizer(EntityRecognizer):
        """Order/invoice/bill numbers and URLs: only the `value` group is reported."""

        def __init__(self) -> None:
            super().__init__(supported_entities=["ORDER_ID", "INVOICE_ID", "BILL_ID", "URL"], name="RegexIdRecognizer")

        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            found = []
            for match in _KEYWORD_ID.finditer(text):
                kind = _KEYWORD_ENTITY[match.group("kw").lower()]
                found.append(RecognizerResult(kind, match.start("value"), match.end("value"), 0.9))
            for pattern, kind in _PATTERNS:
                for match in pattern.finditer(text):
                    start, end = match.span("value")
                    if kind == "URL":
                        end = start + len(match.group("value").rstrip(_URL_TRAILING))
                    found.append(RecognizerResult(kind, start, end, 0.85))
            return [r for r in found if r.entity_type in entities]

    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)  # one INFO line per recognizer otherwise
    nlp = _load_ner_only(spacy_model)
    # Every other NER label (ORG, PRODUCT, CARDINAL, ...) is dropped: product and plan names are not PII.
    ignored = sorted(set(nlp.get_pipe("ner").labels) - set(NER_LABELS))
    ner_config = NerModelConfiguration(model_to_presidio_entity_mapping=NER_LABELS, labels_to_ignore=ignored)
    nlp_engine = SpacyNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": spacy_model}], ner_model_configuration=ner_config)
    nlp_engine.nlp = {LANGUAGE: nlp}  # loaded above with only NER: no load() and its download fallback
    recognizers = [
        SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]),
        OfflineEmailRecognizer(),
        PhoneRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        UsSsnRecognizer(),
        IpRecognizer(),
        RegexIdRecognizer(),
    ]
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=[LANGUAGE])


def _load_ner_only(spacy_model: str):
    """The spaCy pipeline with NER and what it needs, nothing else (NER is most of stage 1's time).

    In the en_core_web_* models the NER has its own embedding layer, so the shared `tok2vec` (used
    only by the tagger and parser) is dropped too: about 1.5x faster. Models whose NER listens to a
    shared embedding component fail without it and are loaded with it.
    """
    import spacy

    unneeded = ["tagger", "parser", "attribute_ruler", "lemmatizer", "senter", "morphologizer"]
    try:
        try:
            nlp = spacy.load(spacy_model, exclude=["tok2vec", *unneeded])
            nlp("Check that Anna Smith in Paris is found.")
            return nlp
        except (ValueError, KeyError):
            return spacy.load(spacy_model, exclude=unneeded)
    except OSError:
        raise PipelineError(f"spaCy model {spacy_model!r} is not installed (set SPACY_MODEL or pip install it)") from None


def _is_ner_false_positive(value: str) -> bool:
    words = [w.strip(".,'!?") for w in value.lower().split()]
    return all(w in NOT_PII_WORDS for w in words if w)


def _is_name_word(word: str) -> bool:
    return word.lower() not in _NOT_NAME_WORDS


def _is_title_case(text: str, start: int, end: int) -> bool:
    """Most words outside [start, end) are capitalised (first word and "I" aside): capitals carry no signal."""
    words = [m.group(0) for m in _WORD.finditer(text) if m.end() <= start or m.start() >= end][1:]
    words = [w for w in words if w != "I"]
    return len(words) >= 2 and sum(w[0].isupper() for w in words) > len(words) / 2


def _context_names(text: str, doc) -> list[PiiEntity]:
    """Capitalised first + last names right after "from", "for", "named", "is", ... (see module docstring).

    spaCy's small model often tags them ORG ("bill from Justin Edwards"), which is otherwise ignored.
    """
    spans = [
        m.span("value") for m in _CONTEXT_NAME.finditer(text)
        if all(_is_name_word(w) for w in re.split(r"[\s-]+", m.group("value")))
    ]
    for ent in doc.ents:
        words = ent.text.split()
        if (
            ent.label_ == "ORG" and len(words) >= 2
            and all(re.fullmatch(_CAP, w) and _is_name_word(w) for w in words)
            and _AFTER_CONTEXT.search(text[: ent.start_char])
        ):
            spans.append((ent.start_char, ent.end_char))
    return [
        PiiEntity("PERSON", start, end, CONTEXT_NAME_SCORE)
        for start, end in dict.fromkeys(spans) if not _is_title_case(text, start, end)
    ]


def _widen_names(text: str, entities: list[PiiEntity]) -> list[PiiEntity]:
    """A masked name takes in an adjacent capitalised word (a first or last name NER left out)."""
    out: list[PiiEntity] = []
    for i, entity in enumerate(entities):
        start, end = entity.start, entity.end
        if entity.entity_type == "PERSON" and not _is_title_case(text, start, end):
            before = _WORD_BEFORE.search(text[:start])
            if before and _is_name_word(before.group(1)) and (not out or out[-1].end <= before.start(1)):
                start = before.start(1)
            after = _WORD_AFTER.match(text[end:])
            following = entities[i + 1].start if i + 1 < len(entities) else len(text)
            if after and _is_name_word(after.group(1)) and end + after.end(1) <= following:
                end += after.end(1)
        out.append(PiiEntity(entity.entity_type, start, end, entity.score) if (start, end) != (entity.start, entity.end) else entity)
    return out


def _resolve_overlaps(results: list, text: str) -> list[PiiEntity]:
    """Pattern matches beat NER spans they overlap (`bill INV-123` is a bill id, not a name); then the
    longest span wins (an email beats the domain inside it), then the surest."""
    chosen: list[PiiEntity] = []
    def priority(r) -> tuple:
        # Keyword-anchored ids win ties: "purchase 113542617735902" passes the Luhn check but is an order.
        return (r.entity_type in _NER_TYPES, -(r.end - r.start), r.entity_type not in _ID_TYPES, -r.score, r.start)

    for r in sorted(results, key=priority):
        if r.entity_type in _NER_TYPES and _is_ner_false_positive(text[r.start : r.end]):
            continue
        if all(r.end <= c.start or r.start >= c.end for c in chosen):
            chosen.append(PiiEntity(r.entity_type, r.start, r.end, round(float(r.score), 3)))
    return sorted(chosen, key=lambda e: e.start)


def _apply(text: str, entities: list[PiiEntity]) -> str:
    parts, cursor = [], 0
    for entity in entities:
        parts.append(text[cursor : entity.start])
        parts.append(PLACEHOLDERS[entity.entity_type])
        cursor = entity.end
    parts.append(text[cursor:])
    return "".join(parts)


class PiiMasker:
    """Replaces PII with typed placeholders; build it once (`get_masker`) and reuse it."""

    def __init__(self, spacy_model: str, score_threshold: float = SCORE_THRESHOLD) -> None:
        self.spacy_model = spacy_model
        self.score_threshold = score_threshold
        self.analyzer = _build_analyzer(spacy_model)

    @staticmethod
    def _entities_for(text: str) -> list[str]:
        wanted = list(_NER_TYPES)
        if _HAS_DIGIT.search(text):
            wanted += _DIGIT_TYPES
        if "@" in text:
            wanted.append("EMAIL_ADDRESS")
        if _HAS_DOMAIN.search(text):
            wanted.append("URL")
        return wanted

    def _mask_doc(self, doc) -> MaskResult:
        text, wanted = doc.text, self._entities_for(doc.text)
        names = _context_names(text, doc)
        if len(wanted) == len(_NER_TYPES) and not names and not any(e.label_ in NER_LABELS for e in doc.ents):
            return MaskResult(text)  # no recognizer could report anything: skip Presidio's per-text overhead
        nlp_engine = self.analyzer.nlp_engine
        artifacts = nlp_engine._doc_to_nlp_artifact(doc, LANGUAGE)  # what process_batch does per doc
        results = self.analyzer.analyze(
            text, LANGUAGE, entities=wanted, score_threshold=self.score_threshold, nlp_artifacts=artifacts
        )
        entities = _widen_names(text, _resolve_overlaps([*results, *names], text))
        return MaskResult(_apply(text, entities), entities)

    def mask(self, text: str) -> MaskResult:
        """Mask one message (already cleaned with `clean_text`)."""
        return self._mask_doc(self.analyzer.nlp_engine.get_nlp(LANGUAGE)(text)) if text else MaskResult(text)

    def _mask_serial(self, texts: Sequence[str], progress: tqdm | None = None) -> list[MaskResult]:
        out = []
        for doc in self.analyzer.nlp_engine.get_nlp(LANGUAGE).pipe(texts, batch_size=256):
            out.append(self._mask_doc(doc) if doc.text else MaskResult(doc.text))
            if progress is not None:
                progress.update(1)
        return out

    def mask_batch(
        self, texts: Sequence[str], n_process: int = 1, progress: bool = False, chunk_size: int = 500
    ) -> list[MaskResult]:
        """Mask many messages: identical texts are masked once; `n_process` > 1 forks worker processes.

        A name or place found in one message is masked wherever else it occurs in the batch.
        """
        unique = list(dict.fromkeys(texts))
        bar = tqdm(total=len(unique), desc="masking PII", unit="msg", disable=not progress)
        with bar:
            if n_process <= 1 or len(unique) < 2 * chunk_size:
                masked = self._mask_serial(unique, bar)
            else:
                masked = self._mask_parallel(unique, n_process, chunk_size, bar)
        by_text = dict(zip(unique, _mask_repeated_names(unique, masked)))
        return [by_text[t] for t in texts]

    def _mask_parallel(self, texts: list[str], n_process: int, chunk_size: int, bar: tqdm) -> list[MaskResult]:
        chunks = [texts[i : i + chunk_size] for i in range(0, len(texts), chunk_size)]
        # Fork shares this already-loaded masker with the workers (no model reload per process).
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        out: list[MaskResult] = []
        global _worker_masker
        _worker_masker = self  # forked workers inherit it; spawned ones build their own
        with context.Pool(n_process, initializer=_init_worker, initargs=(self.spacy_model,)) as pool:
            for result in pool.imap(_mask_chunk, chunks):
                out.extend(result)
                bar.update(len(result))
        return out


def _mask_repeated_names(texts: Sequence[str], results: list[MaskResult]) -> list[MaskResult]:
    """Mask every other occurrence of a name or place found anywhere in the batch.

    spaCy's NER is context-dependent: it finds "Jones" in one sentence and misses it in the next.
    """
    found = {
        text[e.start : e.end].lower(): e.entity_type
        for text, result in zip(texts, results)
        for e in result.entities
        if e.entity_type in _NER_TYPES
    }
    if not found:
        return results
    alternatives = "|".join(re.escape(v) for v in sorted(found, key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    out = []
    for text, result in zip(texts, results):
        extra = [
            PiiEntity(found[m.group(0).lower()], m.start(), m.end(), 0.5)
            for m in pattern.finditer(text)
            if all(m.end() <= e.start or m.start() >= e.end for e in result.entities)
        ]
        if extra:
            entities = _widen_names(text, sorted(result.entities + extra, key=lambda e: e.start))
            result = MaskResult(_apply(text, entities), entities)
        out.append(result)
    return out


_worker_masker: PiiMasker | None = None


def _init_worker(spacy_model: str) -> None:
    global _worker_masker
    if _worker_masker is None or _worker_masker.spacy_model != spacy_model:
        _worker_masker = get_masker(spacy_model)


def _mask_chunk(texts: list[str]) -> list[MaskResult]:
    assert _worker_masker is not None
    return _worker_masker._mask_serial(texts)


@functools.lru_cache(maxsize=4)
def get_masker(spacy_model: str) -> PiiMasker:
    """The masker for `spacy_model`, built once per process (loading spaCy + Presidio takes seconds)."""
    return PiiMasker(spacy_model)
