"""PersonCueRecognizer: names right after a cue phrase, in any case, with surname and particles.

spaCy's small model finds "Sarah Connolly" but not "hi im sarah connolly", and often tags "bill from
Justin Edwards" as an organisation. This recognizer reads the words after a cue:

- `TITLE_CONTEXT` (mr, mrs, ms, dr, ...) and `STRONG_CONTEXT` ("my name is", "named", "regards"):
  the next word is a name unless it is a stop word;
- `CONTEXT` ("im", "i am", "this is", "for", "placed by", "agent", "driver", "my wife", "hi", ...):
  the next word is a name if it is not a common English word (words.common_words()), or, when the
  message is not in Title Case, if it is capitalised;
- `CAPITALISED_CONTEXT` ("from", "to", "with", "by", "of"): only capitalised names count;
- a name continues over particles ("van der", "de la", "al-", "o'") and further name-like words (not
  stop words, not very frequent words: "connolly", "smith", but not "please" or "white").

Multi-word ORG spans right after a cue are names as well ("bill from Justin Edwards").
`extend_name()` is the same continuation rule for spans found by other means (spaCy NER).
"""

from __future__ import annotations

from typing import ClassVar

import regex

from presidio_analyzer import EntityRecognizer, RecognizerResult

from intent_pipeline.pii.recognizers.base import cue_regex
from intent_pipeline.pii.words import (
    NAME_PARTICLES,
    NOT_NAME_AFTER_NAME,
    frequency_rank,
    is_common,
    is_compound_of_common,
    is_contraction,
    stop_words,
)

# Words more frequent than this rank end a name even after a first name ("john said", "sarah white").
CONTINUATION_MIN_RANK = 600
MAX_NAME_WORDS = 4
_WORD = regex.compile(r"(?:(?:o|d)['’]|(?:al|el)-)?[^\W\d_]+(?:['’-][^\W\d_]+)*")
_LETTERS = regex.compile(r"[^\W\d_]")
_WORD_END = regex.compile(r"$|[\s,;!?)]|[.:](?!\w)")  # a name word ends here; "jane@x.com" is no name
_GAP = regex.compile(r"[\s,:;.\-]*(?:(?:is|was|=|s)\s+)?", regex.IGNORECASE)
# Capitalised words that start sentences or name products rather than people.
NOT_NAME_WORDS = frozenset("""i my your our his her their the a an this that these those please hi hello hey dear
thanks thank how what where when why who which can could would will shall is are was do does did get need want help
me you it we they new club pro premium standard basic gold platinum business corporate cancel refund order invoice
bill account newsletter support customer service delivery shipping payment paypal visa mastercard amazon apple
google delete switch""".split())


def is_title_case(text: str, start: int, end: int) -> bool:
    """Most words outside [start, end) are capitalised (first word and "I" aside): capitals carry no signal."""
    words = [m.group(0) for m in _WORD.finditer(text) if m.end() <= start or m.start() >= end][1:]
    words = [w for w in words if w != "I"]
    return len(words) >= 2 and sum(w[0].isupper() for w in words) > len(words) / 2


def _capitalised(word: str) -> bool:
    return word[:1].isupper() and not word.isupper() or (len(word) > 1 and word.isupper() and len(word) <= 3)


def _starts_name(word: str, strength: str, capitals_count: bool) -> bool:
    low = word.lower()
    if low in stop_words() or low in NOT_NAME_WORDS or len(_LETTERS.findall(word)) < 2 or is_contraction(word):
        return False
    if strength in ("title", "strong"):
        return True
    if capitals_count and word[:1].isupper() and not word.isupper() and not is_common(word):
        return True
    # "i'm rewatching", "im cancelling": a verb form after "im" is no name
    verb_form = low.endswith("ing") and (is_common(low[:-3]) or is_common(low[:-3] + "e"))
    return strength == "medium" and not is_common(word) and not is_compound_of_common(word) and not verb_form


