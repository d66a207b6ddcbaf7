"""SecurityCodeRecognizer: card security codes, PINs and one-time codes right after their cue:
"cvv 123", "the cvc on the back is 4567", "pin: 0000", "otp is 834291", "verification code 55 12 90".
"""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import Pattern

from intent_pipeline.pii.recognizers.base import CuedPatternRecognizer
from intent_pipeline.pii.recognizers.postcode import POSTCODE_CUES


class SecurityCodeRecognizer(CuedPatternRecognizer):
    ENTITY = "SECURITY_CODE"
    CONTEXT: ClassVar[list[str]] = ["cvv", "cvv2", "cvc", "cvc2", "cv2", "csc", "security code", "card code",
                                    "pin", "pin code", "pin number", "otp", "one time code", "one-time code",
                                    "one time password", "one time pin", "verification code", "confirmation code",
                                    "auth code", "authentication code", "2fa code", "2fa", "passcode",
                                    "access code", "sms code", "login code", "security number", "three digits",
                                    "3 digits", "digits on the back"]
    # "postcode" is "passcode" with two typos; the code after it is a postcode.
    NOT_CUES: ClassVar[list[str]] = POSTCODE_CUES
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("code after cue", r"(?<![\w])\d{3,4}(?![\w])|(?<![\w])\d{3}[\s\-]?\d{3}(?![\w])|(?<![\w])\d{2}[\s\-]\d{2}[\s\-]\d{2}(?![\w])"
                r"|(?<![\w])\d{5,8}(?![\w])",
                0.8)]
    FILLER = (r"(?:[\s:#=.,\-]|\b(?:is|was|are|its|it's|no|number|my|the|on|of|at|in|for|me|card|back|new|sent|"
              r"code|digits|you|received|got|i|just|to|phone|and|that)\b){0,14}?")
