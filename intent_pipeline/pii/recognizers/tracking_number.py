"""TrackingNumberRecognizer: parcel tracking numbers.

Anywhere: UPS ("1Z999AA10123456784"), UPU S10 numbers used by postal services ("RR123456789GB"),
and long carrier numbers (12-34 digits, as FedEx, USPS and DHL use) once the chat talks about
tracking or a carrier. After a tracking cue ("tracking number", "track", "consignment", "waybill",
"parcel", ...): 8-35 letters and digits with at least 6 digits.
"""

from __future__ import annotations

from typing import ClassVar

import regex

from presidio_analyzer import Pattern, RecognizerResult

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer, cue_regex

UPS = r"(?<![\w])1Z\s?[0-9A-Z]{3}\s?[0-9A-Z]{3}\s?[0-9A-Z]{2}\s?[0-9A-Z]{4}\s?[0-9A-Z]{4}(?![\w])"
S10 = r"(?<![\w])(?-i:[A-Z]{2})\s?\d{3}\s?\d{3}\s?\d{3}\s?(?-i:[A-Z]{2})(?![\w])"
TRACKING = r"(?<![\w])(?=[A-Z]*\d)(?=(?:[A-Z\s\-]*\d){6})[A-Z0-9](?:[A-Z0-9]|[\s\-](?=[A-Z0-9]*\d)){7,34}(?![\w])"
CARRIER_NUMBER = r"(?<![\w+])\d(?:[\s\-]?\d){11,33}(?![\w])"  # "+44..." is a phone number


class TrackingNumberRecognizer(CuedPatternRecognizer):
    ENTITY = "TRACKING_NUMBER"
    CONTEXT: ClassVar[list[str]] = ["tracking", "tracking number", "tracking no", "tracking id", "tracking code",
                                    "tracking #", "track", "trk", "consignment", "consignment number", "waybill",
                                    "airway bill", "awb", "parcel", "parcel number", "package", "shipment",
                                    "shipment number", "ups", "fedex", "usps", "dhl", "royal mail", "hermes", "evri",
                                    "dpd", "gls", "an post", "canada post", "australia post", "colissimo", "correos"]
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("tracking number after cue", TRACKING, 0.8)]
    UNCUED_PATTERNS: ClassVar[list[Pattern]] = [Pattern("ups", UPS, 0.9), Pattern("upu s10", S10, 0.7)]
    FILLER = (r"(?:[\s:#=.,\-]|\b(?:is|was|are|its|it's|no|nr|num|number|id|code|my|the|of|for|with|via|on|"
              r"ref|reference)\b){0,10}?")

    # A long number right after these is a phone number ("call me on 01512 3417763"), even in a
    # message about a parcel.
    PHONE_CONTEXT: ClassVar[list[str]] = ["call", "phone", "mobile", "cell", "tel", "telephone", "text", "whatsapp",
                                          "ring", "fax", "reach me", "call me", "callback", "call back"]

    def __init__(self, phone_context: list[str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._any_cue = regex.compile(cue_regex(self.cues), regex.IGNORECASE)
        self._carrier_number = regex.compile(CARRIER_NUMBER)
        phone = self.PHONE_CONTEXT if phone_context is None else phone_context
        self._after_phone_cue = regex.compile(
            cue_regex(phone, typos=False) + r"[\s:,.]*(?:(?:me|on|at|is|my|number|no)\s+)*$", regex.IGNORECASE)

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        results = super().analyze(text, entities, nlp_artifacts)
        # Long digit runs count anywhere in a message that mentions tracking or a carrier.
        if self._any_cue.search(text):
            results += [RecognizerResult(self.supported_entities[0], m.start(), m.end(), 0.7)
                        for m in self._carrier_number.finditer(text)
                        if not self._after_phone_cue.search(text[max(0, m.start() - 40) : m.start()])]
        return results
