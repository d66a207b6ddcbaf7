"""ChatIbanRecognizer: IBANs as people type them: lower case, grouped in fours, after "iban" or not
("iban is gb61 vlae 2334 1780 3297 1"); validated with the ISO 7064 mod-97 checksum. Presidio's
IbanRecognizer expects upper case.
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer

IBAN = r"(?<![\w])[A-Z]{2}\d{2}[\s\-]?[A-Z0-9]{4}(?:[\s\-]?(?=[A-Z]{0,3}\d)[A-Z0-9]{1,4}){2,7}(?![\w])"


def iban_ok(value: str) -> bool:
    compact = "".join(c for c in value if c.isalnum()).upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


class ChatIbanRecognizer(CuedPatternRecognizer):
    ENTITY = "IBAN_CODE"
    UNCUED_PATTERNS: ClassVar[list[Pattern]] = [Pattern("iban", IBAN, 0.5)]

    def validate_result(self, pattern_text: str) -> bool:
        return iban_ok(pattern_text)

    MIN_DIGITS = 8
