"""DateOfBirthRecognizer: a date right after a birth cue ("dob 12/03/1985", "born on march 3rd 1990",
"date of birth: 1985-03-12", "birthday is 3 march 85"). Other dates are not personal data and stay.
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer

MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|"
         r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|janvier|février|fevrier|mars|avril|mai|juin|juillet|août|"
         r"aout|septembre|octobre|novembre|décembre|decembre|januar|februar|märz|maerz|juni|juli|oktober|"
         r"dezember|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre|"
         r"gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre)\.?")
DAY = r"\d{1,2}(?:st|nd|rd|th|er|\.|º)?"
YEAR = r"(?:\d{4}|'?\d{2})"
DATES = [
    rf"\d{{1,4}}\s?[/.\-]\s?\d{{1,2}}\s?[/.\-]\s?\d{{2,4}}",
    rf"\d{{1,2}}\s\d{{1,2}}\s(?:19|20)\d{{2}}",
    rf"{DAY}(?:\s+(?:of|de|di))?[\s\-/]+{MONTH}(?:\s+(?:de|del))?,?[\s\-/]+{YEAR}",
    rf"{MONTH}[\s\-/]+{DAY},?[\s\-/]+{YEAR}",
    r"(?:19|20)\d{6}",
]


class DateOfBirthRecognizer(CuedPatternRecognizer):
    ENTITY = "DATE_OF_BIRTH"
    CONTEXT: ClassVar[list[str]] = ["dob", "d.o.b", "d o b", "date of birth", "birth date", "birthdate", "birthday",
                                    "bday", "b-day", "born on", "born", "date de naissance", "geburtsdatum",
                                    "fecha de nacimiento", "data di nascita", "birth"]
    PATTERNS: ClassVar[list[Pattern]] = [Pattern(f"date {i}", rf"{d}(?![\w])", 0.85) for i, d in enumerate(DATES)]
    FILLER = r"(?:[\s:#=,\-]|\b(?:is|was|on|in|the|of|my|date|its|it's)\b){0,8}?"