def _continues_name(word: str, capitals_count: bool, name_capitalised: bool) -> bool:
    low = word.lower().strip("'’")
    if low in stop_words() or low in NOT_NAME_AFTER_NAME or low in NOT_NAME_WORDS or len(low) < 2:
        return False
    if capitals_count and word[:1].isupper():
        return True
    if not is_common(low):
        return True  # "Aoife connolly", "priya raman"
    # a common lower-case word joins a lower-case name only ("sarah smith"), never "Jacob Gonzalez send"
    return (not (capitals_count and name_capitalised) and frequency_rank(low) >= CONTINUATION_MIN_RANK
            and not low.endswith(("ing", "ed")))


def extend_name(text: str, start: int, end: int, max_words: int = MAX_NAME_WORDS) -> int:
    """The end of the name that starts at `start` and has at least text[start:end]: further name words
    and particles ("van der berg") are taken in, up to `max_words` words in all."""
    capitals_count = not is_title_case(text, start, end)
    words = _WORD.findall(text[start:end])
    count = len(words)
    name_capitalised = all(w[:1].isupper() for w in words)
    pending: list[int] = []  # particles waiting for the surname that must follow them
    cursor = end
    while count < max_words:
        gap = regex.match(r"[ \t]+", text[cursor:])
        if not gap:
            break
        word = _WORD.match(text, cursor + gap.end())
        if not word or not _WORD_END.match(text, word.end()):
            break
        if word.group(0).lower() in NAME_PARTICLES:
            pending.append(word.end())
            cursor = word.end()
            continue
        if not _continues_name(word.group(0), capitals_count, name_capitalised):
            break
        end = cursor = word.end()
        count += 1
        pending.clear()
    return end


