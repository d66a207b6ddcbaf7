"""UsernameRecognizer: account handles, "@name" anywhere (not inside an e-mail address) and the value
after a username cue: "username is jsmith_82", "user id: kate.w", "my login is bigdave", "ig handle
dan_the_man". After a cue, an ordinary word counts only if it carries a digit, '_' or '.', so "my
username is locked" stays as written.
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer
from intent_pipeline.pii.words import is_common, stop_words

HANDLE = r"(?<![\w.@])@[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,28}[A-Za-z0-9_])?(?![\w@]|\.[a-z]{2,})"
VALUE = r"(?<![\w@])[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,38}[A-Za-z0-9_])?(?![\w@]|\.[a-z]{2,}\b)"


class UsernameRecognizer(CuedPatternRecognizer):
    ENTITY = "USERNAME"
    CONTEXT: ClassVar[list[str]] = ["username", "user name", "usernames", "user id", "userid", "user", "login",
                                    "login name", "login id", "log in", "handle", "screen name", "screenname",
                                    "gamertag", "gamer tag", "account name", "display name", "nickname", "alias",
                                    "profile", "ig", "insta", "instagram", "twitter", "tiktok", "psn", "xbox",
                                    "steam", "discord", "reddit", "github", "skype"]
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("username after cue", VALUE, 0.75)]
    UNCUED_PATTERNS: ClassVar[list[Pattern]] = [Pattern("@handle", HANDLE, 0.7)]
    MIN_DIGITS = 0
    # Cheap test before any regex: a handle, or the start of a cue word (typos mostly keep it).
    GATE_ROOTS: ClassVar[tuple[str, ...]] = ("@", "user", "login", "log in", "handle", "name", "tag", "alias", "profile",
                                             "insta", "twitter", "tiktok", "psn", "xbox", "steam", "discord", "reddit",
                                             "github", "skype", "ig ")
    FILLER = (r"(?:[\s:#=,\-]|\b(?:is|was|its|it's|my|the|name|id|on|for|of|as|should|be|called|under|"
              r"account)\b){0,8}?")

    def could_match(self, text: str) -> bool:
        low = text.lower()
        return any(root in low for root in self.GATE_ROOTS)

    def invalidate_result(self, pattern_text: str) -> bool:
        word = pattern_text.lstrip("@").lower()
        if pattern_text.startswith("@"):
            return False
        plain = word.isalpha() and "_" not in word and "." not in word
        return word in stop_words() or (plain and is_common(word)) or word.isdigit() and len(word) < 3
