"""SpelledEmailRecognizer: e-mail addresses written out to dodge filters or typed by voice:
"jane dot doe at gmail dot com", "jane(at)example.com", "jane [at] example [dot] co [dot] uk",
"jane at gmail.com".

The domain must end in a known top-level domain written as ".tld" or "dot tld", so "meet at
noon" or "look at my order" never match.
"""

from __future__ import annotations

from typing import ClassVar

import regex
from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer

TLDS = ("com|net|org|edu|gov|io|co|uk|de|fr|es|it|nl|ie|in|au|ca|us|info|biz|me|eu|ch|at|be|se|no|dk|fi|pl|pt|br|mx|"
        "jp|cn|ru|nz|za|sg|hk|app|dev|xyz|online|email|mail")
_AT = r"(?:\s*[\(\[\{<]\s*at\s*[\)\]\}>]\s*|\s+at\s+|\s*\(a\)\s*)"
_DOT = r"(?:\s*[\(\[\{<]\s*dot\s*[\)\]\}>]\s*|\s+dot\s+|\.)"
_LOCAL = r"[a-z0-9][a-z0-9_%+\-]*(?:(?:\s+dot\s+|\s*[\(\[]dot[\)\]]\s*|[._])[a-z0-9_%+\-]+)*"
_DOMAIN = rf"[a-z0-9][a-z0-9\-]*(?:{_DOT}[a-z0-9\-]+)*{_DOT}(?:{TLDS})(?![\w])"


_GATE_AT = regex.compile(r"\bat\b|\(a\)", regex.IGNORECASE)
_GATE_DOT = regex.compile(r"\bdot\b|\w\.\w", regex.IGNORECASE)


class SpelledEmailRecognizer(CuedPatternRecognizer):
    ENTITY = "EMAIL_ADDRESS"
    UNCUED_PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("spelled email", rf"(?<![\w.@]){_LOCAL}{_AT}{_DOMAIN}", 0.75),
    ]
    CONTEXT: ClassVar[list[str]] = []
    MIN_DIGITS = 0

    @staticmethod
    def could_match(text: str) -> bool:
        return bool(_GATE_AT.search(text) and _GATE_DOT.search(text))
