"""SortCodeRecognizer: a UK sort code (12-34-56, 12 34 56, 123456) right after "sort code" or "sort"."""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer
from intent_pipeline.pii.recognizers.postcode import POSTCODE_CUES


class SortCodeRecognizer(CuedPatternRecognizer):
    ENTITY = "SORT_CODE"
    CONTEXT: ClassVar[list[str]] = ["sort code", "sortcode", "sort", "sc"]
    NOT_CUES: ClassVar[list[str]] = POSTCODE_CUES  # "postcode" is "sortcode" with two typos
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("sort code after cue", r"(?<!\d)\d{2}[\s\-]?\d{2}[\s\-]?\d{2}(?![\d\w])", 0.85)]
