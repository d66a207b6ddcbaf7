"""CuedPatternRecognizer: a Presidio PatternRecognizer whose values count only after a cue phrase.

Presidio's own recognizers use context words to *raise* a score; chat values such as a 3-digit CVV
or an 8-digit account number look like any number, so here the cue is *required*. A subclass
declares, Presidio style:

- `PATTERNS`: value regexes, each matched only right after a cue (a look-behind is built for it);
- `CONTEXT`: the cue phrases ("sort code", "dob"; spaces also match "-", "_" or nothing);
- `NOT_CUES`: words that look like a cue with a typo but are another one ("postcode" is no "passcode");
- `UNCUED_PATTERNS`: value shapes specific enough to count anywhere (UPS "1Z...");
- `FILLER`: what may stand between cue and value ("is", ":", "no.", "number", "my", ...);
- `MIN_DIGITS`: every value has at least this many digits, so a text with fewer is skipped before any
  regex runs (0: values may have none, and `could_match` looks for a cue instead).

All of them can be overridden in the constructor. Patterns run with Presidio's default flags
(case-insensitive) through the `regex` module, which allows the variable-length look-behind.
"""

from __future__ import annotations

from typing import ClassVar

import regex

from presidio_analyzer import Pattern, PatternRecognizer

# Words that sit between a cue and its value: "account number is 123", "cvv on the card: 123".
DEFAULT_FILLER = (
    r"(?:[\s:#=.,>\-]|\b(?:is|was|are|its|it's|it|s|no|nr|num|number|numbers|code|my|the|our|your|on|of|a|an|"
    r"card|for|me|new|old|here|should|be|will|=)\b){0,12}?"
)


TYPO_MIN_LENGTH = 6


def phrase_regex(phrase: str, typos: bool = True) -> str:
    """A cue phrase as a regex: its words in order, separated by spaces, '-', '_', '.' or nothing; a
    word of TYPO_MIN_LENGTH or more letters also matches with one typo ("securty", "usernme"), one of
    8 or more with two (a swap: "securiyt"); in a phrase of three or more words, whose other words
    anchor it, a word of 4 or more letters takes one typo too ("date of bith")."""
    parts = phrase.split()
    shortest = TYPO_MIN_LENGTH if len(parts) < 3 else 4
    words = [f"(?:{regex.escape(w)}){{e<={1 if len(w) < 8 else 2}}}" if typos and len(w) >= shortest and w.isalpha()
             else regex.escape(w) for w in parts]
    return r"[\s_.\-]*".join(words)


def cue_regex(context: list[str], typos: bool = True, not_cues: list[str] | None = None) -> str:
    """Any of the cue phrases, as whole words (longest first, so "date of birth" beats "date"); never one
    of `not_cues` (words a typo-tolerant cue would take for itself: "postcode" for "passcode")."""
    alternatives = "|".join(phrase_regex(c, typos) for c in sorted(set(context), key=len, reverse=True))
    excluded = "|".join(phrase_regex(c, typos=False) for c in sorted(set(not_cues or []), key=len, reverse=True))
    guard = rf"(?!(?:{excluded})(?![^\W\d_]))" if excluded else ""
    return rf"(?<![^\W\d_]){guard}(?:{alternatives})(?![^\W\d_])"


class CuedPatternRecognizer(PatternRecognizer):
    """Values that follow a cue phrase (see the module docstring)."""

    ENTITY: ClassVar[str] = ""
    PATTERNS: ClassVar[list[Pattern]] = []
    UNCUED_PATTERNS: ClassVar[list[Pattern]] = []
    CONTEXT: ClassVar[list[str]] = []
    NOT_CUES: ClassVar[list[str]] = []
    FILLER: ClassVar[str] = DEFAULT_FILLER
    MIN_DIGITS: ClassVar[int] = 1

    def __init__(
        self,
        patterns: list[Pattern] | None = None,
        context: list[str] | None = None,
        uncued_patterns: list[Pattern] | None = None,
        filler: str | None = None,
        not_cues: list[str] | None = None,
        supported_entity: str | None = None,
        supported_language: str = "en",
        name: str | None = None,
    ) -> None:
        self.cues = list(self.CONTEXT if context is None else context)
        self.not_cues = list(self.NOT_CUES if not_cues is None else not_cues)
        self.filler = self.FILLER if filler is None else filler
        value_patterns = self.PATTERNS if patterns is None else patterns
        uncued = self.UNCUED_PATTERNS if uncued_patterns is None else uncued_patterns
        cue = cue_regex(self.cues, not_cues=self.not_cues)
        lead = rf"(?<={cue}{self.filler})" if self.cues else ""
        built = [Pattern(p.name, f"{lead}(?:{p.regex})", p.score) for p in value_patterns if self.cues]
        built += [Pattern(p.name, p.regex, p.score) for p in uncued]
        # A cheap test run before Presidio: no cue and no uncued shape means nothing can match.
        gate = [cue] if self.cues and value_patterns else []
        gate += [p.regex for p in uncued]
        self._gate = regex.compile("|".join(f"(?:{g})" for g in gate), regex.IGNORECASE) if gate else None
        super().__init__(
            supported_entity=supported_entity or self.ENTITY,
            patterns=built,
            context=self.cues,
            supported_language=supported_language,
            name=name or type(self).__name__,
        )

    def could_match(self, text: str) -> bool:
        """False when `text` cannot hold a value (so analysis can skip it): no digit where values need one,
        else no cue and no uncued value shape."""
        if self.MIN_DIGITS:
            return sum(c.isdigit() for c in text) >= self.MIN_DIGITS
        return bool(self._gate and self._gate.search(text))
