"""BankAccountRecognizer: an account number (6-18 digits, spaces or dashes allowed) right after an
account cue: "account number 12345678", "acct no: 0012-3456-789", "bank account is 31926819".
IBANs have their own checksum-validated recognizer (Presidio's IbanRecognizer).
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer

ACCOUNT_NUMBER = r"(?<!\d)\d(?:[\s\-]?\d){5,17}(?![\d\w])"


class BankAccountRecognizer(CuedPatternRecognizer):
    ENTITY = "BANK_ACCOUNT"
    CONTEXT: ClassVar[list[str]] = ["account number", "account no", "account num", "account #", "acct", "acct no",
                                    "acc no", "acc number", "a/c", "bank account", "bank acct", "checking account",
                                    "savings account", "current account", "account", "acount", "accnt",
                                    "kontonummer", "konto", "numero de compte", "numéro de compte", "cuenta",
                                    "conto", "bsb"]
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("account number after cue", ACCOUNT_NUMBER, 0.8)]
    FILLER = (r"(?:[\s:#=.,\-]|\b(?:is|was|its|it's|no|nr|num|number|numbers|my|the|bank|ending|ending in|"
              r"details|for|of|to|into|in|from|with|new|old|checking|savings|and)\b){0,12}?")
