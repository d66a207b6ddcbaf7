"""RoutingNumberRecognizer: a US ABA routing number (9 digits) right after "routing", "aba" or "rtn"."""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer


class RoutingNumberRecognizer(CuedPatternRecognizer):
    ENTITY = "ROUTING_NUMBER"
    CONTEXT: ClassVar[list[str]] = ["routing", "routing number", "routing no", "aba", "aba number", "rtn",
                                    "transit number", "routing transit number", "routing #"]
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("routing after cue", r"(?<!\d)\d{4}[\s\-]?\d{4}[\s\-]?\d(?![\d\w])", 0.85)]
