"""DefaultIdRecognizer: the default rule for identifiers no other recognizer names.

A token of 6 or more digits, or a letters-and-digits token of 6 or more characters with at least 2
digits, becomes [ID] (setting MASK_UNKNOWN_IDS; on by default). It ranks below every other
recognizer, so a number some recognizer names keeps its own type. Money amounts with a currency,
times, ordinals and dates in ISO form stay: "$1250000", "1,200.50 eur", "10:30", "2024-05-12".
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern, PatternRecognizer

import regex

CURRENCY = r"(?:usd|eur|gbp|inr|aud|cad|chf|jpy|dollars?|euros?|pounds?|quid|bucks|rupees?|rs|pence|cents?|k)"
_TOKEN = r"(?<![\w$€£¥₹.,:/\-])(?=[A-Z0-9-]*\d[A-Z0-9-]*\d)(?=[A-Z0-9-]*[0-9])[A-Z0-9](?:[A-Z0-9]|-(?=[A-Z0-9])){5,}"
ID_TOKEN = rf"{_TOKEN}(?![\w$€£¥₹]|[.,:/]\d|\s?(?:{CURRENCY})\b)"
# Shapes that are not identifiers: dates, amounts with the currency attached, ordinals.
NOT_AN_ID = regex.compile(rf"(?i)\d{{1,4}}-\d{{1,2}}-\d{{1,4}}|(?:{CURRENCY})[\d-]+|[\d-]+(?:{CURRENCY}|st|nd|rd|th)")


class DefaultIdRecognizer(PatternRecognizer):
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("long number or code", ID_TOKEN, 0.45)]

    def __init__(self, patterns: list[Pattern] | None = None, supported_entity: str = "ID",
                 supported_language: str = "en") -> None:
        super().__init__(supported_entity=supported_entity, patterns=patterns or self.PATTERNS,
                         supported_language=supported_language, name=type(self).__name__)

    def invalidate_result(self, pattern_text: str) -> bool:
        digits = sum(c.isdigit() for c in pattern_text)
        if NOT_AN_ID.fullmatch(pattern_text):
            return True
        # "6+ digits" counts for pure numbers; mixed tokens need 6+ characters and 2+ digits (the regex).
        return pattern_text.replace("-", "").isdigit() and digits < 6

    MIN_DIGITS: ClassVar[int] = 2
