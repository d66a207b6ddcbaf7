"""ChatUrlRecognizer: web addresses with a scheme, "www." or a common top-level domain.

(Not named UrlRecognizer: Presidio's recognizer loader finds classes by name, and ours would shadow
its own in a default AnalyzerEngine built in the same process.)
"""

from __future__ import annotations

from typing import ClassVar

import regex

from presidio_analyzer import Pattern, PatternRecognizer

URL = (r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)\]}]"
       r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|uk|de|fr|es|it|nl|info|biz|us|ca|au|eu|app|dev|shop|"
       r"store)\b(?:/[^\s<>\"']*[^\s<>\"'.,;:!?)\]}])?")
_DOMAIN = regex.compile(r"\w\.\w")


class ChatUrlRecognizer(PatternRecognizer):
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("url", URL, 0.85)]

    def __init__(self, patterns: list[Pattern] | None = None, supported_language: str = "en") -> None:
        super().__init__(supported_entity="URL", patterns=patterns or self.PATTERNS,
                         supported_language=supported_language, name=type(self).__name__)

    @staticmethod
    def could_match(text: str) -> bool:
        return bool(_DOMAIN.search(text))
