"""CardNumberRecognizer: payment card numbers after a card cue ("card 2285 4383 0529 6950", "card
number is 4885-2145-0653-7"): 12-19 digits, spaces or dashes between groups, Luhn-checked.
Presidio's CreditCardRecognizer (in the registry too) finds the usual issuer prefixes anywhere; this
one also covers newer ranges (2-series Mastercard) and odd groupings once the chat names a card.
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer


def luhn_ok(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class CardNumberRecognizer(CuedPatternRecognizer):
    ENTITY = "CREDIT_CARD"
    MIN_DIGITS = 12
    CONTEXT: ClassVar[list[str]] = ["card", "card number", "card no", "credit card", "debit card", "cc", "visa",
                                    "mastercard", "amex", "maestro", "kreditkarte", "carte", "tarjeta", "carta"]
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("card number after cue", r"(?<!\d)\d(?:[\s\-]?\d){11,18}(?![\w])", 0.9)]

    def validate_result(self, pattern_text: str) -> bool:
        return luhn_ok(pattern_text)
