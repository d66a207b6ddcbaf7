"""TaxIdRecognizer: VAT numbers with their EU/UK country prefix anywhere ("GB123 4567 89",
"DE123456789", "FRXX 123456789", "ESX1234567X"), and tax ids after a tax cue ("vat no",
"tax id 12-3456789", "ein", "tin", "utr", "ust-idnr", "siren", "siret", "gst", "abn").
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer

_EU = "AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|GB|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI|CHE"
VAT = rf"(?<![\w])(?:(?-i:{_EU})[\s\-]?|(?:{_EU})(?=\d))(?=(?:[A-Z\s]*\d){{5}})[0-9A-Z]{{2,4}}(?:[\s\-]?[0-9A-Z]{{2,5}}){{1,4}}(?![\w])"
TAX_NUMBER = r"(?<![\w])(?=[A-Z]*\d)(?=(?:[A-Z\-\s./]*\d){6})[A-Z0-9](?:[A-Z0-9]|[\-\s./](?=[A-Z0-9]*\d)){5,18}(?![\w])"


class TaxIdRecognizer(CuedPatternRecognizer):
    ENTITY = "TAX_ID"
    CONTEXT: ClassVar[list[str]] = ["vat", "vat no", "vat number", "vat id", "vat reg", "vat registration",
                                    "tax id", "tax number", "tax no", "tax reference", "tin", "ein", "itin", "utr",
                                    "ust-idnr", "ust idnr", "ust-id", "steuernummer", "siren", "siret", "tva",
                                    "numéro de tva", "partita iva", "iva", "cif", "gst", "gstin", "abn", "taxpayer id"]
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("tax number after cue", TAX_NUMBER, 0.85)]
    UNCUED_PATTERNS: ClassVar[list[Pattern]] = [Pattern("eu/uk vat number", VAT, 0.6)]
