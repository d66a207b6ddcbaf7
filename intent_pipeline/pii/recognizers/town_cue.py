"""TownCueRecognizer: a town named after a place cue, in any case ("i live in leeds", "im from
dublin", "moving to glasgow next week", "it's near swords").

spaCy's small model finds "Leeds" but rarely "leeds". After a cue (`CONTEXT`), one to three words
are a town when none of them is a frequent English word, a chat word or a stop word (particles such
as "upon", "de", "la" may stand inside: "stratford upon avon"), and the town ends the sentence or is
followed by a stop word. "i live in hope", "moving to premium", "based in london" (spaCy's) are left
to NER or alone. Towns written with a street address or a postcode are read by addresses.py.
"""

from __future__ import annotations

from typing import ClassVar

import regex

from presidio_analyzer import EntityRecognizer, RecognizerResult

from intent_pipeline.pii.recognizers.base import cue_regex
from intent_pipeline.pii.words import (
    CHAT_WORDS,
    TOWN_PARTICLES,
    frequency_rank,
    is_common,
    is_frequent_or_typo,
    stop_words,
)

MAX_TOWN_WORDS = 3
_WORD = regex.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_GAP = regex.compile(r"[ \t]+")
_END = regex.compile(r"\s*(?:$|[,.;:!?)]|\s(?=\w))")


# Words this frequent are no town ("hope", "stock", "premium"); rarer listed words can be ("leeds").
TOWN_MIN_RANK = 5000


def _town_word(word: str) -> bool:
    low = word.lower()
    if len(low) < 3 or low in stop_words() or low in CHAT_WORDS:
        return False
    # a frequent word, its typo, or an inflection of a listed word ("lockers") is no town
    return not (is_frequent_or_typo(low, TOWN_MIN_RANK) or is_common(low) and frequency_rank(low) >= 1_000_000)


class TownCueRecognizer(EntityRecognizer):
    """Towns after place cues (see the module docstring); the cue list is overridable."""

    CONTEXT: ClassVar[list[str]] = [
        "live in", "living in", "lives in", "based in", "located in", "stay in", "staying in", "i'm in", "im in",
        "i am in", "im from", "i'm from", "i am from", "come from", "comes from", "originally from", "moved from",
        "moved to", "moving to", "relocating to", "move to", "travelling to", "traveling to",
        "flying to", "near", "close to", "deliver to", "delivered to", "deliver it to", "ship to", "ship it to",
        "shipped to",
        "send it to", "sent to", "post it to", "town is", "city is", "town of", "city of", "village of"]
    SCORE: ClassVar[float] = 0.9  # a place cue says more than NER's guess of a name on the same words

    def __init__(self, context: list[str] | None = None, supported_entity: str = "LOCATION",
                 supported_language: str = "en") -> None:
        cues = list(self.CONTEXT if context is None else context)
        # Exact cues: a typo-tolerant "from" would match "form".
        self._cue = regex.compile(cue_regex(cues, typos=False) + r"[ \t]+", regex.IGNORECASE)
        super().__init__(supported_entities=[supported_entity], supported_language=supported_language,
                         context=cues, name=type(self).__name__)

    def load(self) -> None:
        pass

    def could_match(self, text: str) -> bool:
        """Whether a cue is followed by a town: "ship to", "near" are common in support chat, so the
        search itself is the test (remembered for the analyze() call that follows)."""
        if not self._cue.search(text):
            return False
        self._last = (text, self._towns(text))
        return bool(self._last[1])

    def _towns(self, text: str) -> list[tuple[int, int]]:
        return [town for cue in self._cue.finditer(text) if (town := self._town_at(text, cue.end()))]

    def _town_at(self, text: str, position: int) -> tuple[int, int] | None:
        words: list[tuple[int, int, str]] = []
        while len(words) < MAX_TOWN_WORDS:
            word = _WORD.match(text, position)
            if not word:
                break
            low = word.group(0).lower()
            if not (words and low in TOWN_PARTICLES) and not _town_word(word.group(0)):
                break
            words.append((word.start(), word.end(), low))
            gap = _GAP.match(text, word.end())
            if not gap:
                break
            position = gap.end()
        while words and words[-1][2] in TOWN_PARTICLES:
            words.pop()
        if not words or not _END.match(text, words[-1][1]):
            return None
        following = _WORD.match(text, _GAP.match(text, words[-1][1]).end()) if _GAP.match(text, words[-1][1]) else None
        if following and not is_common(following.group(0)) and following.group(0).lower() not in stop_words():
            return None  # "in xbox live gamertag ...": rare words run on, no town
        return words[0][0], words[-1][1]

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        cached = getattr(self, "_last", None)
        towns = cached[1] if cached and cached[0] == text else self._towns(text)
        return [RecognizerResult(self.supported_entities[0], s, e, self.SCORE) for s, e in towns]
