"""Text as the model sees it: one declared list of steps shared by training, evaluation, the app, the API
and the released tokenizer.

`CLEAN_STEPS` (`clean_text()`) come first, before PII masking: control and format (zero-width)
characters removed, Unicode NFKC, whitespace folded. `STYLE_STEPS` follow: the seed data carries
label-correlated surface artifacts (the `other` intent is lower-case and unpunctuated, every other
intent is capitalised and ends in '.' or '?'). Real chat messages have neither, so the model must not
see them: lower-case, strip edge punctuation. `normalize_for_model()` runs all of `MODEL_STEPS`.

Each `Step` has a Python implementation and a `tokenizers` normalizer twin (regular expressions are
written once, in the syntax Python `re` and Oniguruma read alike). `intent_pipeline.tokenizer_normalizer`
puts the twins into the released tokenizer, so `transformers.pipeline(...)` on raw text and ONNX users
of tokenizer.json normalise exactly like the app. The whole list is idempotent: the app normalises in
Python and the tokenizer normalises again without changing anything.

Known limit: Python 3.11 ships Unicode 14 tables and `tokenizers` newer ones. They agree on every
code point assigned in both, except about 80 rare ones (Egyptian hieroglyph format controls, a few
NFKC mappings). Unassigned code points are therefore kept, not removed: a newer emoji that Python
sees as unassigned must not vanish on one side only.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

# Exactly the characters Python's str.isspace() accepts (tests check it), written out so that the
# tokenizer's regex folds the same set as Python's.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Stripped from both ends of a message: after folding, the only whitespace left is ' '.
EDGE_PUNCTUATION = " .?!,;:…-–—'\"`"


def _char_class(chars: str) -> str:
    """A regex character class of `chars`, read the same by Python `re` and Oniguruma."""
    return "[" + "".join("\\" + c if c in "\\]^-[" else c for c in chars) + "]"


@dataclass(frozen=True)
class Step:
    """One normalisation step: `apply()` in Python and `tokenizers_normalizer()` for the tokenizer.

    kind: 'nfkc' | 'categories' (characters of the Unicode `categories` become `replacement`) |
    'regex' (`pattern` matches become `replacement`) | 'strip' (edge spaces) | 'lowercase' (per
    character, as the tokenizer does: Python's str.lower() adds the Greek final-sigma rule).
    """

    name: str
    kind: str
    pattern: str = ""
    categories: tuple[str, ...] = ()
    replacement: str = ""

    def apply(self, text: str) -> str:
        if self.kind == "nfkc":
            return unicodedata.normalize("NFKC", text)
        if self.kind == "categories":
            return "".join(self.replacement if unicodedata.category(c) in self.categories else c for c in text)
        if self.kind == "regex":
            return _compiled(self.pattern).sub(self.replacement, text)
        if self.kind == "strip":
            return text.strip(" ")
        if self.kind == "lowercase":
            return "".join(c.lower() for c in text)
        raise ValueError(f"unknown normalisation step kind {self.kind!r}")

    def tokenizers_normalizer(self) -> Any:
        from tokenizers import Regex, normalizers

        if self.kind == "nfkc":
            return normalizers.NFKC()
        if self.kind == "categories":
            pattern = "[" + "".join(f"\\p{{{c}}}" for c in self.categories) + "]"
            return normalizers.Replace(Regex(pattern), self.replacement)
        if self.kind == "regex":
            return normalizers.Replace(Regex(self.pattern), self.replacement)
        if self.kind == "strip":
            return normalizers.Strip()
        if self.kind == "lowercase":
            return normalizers.Lowercase()
        raise ValueError(f"unknown normalisation step kind {self.kind!r}")


@functools.cache
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


CLEAN_STEPS: tuple[Step, ...] = (
    # Tabs and line breaks separate words, so they become spaces.
    Step("controls to spaces", "categories", categories=("Cc", "Zl", "Zp"), replacement=" "),
    # Zero-width, format, surrogate and private-use characters vanish without a trace.
    Step("format characters dropped", "categories", categories=("Cf", "Cs", "Co")),
    # After the removals, so 'e', U+200B, U+0301 composes to 'é' in one pass (the list stays idempotent);
    # NFKC never produces the characters removed above.
    Step("unicode NFKC", "nfkc"),
    Step("whitespace folded", "regex", pattern=_char_class(WHITESPACE) + "+", replacement=" "),
    Step("edge spaces stripped", "strip"),
)
STYLE_STEPS: tuple[Step, ...] = (
    Step("lower-cased", "lowercase"),
    # Lower-casing can make a pair composable ('T' + U+0308 -> 't' + U+0308 -> U+1E97): compose again,
    # so a second pass over the text changes nothing.
    Step("recomposed", "nfkc"),
    # \A and \Z anchor at the ends of the text in both engines (the text has no line breaks left).
    Step("edge punctuation stripped", "regex",
         pattern=rf"\A{_char_class(EDGE_PUNCTUATION)}+|{_char_class(EDGE_PUNCTUATION)}+\Z"),
)
MODEL_STEPS: tuple[Step, ...] = CLEAN_STEPS + STYLE_STEPS


def apply_steps(text: str, steps: tuple[Step, ...]) -> str:
    for step in steps:
        text = step.apply(text)
    return text


def normalize_for_model(text: str) -> str:
    """The text as the model sees it (`MODEL_STEPS`): cleaned, lower-cased, edge punctuation stripped."""
    return apply_steps(str(text), MODEL_STEPS)


def clean_text(text: object) -> str:
    """Control/format characters dropped, Unicode NFKC, whitespace folded to single spaces (`CLEAN_STEPS`)."""
    return apply_steps("" if text is None else str(text), CLEAN_STEPS)


def is_blank(text: str) -> bool:
    """True when `text` has nothing to classify: only whitespace, control or zero-width/format characters."""
    return all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp") for ch in text)
