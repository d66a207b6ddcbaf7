"""Text as the model sees it: one normalisation shared by training, evaluation, the app and the API.

`clean_text()` comes first, before PII masking: Unicode NFKC, control and zero-width characters
removed, whitespace folded.

The seed data carries label-correlated surface artifacts (the `other` intent is lower-case and
unpunctuated, every other intent is capitalised and ends in '.' or '?'). Real chat messages have
neither, so the model must not see them: lower-case, strip edge punctuation, fold whitespace.
"""

from __future__ import annotations

import re
import unicodedata

_EDGE_PUNCT = re.compile(r"^[\s\.\?\!,;:…\-–—'\"`]+|[\s\.\?\!,;:…\-–—'\"`]+$")
_SPACES = re.compile(r"\s+")


def normalize_for_model(text: str) -> str:
    """Remove style cues that correlate with labels in the seed data but carry no intent."""
    text = _SPACES.sub(" ", str(text)).strip().lower()
    return _EDGE_PUNCT.sub("", text)


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


def is_blank(text: str) -> bool:
    """True when `text` has nothing to classify: only whitespace, control or zero-width/format characters."""
    return all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp") for ch in text)
