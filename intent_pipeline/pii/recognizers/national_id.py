"""NationalIdRecognizer: national identity numbers.

Anywhere: UK National Insurance numbers ("QQ 12 34 56 C"). After an id cue ("national id",
"id number", "id card", "ssn", "social security", "ni number", "aadhaar", "pan", "sin", "pps",
"dni", "nie", "personalausweis", ...): 6-14 letters and digits with at least 5 digits, dashes
and spaces allowed between groups (US SSNs in plain form have Presidio's UsSsnRecognizer too).
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer

NINO = r"(?<![\w])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D](?![\w])"
ID_NUMBER = (r"(?<![\w])(?:(?!(?:is|no|nr|on|of|my|it|id|was)\b)[A-Z]{1,3}[\s\-](?=\d))?(?=[A-Z]*\d)(?=(?:[A-Z\-\s]*\d){5})[A-Z0-9](?:[A-Z0-9]|[\-\s](?=[A-Z0-9]*\d)){5,16}"
             r"(?:\s[A-Z])?(?![\w])")


class NationalIdRecognizer(CuedPatternRecognizer):
    ENTITY = "NATIONAL_ID"
    CONTEXT: ClassVar[list[str]] = ["national id", "national identity", "national insurance", "ni number", "ni no",
                                    "nino", "id number", "id no", "id card", "identity card", "identity number",
                                    "ssn", "social security", "social security number", "social insurance",
                                    "sin", "aadhaar", "aadhar", "pan", "pan card", "pps", "pps number",
                                    "ppsn", "dni", "nie", "nif", "codice fiscale", "personalausweis",
                                    "steuer-id", "carte d'identité", "carte d'identite", "numero de securite sociale",
                                    "tfn", "medicare", "health card", "nhs number", "id"]
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("id number after cue", ID_NUMBER, 0.45)]
    UNCUED_PATTERNS: ClassVar[list[Pattern]] = [Pattern("uk national insurance number", NINO, 0.7)]
