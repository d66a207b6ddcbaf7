"""OrderIdRecognizer: order, invoice and bill numbers. The keyword stays, only the number goes:
"purchase order# 9511291" -> "purchase order# [ORDER_ID]". Also prefixed ids anywhere ("INV-12345",
"ORD-2231", "PO12345") and "#1234".
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import EntityRecognizer, RecognizerResult

import regex

KEYWORD_ENTITY = {"order": "ORDER_ID", "purchase": "ORDER_ID", "invoice": "INVOICE_ID", "bill": "BILL_ID"}
_ID_VALUE = r"(?P<value>(?:[A-Za-z]{1,4}-?)?\d[\w-]{3,})(?<![-_])\b"


class OrderIdRecognizer(EntityRecognizer):
    KEYWORD_PATTERN: ClassVar[str] = (
        r"(?i)\b(?P<kw>order|purchase|invoice|bill)\b(?:\s+(?:number|no\.?|num|nr\.?|id|ref(?:erence)?))?"
        r"\s*[#:]?\s*(?:is\s+)?#?\s*" + _ID_VALUE)
    PATTERNS: ClassVar[list[tuple[str, str]]] = [
        (r"(?i)\b(?P<value>INV-?\d{4,})\b", "INVOICE_ID"),
        (r"(?i)\b(?P<value>(?:ORD|PO)-?\d{4,})\b", "ORDER_ID"),
        (r"(?<![\w#])(?P<value>#\s?\d{4,})\b", "ORDER_ID"),
    ]

    def __init__(self, keyword_pattern: str | None = None, patterns: list[tuple[str, str]] | None = None,
                 supported_language: str = "en") -> None:
        self.keyword_pattern = regex.compile(keyword_pattern or self.KEYWORD_PATTERN)
        self.value_patterns = [(regex.compile(p), kind) for p, kind in (patterns or self.PATTERNS)]
        super().__init__(supported_entities=["ORDER_ID", "INVOICE_ID", "BILL_ID"],
                         supported_language=supported_language, name=type(self).__name__)

    def load(self) -> None:
        pass

    MIN_DIGITS: ClassVar[int] = 1

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        found = []
        for match in self.keyword_pattern.finditer(text):
            kind = KEYWORD_ENTITY[match.group("kw").lower()]
            found.append(RecognizerResult(kind, match.start("value"), match.end("value"), 0.9))
        for pattern, kind in self.value_patterns:
            for match in pattern.finditer(text):
                found.append(RecognizerResult(kind, match.start("value"), match.end("value"), 0.85))
        return [r for r in found if r.entity_type in entities]
