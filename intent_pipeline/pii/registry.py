"""The one list of what the masker finds: each line is a recognizer and the placeholder of every entity
type it reports. The analyzer, the placeholder map (`PLACEHOLDERS`) and the requested entity list
(`ENTITIES`) are all derived from `RECOGNIZERS`, so a new entity type is one new recognizer module
plus one line here.

`tier` orders overlapping finds (lower wins): cue-anchored and checksum-validated values first,
then value shapes (phone, e-mail, URL), then spaCy's NER, then the default [ID] rule.

Placeholders are a contract: stage 1 writes them into the training data, and the app, the API and
the grouping of near-duplicates read them. Change one and retrain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import regex
from presidio_analyzer import EntityRecognizer

CUE, SHAPE, NER, DEFAULT = 0, 1, 2, 3


def _spacy() -> EntityRecognizer:
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    return SpacyRecognizer(supported_entities=["PERSON", "LOCATION"])


def _builtin(name: str) -> Callable[[], EntityRecognizer]:
    def build() -> EntityRecognizer:
        from presidio_analyzer import predefined_recognizers

        return getattr(predefined_recognizers, name)()

    build.__name__ = name
    return build


def _ours(module: str, name: str) -> Callable[[], EntityRecognizer]:
    def build() -> EntityRecognizer:
        import importlib

        return getattr(importlib.import_module(f"intent_pipeline.pii.recognizers.{module}"), name)()

    build.__name__ = name
    return build


@dataclass(frozen=True)
class Registered:
    build: Callable[[], EntityRecognizer]
    placeholders: dict[str, str]  # entity type -> placeholder
    tier: int
    min_digits: int | None = None  # values have at least this many digits (None: the recognizer's MIN_DIGITS)
    could_match: Callable[[str], bool] | None = None  # None: the recognizer's own could_match(), if any
    default_rule: bool = False  # the [ID] rule, switched by MASK_UNKNOWN_IDS
    statistical: bool = False  # a model's guesses (spaCy NER): lower-case finds are checked for noise


RECOGNIZERS: tuple[Registered, ...] = (
    Registered(_spacy, {"PERSON": "[PERSON]", "LOCATION": "[LOCATION]"}, NER, statistical=True),
    Registered(_ours("person_cue", "PersonCueRecognizer"), {"PERSON": "[PERSON]"}, NER),
    Registered(_ours("town_cue", "TownCueRecognizer"), {"LOCATION": "[LOCATION]"}, NER),
    Registered(_ours("street_address", "StreetAddressRecognizer"), {"STREET_ADDRESS": "[ADDRESS]"}, CUE),
    Registered(_ours("postcode", "PostcodeRecognizer"), {"POSTCODE": "[POSTCODE]"}, CUE, min_digits=1),
    Registered(_ours("email_address", "OfflineEmailRecognizer"), {"EMAIL_ADDRESS": "[EMAIL]"}, SHAPE),
    Registered(_ours("spelled_email", "SpelledEmailRecognizer"), {"EMAIL_ADDRESS": "[EMAIL]"}, SHAPE),
    Registered(_ours("phone", "ChatPhoneRecognizer"), {"PHONE_NUMBER": "[PHONE]"}, SHAPE),
    Registered(_builtin("CreditCardRecognizer"), {"CREDIT_CARD": "[CREDIT_CARD]"}, SHAPE, min_digits=12),
    Registered(_builtin("IbanRecognizer"), {"IBAN_CODE": "[IBAN]"}, CUE, min_digits=8),
    Registered(_ours("iban", "ChatIbanRecognizer"), {"IBAN_CODE": "[IBAN]"}, CUE),
    Registered(_ours("card_number", "CardNumberRecognizer"), {"CREDIT_CARD": "[CREDIT_CARD]"}, CUE),
    Registered(_builtin("UsSsnRecognizer"), {"US_SSN": "[US_SSN]"}, CUE, min_digits=9),
    Registered(_builtin("IpRecognizer"), {"IP_ADDRESS": "[IP_ADDRESS]"}, SHAPE,
               could_match=regex.compile(r"\d\.\d|[0-9a-f]:[0-9a-f]*:", regex.IGNORECASE).search),
    Registered(_ours("url", "ChatUrlRecognizer"), {"URL": "[URL]"}, SHAPE),
    Registered(_ours("order_id", "OrderIdRecognizer"),
               {"ORDER_ID": "[ORDER_ID]", "INVOICE_ID": "[INVOICE_ID]", "BILL_ID": "[BILL_ID]"}, CUE),
    Registered(_ours("date_of_birth", "DateOfBirthRecognizer"), {"DATE_OF_BIRTH": "[DATE_OF_BIRTH]"}, CUE),
    Registered(_ours("bank_account", "BankAccountRecognizer"), {"BANK_ACCOUNT": "[BANK_ACCOUNT]"}, CUE),
    Registered(_ours("sort_code", "SortCodeRecognizer"), {"SORT_CODE": "[SORT_CODE]"}, CUE),
    Registered(_ours("routing_number", "RoutingNumberRecognizer"), {"ROUTING_NUMBER": "[ROUTING_NUMBER]"}, CUE),
    Registered(_ours("security_code", "SecurityCodeRecognizer"), {"SECURITY_CODE": "[SECURITY_CODE]"}, CUE),
    Registered(_ours("passport", "PassportRecognizer"), {"PASSPORT": "[PASSPORT]"}, CUE),
    Registered(_ours("driving_licence", "DrivingLicenceRecognizer"), {"DRIVING_LICENCE": "[DRIVING_LICENCE]"}, CUE),
    Registered(_ours("national_id", "NationalIdRecognizer"), {"NATIONAL_ID": "[NATIONAL_ID]"}, CUE),
    Registered(_ours("tax_id", "TaxIdRecognizer"), {"TAX_ID": "[TAX_ID]"}, CUE),
    Registered(_ours("tracking_number", "TrackingNumberRecognizer"), {"TRACKING_NUMBER": "[TRACKING_NUMBER]"}, CUE),
    Registered(_ours("username", "UsernameRecognizer"), {"USERNAME": "[USERNAME]"}, CUE),
    Registered(_ours("reference_id", "ReferenceIdRecognizer"), {"ID": "[ID]"}, CUE),
    Registered(_ours("default_id", "DefaultIdRecognizer"), {"ID": "[ID]"}, DEFAULT, default_rule=True),
)


def _placeholders() -> dict[str, str]:
    merged: dict[str, str] = {}
    for entry in RECOGNIZERS:
        for entity, placeholder in entry.placeholders.items():
            if merged.setdefault(entity, placeholder) != placeholder:
                raise ValueError(f"entity {entity} has two placeholders: {merged[entity]} and {placeholder}")
    return merged


PLACEHOLDERS: dict[str, str] = _placeholders()
ENTITIES: tuple[str, ...] = tuple(PLACEHOLDERS)
# Entity types spaCy's NER reports: checked against false positives such as plan names ("Premium").
NER_ENTITIES = frozenset({"PERSON", "LOCATION"})
NER_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}


def entries(mask_unknown_ids: bool = True) -> list[Registered]:
    """The registry lines in use (the [ID] default rule only with MASK_UNKNOWN_IDS on)."""
    return [e for e in RECOGNIZERS if mask_unknown_ids or not e.default_rule]
