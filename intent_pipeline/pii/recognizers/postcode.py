"""PostcodeRecognizer: UK postcodes, US ZIP and ZIP+4, Canadian postal codes, Irish Eircodes, and
4-6 digit codes next to a postcode cue, a street address or a US state.

UK, Canadian and Eircode shapes and ZIP+4 are specific enough to count anywhere; a bare 4-5 digit
number needs a cue: "postcode 75002", "zip 10001", "plz 10115", "..., ny 10001", or a street address
shortly before it ("12 rue de la paix, 75002 paris", "calle mayor 10, 28013 madrid": that last rule
lives in resolve.complete_addresses, as it needs the street address found first).
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer, cue_regex
from intent_pipeline.pii.recognizers.street_address import StreetAddressRecognizer

UK = r"\b(?:[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?)\s?\d[ABD-HJLNP-UW-Z]{2}\b"
CANADA = r"\b[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][\s-]?\d[ABCEGHJ-NPRSTV-Z]\d\b"
EIRCODE = r"\b(?:[AC-FHKNPRTV-Y]\d{2}|D6W)\s?(?=[0-9AC-FHKNPRTV-Y]{0,3}[AC-FHKNPRTV-Y])[0-9AC-FHKNPRTV-Y]{4}\b"
ZIP4 = r"\b\d{5}-\d{4}\b"
US_STATES = """al ak az ar ca co ct de dc fl ga hi id il in ia ks ky la me md ma mi mn ms mo mt ne nv nh nj nm ny
nc nd oh ok or pa ri sc sd tn tx ut vt va wa wv wi wy alabama alaska arizona arkansas california colorado
connecticut delaware florida georgia hawaii idaho illinois indiana iowa kansas kentucky louisiana maine
maryland massachusetts michigan minnesota mississippi missouri montana nebraska nevada ohio oklahoma oregon
pennsylvania tennessee texas utah vermont virginia washington wisconsin wyoming""".split()
# Postcode cues and their common misspellings: other recognizers' typo-tolerant cues must not take them
# ("postcode" is two typos from "passcode" and "sortcode").
POSTCODE_CUES = ["postcode", "post code", "post-code", "postal code", "zipcode", "zip code", "poscode", "postcde",
                 "postocde", "psotcode", "eircode"]
CODE = r"\d{4,6}(?![\d,.]?\d)(?!\s?(?:usd|eur|gbp|dollars?|euros?|pounds?|%|st|nd|rd|th)\b)"


class PostcodeRecognizer(CuedPatternRecognizer):
    ENTITY = "POSTCODE"
    CONTEXT: ClassVar[list[str]] = ["postcode", "post code", "postal code", "postal", "zip", "zip code", "zipcode",
                                    "plz", "postleitzahl", "code postal", "cp", "cap", "pin code", "pincode",
                                    "eircode", "post-code"]
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("code after cue", CODE, 0.7),
        Pattern("uk after cue", UK, 0.9),
    ]
    UNCUED_PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("uk postcode", UK, 0.6),
        Pattern("canada postal code", CANADA, 0.6),
        Pattern("eircode", EIRCODE, 0.6),
        Pattern("zip+4", ZIP4, 0.6),
        # ", ny 10001" / "texas 75001": a state name or a comma-led state abbreviation
        Pattern("zip after state", rf"(?<=(?:,\s*(?:{'|'.join(US_STATES)})|\b(?:{'|'.join(US_STATES[51:])}))\s+){CODE}",
                0.6),
        # "75002 paris" right after an address cue
        Pattern("code after address cue", rf"(?<={cue_regex(StreetAddressRecognizer.CONTEXT)}[^\d]{{0,60}}?)"
                                          rf"{CODE}(?=[\s,]+[^\W\d_]{{3,}})", 0.5),
    ]
