"""PassportRecognizer: a passport number (6-12 letters and digits, at least 5 digits) right after a
passport cue: "passport no 123456789", "my passport number is C01X00T47", "pasport: 533380006".
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer

DOCUMENT_NUMBER = r"(?<![\w])(?=(?:[A-Z]*\d){5})[A-Z0-9]{6,12}(?![\w])"


class PassportRecognizer(CuedPatternRecognizer):
    ENTITY = "PASSPORT"
    CONTEXT: ClassVar[list[str]] = ["passport", "pasport", "passport no", "passport number", "passport #",
                                    "passport num", "passeport", "reisepass", "pasaporte", "passaporto", "pp no"]
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("passport number after cue", DOCUMENT_NUMBER, 0.85)]
