"""ChatPhoneRecognizer: phone numbers in international and national forms for the regions support
chat comes from: US, GB, DE, FR, IN, AU, plus IE, CA, ES, IT, NL (libphonenumber validates them).

Presidio's PhoneRecognizer runs libphonenumber's matcher once per region over the whole text; its
default region list has "UK" (libphonenumber's code is GB) and lacks AU and FR, so UK national
numbers such as "07911 123456" went unseen. Here phone-shaped candidates are found once with a
regex, and each is parsed as international ("+44 ...", "0044 ...") or, failing that, as a national
number of each region in turn; the first valid reading wins.
"""

from __future__ import annotations

from typing import ClassVar

import phonenumbers
import regex

from presidio_analyzer import EntityRecognizer, RecognizerResult

NO_TRUNK_PREFIX = frozenset({"US", "CA", "ES", "IT"})  # national numbers without a leading 0 (IT: mobiles)
BOTH = frozenset({"IN", "IT"})  # IN mobiles are dialled both ways; IT landlines start with 0
CANDIDATE = regex.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d\s().\-/]{5,20}\d(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w])")


class ChatPhoneRecognizer(EntityRecognizer):
    SUPPORTED_REGIONS: ClassVar[tuple[str, ...]] = ("US", "GB", "DE", "FR", "IN", "AU", "IE", "CA", "ES", "IT", "NL")
    CONTEXT: ClassVar[list[str]] = ["phone", "number", "telephone", "cell", "cellphone", "mobile", "mob", "tel",
                                    "call", "text", "whatsapp", "ring", "fax"]
    SCORE: ClassVar[float] = 0.6

    def __init__(self, context: list[str] | None = None, supported_regions: tuple[str, ...] | None = None,
                 supported_entity: str = "PHONE_NUMBER", supported_language: str = "en") -> None:
        self.supported_regions = tuple(supported_regions or self.SUPPORTED_REGIONS)
        super().__init__(supported_entities=[supported_entity], supported_language=supported_language,
                         context=list(self.CONTEXT if context is None else context), name=type(self).__name__)

    def load(self) -> None:
        pass

    MIN_DIGITS: ClassVar[int] = 7

    def _valid(self, candidate: str) -> bool:
        digits = candidate.lstrip("(")
        if digits.startswith(("+", "00")):
            regions: tuple = (None,)
        else:  # national numbers: a trunk "0" in most of Europe, IN and AU; none in the US and CA
            trunk = digits.startswith("0")
            regions = tuple(r for r in self.supported_regions if (r in NO_TRUNK_PREFIX) != trunk or r in BOTH)
        if digits.startswith("00"):
            candidate = "+" + digits[2:]
        for region in regions:
            try:
                number = phonenumbers.parse(candidate, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return True
        return False

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        results = []
        for match in CANDIDATE.finditer(text):
            candidate = match.group(0).rstrip(" .-/(")
            if sum(c.isdigit() for c in candidate) >= 7 and self._valid(candidate):
                results.append(RecognizerResult(self.supported_entities[0], match.start(),
                                                match.start() + len(candidate), self.SCORE))
        return results
