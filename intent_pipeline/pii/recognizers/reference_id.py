"""ReferenceIdRecognizer: customer, member, ticket, case, booking and similar reference numbers right
after their cue ("customer id 88213", "membership no. AB-4471", "case ref 5521"): 4 or more letters
and digits with at least 3 digits. Masked as a generic [ID].
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer

REFERENCE = r"(?<![\w])(?=[A-Z]*\d)(?=(?:[A-Z\-]*\d){3})[A-Z0-9](?:[A-Z0-9]|-(?=[A-Z0-9])){3,30}(?![\w])"


class ReferenceIdRecognizer(CuedPatternRecognizer):
    ENTITY = "ID"
    CONTEXT: ClassVar[list[str]] = ["customer id", "customer number", "customer no", "customer ref", "customer",
                                    "client id", "client number", "member id", "member number", "membership",
                                    "membership number", "membership no", "loyalty number", "loyalty card",
                                    "account id", "ticket", "ticket number", "case", "case number", "case id",
                                    "reference", "ref", "ref no", "booking", "booking ref", "reservation",
                                    "confirmation", "confirmation number", "policy", "policy number", "claim",
                                    "claim number", "subscriber id", "subscription id", "contract", "contract number",
                                    "serial", "serial number", "imei", "meter number", "card ending", "ending in"]
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("reference after cue", REFERENCE, 0.7)]
