"""ChatPhoneRecognizer: Presidio's PhoneRecognizer (libphonenumber) for the regions support chat comes
from, international and national forms: US, GB, DE, FR, IN, AU, plus IE, CA, ES, IT, NL.

Presidio's default region list has "UK" (not a libphonenumber region: GB is) and misses AU and
FR, so UK national numbers such as "07911 123456" went unseen.
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer.predefined_recognizers import PhoneRecognizer


class ChatPhoneRecognizer(PhoneRecognizer):
    SUPPORTED_REGIONS: ClassVar[tuple[str, ...]] = ("US", "GB", "DE", "FR", "IN", "AU", "IE", "CA", "ES", "IT", "NL")
    CONTEXT: ClassVar[list[str]] = PhoneRecognizer.CONTEXT + ["mobile", "mob", "tel", "call", "text", "whatsapp", "ring"]

    def __init__(self, context: list[str] | None = None, supported_regions: tuple[str, ...] | None = None,
                 leniency: int = 1, supported_language: str = "en") -> None:
        super().__init__(context=context or self.CONTEXT, supported_language=supported_language,
                         supported_regions=supported_regions or self.SUPPORTED_REGIONS, leniency=leniency,
                         name=type(self).__name__)

    @staticmethod
    def could_match(text: str) -> bool:
        return sum(c.isdigit() for c in text) >= 6