class PersonCueRecognizer(EntityRecognizer):
    """Names after cue phrases (see the module docstring); every cue list is overridable."""

    TITLE_CONTEXT: ClassVar[list[str]] = ["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "mister"]
    STRONG_CONTEXT: ClassVar[list[str]] = [
        "my name is", "my names", "my name's", "name is", "name:", "name -", "named", "name on the card",
        "name on card", "name on the account", "cardholder", "card holder", "account holder", "regards",
        "kind regards", "best regards", "sincerely", "signed", "attn", "attention", "c/o", "addressed to",
        "recipient is", "recipient's name"]
    # "name" alone is weaker ("name field"): it counts as a CONTEXT cue below
    CONTEXT: ClassVar[list[str]] = [
        "im", "i'm", "i am", "i’m", "this is", "it's", "its", "here is", "called", "call me", "for", "placed by",
        "ordered by", "booked by", "signed by", "received by", "agent", "driver", "courier", "rep", "representative",
        "advisor", "adviser", "operator", "manager", "supervisor", "technician", "engineer", "colleague",
        "spoke to", "spoke with", "speak to", "speak with", "talked to", "talk to", "ask for", "hi", "hello",
        "hey", "dear", "thanks", "thank you", "thx", "cheers", "husband", "wife", "son", "daughter", "mother",
        "father", "mum", "mom", "dad", "brother", "sister", "partner", "friend", "boss", "tenant", "landlord",
        "contact", "from", "name", "recipient", "payee"]
    CAPITALISED_CONTEXT: ClassVar[list[str]] = ["to", "with", "by", "of", "and", "is", "am", "from"]

    def __init__(self, context: list[str] | None = None, strong_context: list[str] | None = None,
                 title_context: list[str] | None = None, capitalised_context: list[str] | None = None,
                 supported_entity: str = "PERSON", supported_language: str = "en", score: float = 0.6) -> None:
        self.score = score
        self.cue_lists = {
            "title": list(self.TITLE_CONTEXT if title_context is None else title_context),
            "strong": list(self.STRONG_CONTEXT if strong_context is None else strong_context),
            "medium": list(self.CONTEXT if context is None else context),
            "capitalised": list(self.CAPITALISED_CONTEXT if capitalised_context is None else capitalised_context),
        }
        # Exact cues only: a typo-tolerant "addressed to" would read "address to leave feedback" as a name.
        self._cues = {k: regex.compile(cue_regex(v, typos=False) + r"\.?", regex.IGNORECASE)
                      for k, v in self.cue_lists.items() if v}
        all_cues = [c for v in self.cue_lists.values() for c in v]
        self._gate = regex.compile(cue_regex(all_cues, typos=False), regex.IGNORECASE)
        self._cue_at_end = regex.compile(cue_regex(all_cues, typos=False) + r"\.?[\s,:]*$", regex.IGNORECASE)
        super().__init__(supported_entities=[supported_entity], supported_language=supported_language,
                         context=all_cues, name=type(self).__name__)

    def load(self) -> None:
        pass

    def could_match(self, text: str) -> bool:
        """Whether a cue is followed by a possible name; cue words ("for", "to", "is") are everywhere, so
        the cue-name search itself is the test (remembered for the analyze() call that follows)."""
        if not self._gate.search(text):
            return False
        self._last = (text, self._cue_names(text))
        return bool(self._last[1])

    def _name_after(self, text: str, position: int, strength: str) -> tuple[int, int] | None:
        gap = _GAP.match(text, position)
        word = _WORD.match(text, gap.end())
        if not word or gap.end() == position and position < len(text) and text[position].isalnum():
            return None
        title = self._cues.get("title")
        if strength != "title" and title and title.match(word.group(0)) and title.match(word.group(0)).end() == len(
                word.group(0)):
            return self._name_after(text, word.end(), "title")  # "for mrs o'brien"
        capitals_count = not is_title_case(text, word.start(), word.end())
        if strength == "capitalised" and not (capitals_count and word.group(0)[:1].isupper() and not word.group(0).isupper()):
            return None
        if not _starts_name(word.group(0), "medium" if strength == "capitalised" else strength, capitals_count):
            return None
        return word.start(), extend_name(text, word.start(), word.end())

    def _cue_names(self, text: str) -> dict[tuple[int, int], float]:
        spans: dict[tuple[int, int], float] = {}
        for strength, cue in self._cues.items():
            for match in cue.finditer(text):
                span = self._name_after(text, match.end(), strength)
                if span:
                    spans[span] = max(spans.get(span, 0.0), self.score + (0.1 if strength in ("title", "strong") else 0))
        return spans

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        cached = getattr(self, "_last", None)
        spans = dict(cached[1]) if cached and cached[0] == text else self._cue_names(text)
        doc = getattr(nlp_artifacts, "tokens", None)
        for ent in getattr(doc, "ents", ()):
            words = ent.text.split()
            if (ent.label_ == "ORG" and len(words) >= 2
                    and all(w[:1].isupper() and not w.isupper() and w.lower() not in NOT_NAME_WORDS for w in words)
                    and self._cue_at_end.search(text[max(0, ent.start_char - 40): ent.start_char])
                    and not is_title_case(text, ent.start_char, ent.end_char)):
                spans.setdefault((ent.start_char, ent.end_char), self.score)
        return [RecognizerResult(self.supported_entities[0], s, e, score) for (s, e), score in spans.items()]


# A cue with its own word right before a capitalised word: "Hi Mark", "My Name Is Will". The class's
# default lists, less the capitalised-only cues ("to", "with"), which Title-Case chat is full of.
_CUE_BEFORE = regex.compile(
    cue_regex(PersonCueRecognizer.TITLE_CONTEXT + PersonCueRecognizer.STRONG_CONTEXT + PersonCueRecognizer.CONTEXT,
              typos=False) + r"\.?[\s,:]*$", regex.IGNORECASE)


def follows_cue(text: str, start: int) -> bool:
    """Whether a person cue ends right before `start` ("Hi Will": a common word is then a name)."""
    return bool(_CUE_BEFORE.search(text[max(0, start - 40) : start]))
