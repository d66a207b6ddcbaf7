"""Seeded generator of varied-form chat text (shared by tests/test_one_text_path.py and bench_pii.py).

The same request written the many ways chat arrives: Title Case, ALL CAPS, random case, emoji, odd and
zero-width whitespace, fullwidth forms, accents, quotes and dashes at the edges, extra punctuation.
`vary` applies these to any text (bench_pii.py varies PII-free seed messages with it to measure
over-masking); `varied_messages` builds distinct messages from the request templates below.
"""

from __future__ import annotations

import random

N_MESSAGES = 500

REQUESTS = [
    "where is my order", "my package has not arrived yet", "can you track my parcel", "when will my order ship",
    "my order is late again", "has my delivery been dispatched", "order status please",
    "i want a refund", "please refund my money", "how do i get my money back", "refund for the broken headphones",
    "i returned the item but got no refund", "when will the refund reach my card",
    "send me the invoice", "i need an invoice for my purchase", "can i get a receipt for order 1234",
    "the invoice has the wrong address", "where do i download my bill",
    "i want to talk to a human", "how can i contact support", "connect me with an agent",
    "nobody answers the phone", "i need help from customer service", "is there a support email",
    "café order was wrong and i want a refund", "naïve question: where is my résumé order",
]
OPENERS = ["", "hi, ", "hello ", "hey!! ", "excuse me, ", "urgent: ", "ok so ", "please, "]
CLOSERS = ["", "?", "??", "?!", "!!!", ".", "...", " …", " please", " thanks!", " asap!!"]
EMOJI = ["🙂", "😡", "📦", "👍🏽", "❤️", "🙏", "🤔", "🇬🇧", "😂😂", "💳"]
WRAPS = [("", ""), ('"', '"'), ("'", "'"), ("“", "”"), ("- ", ""), ("-- ", " --"), ("— ", " —"), ("`", "`"),
         ("«", "»"), ("...", "...")]
SPACES = [" ", "  ", "\t", "\n", "\u00a0", "\u3000", " \r\n ", "\u2009"]
ACCENTS = {"a": "á", "e": "é", "i": "ï", "o": "ö", "u": "ü", "c": "ç"}
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _recase(text: str, rng: random.Random) -> str:
    style = rng.randrange(5)
    if style == 1:
        return text.upper()
    if style == 2:
        return text.title()
    if style == 3:
        return text[:1].upper() + text[1:]
    if style == 4:
        return "".join(c.upper() if rng.random() < 0.5 else c for c in text)
    return text


def _noise(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    if rng.random() < 0.5:  # odd whitespace between words
        text = "".join(w + (rng.choice(SPACES) if i < len(words) - 1 else "") for i, w in enumerate(words))
    if rng.random() < 0.3:  # a zero-width character inside a word or at an edge
        pos = rng.randrange(len(text) + 1)
        text = text[:pos] + rng.choice(ZERO_WIDTH) + text[pos:]
    if rng.random() < 0.2:  # fullwidth forms for part of the message
        cut = rng.randrange(len(text) + 1)
        text = _fullwidth(text[:cut]) + text[cut:]
    if rng.random() < 0.3:
        text = (rng.choice(EMOJI) + " " + text) if rng.random() < 0.5 else (text + " " + rng.choice(EMOJI))
    return text


def _accent(text: str, rng: random.Random) -> str:
    """One word with its vowels accented ("order" -> "ördér"), as names of cafés and résumés are."""
    words = text.split(" ")
    i = rng.randrange(len(words))
    words[i] = "".join(ACCENTS.get(c, c) for c in words[i])
    return " ".join(words)


def vary(text: str, rng: random.Random, accent_share: float = 0.0) -> str:
    """`text` in a random chat form: case, an accented word (in `accent_share` of texts), wrapping
    quotes or dashes, odd whitespace, zero-width characters, fullwidth forms, emoji, edge whitespace."""
    if accent_share and rng.random() < accent_share:
        text = _accent(text, rng)
    body = _recase(text, rng)
    left, right = rng.choice(WRAPS)
    text = _noise(left + body + right, rng)
    return rng.choice(["", " ", "\t", "\n ", "\u00a0"]) + text + rng.choice(["", " ", "\n", "  \t", "\u200b"])


def varied_messages(n: int = N_MESSAGES, seed: int = 16) -> list[str]:
    """`n` distinct raw chat messages, the same on every run."""
    rng = random.Random(seed)
    messages: list[str] = []
    seen: set[str] = set()
    while len(messages) < n:
        text = vary(rng.choice(OPENERS) + rng.choice(REQUESTS) + rng.choice(CLOSERS), rng)
        if text not in seen:
            seen.add(text)
            messages.append(text)
    return messages
