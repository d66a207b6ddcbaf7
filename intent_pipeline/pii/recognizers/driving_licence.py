"""DrivingLicenceRecognizer: a driving licence number right after a licence cue: UK DVLA numbers
("MORGA753116SM9IJ"), US state formats ("D1234567", "123-456-789"), 5-18 letters and digits with at
least 4 digits, dashes and spaces allowed between groups.
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer

LICENCE_NUMBER = r"(?<![\w])(?:[A-Z]{5}[\s\-]?(?=\d)|(?=[A-Z]*\d))(?=(?:[A-Z\-\s]*\d){4})[A-Z0-9](?:[A-Z0-9]|[\-\s](?=[A-Z0-9]*\d)){4,20}(?![\w])"


class DrivingLicenceRecognizer(CuedPatternRecognizer):
    ENTITY = "DRIVING_LICENCE"
    CONTEXT: ClassVar[list[str]] = ["driving licence", "driving license", "driver's license", "drivers license",
                                    "driver license", "driver licence", "drivers licence", "driving licence no",
                                    "licence", "license", "licence no", "license no", "licence number",
                                    "license number", "dl", "dl no", "dl number", "permis de conduire",
                                    "führerschein", "fuhrerschein", "carnet de conducir", "patente"]
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("licence number after cue", LICENCE_NUMBER, 0.85)]
