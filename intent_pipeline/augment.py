"""Chat-style noise: how real customers type (lower-case, no punctuation, slang, typos).

Used by stage 3 to augment the training split and to write a noisy copy of the test split. All
randomness comes from the `random.Random` passed in, so outputs are reproducible from SEED.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

# Longest phrases first so "thank you" wins over "you".
SLANG: dict[str, tuple[str, ...]] = {
    "i don't know": ("idk",),
    "as soon as possible": ("asap",),
    "to be honest": ("tbh",),
    "right now": ("rn",),
    "thank you": ("thx", "ty"),
    "want to": ("wanna",),
    "going to": ("gonna",),
    "got to": ("gotta",),
    "please": ("pls", "plz"),
    "thanks": ("thx",),
    "you're": ("ur", "youre"),
    "your": ("ur",),
    "you": ("u",),
    "are": ("r",),
    "because": ("cuz", "bc"),
    "okay": ("ok", "k"),
    "about": ("abt",),
    "information": ("info",),
    "message": ("msg",),
    "tomorrow": ("tmrw",),
    "today": ("2day",),
    "people": ("ppl",),
    "with": ("w/",),
    "without": ("w/o",),
    "for": ("4",),
    "hours": ("hrs",),
    "minutes": ("mins",),
    "number": ("num", "no."),
    "don't": ("dont",),
    "can't": ("cant",),
    "i'm": ("im",),
    "what": ("wat",),
    "why": ("y",),
}
_SLANG_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(SLANG, key=len, reverse=True)) + r")\b", re.I)

_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
KEYBOARD_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(_KEYBOARD_ROWS):
    for _c, _ch in enumerate(_row):
        near = [_row[i] for i in (_c - 1, _c + 1) if 0 <= i < len(_row)]
        for _other in (_r - 1, _r + 1):
            if 0 <= _other < len(_KEYBOARD_ROWS):
                near += [_KEYBOARD_ROWS[_other][i] for i in (_c, _c + 1) if i < len(_KEYBOARD_ROWS[_other])]
        KEYBOARD_NEIGHBOURS[_ch] = "".join(near)

TYPO_KINDS = ("neighbour", "drop", "double", "swap")


def typo(word: str, rng: random.Random) -> str:
    """One realistic typo inside `word` (first letter kept: people rarely miss it)."""
    if len(word) < 3 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word))
    kind = rng.choice(TYPO_KINDS)
    if kind == "neighbour" and word[i].lower() in KEYBOARD_NEIGHBOURS:
        return word[:i] + rng.choice(KEYBOARD_NEIGHBOURS[word[i].lower()]) + word[i + 1 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    if i < len(word) - 1:  # swap with the next letter
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + word[i] + word[i:]


def _slangify(text: str, rng: random.Random, rate: float) -> str:
    def replace(match: re.Match) -> str:
        if rng.random() >= rate:
            return match.group(0)
        return rng.choice(SLANG[match.group(0).lower()])

    return _SLANG_RE.sub(replace, text)


def _recase(text: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.6:
        return text.lower()
    if roll < 0.65:
        return text.upper()
    if roll < 0.75:
        return text[:1].lower() + text[1:]
    return text


def _repunctuate(text: str, rng: random.Random) -> str:
    roll = rng.random()
    stripped = text.rstrip(".?!")
    if roll < 0.6:
        text = stripped
    elif roll < 0.75:
        text = stripped + rng.choice(("?", "??", "!", "...", " ?"))
    if rng.random() < 0.3:
        text = text.replace("'", "").replace(",", "")
    return text


def chat_noise(text: str, rng: random.Random, slang_rate: float = 0.7, typo_rate: float = 0.12) -> str:
    """`text` as a hurried chat user might type it; always differs from `text` when it can."""
    noisy = _slangify(text, rng, slang_rate)
    words = noisy.split(" ")
    words = [typo(w, rng) if rng.random() < typo_rate else w for w in words]
    noisy = _repunctuate(_recase(" ".join(words), rng), rng)
    if noisy == text:  # promised noise: force at least one change
        candidates = [i for i, w in enumerate(words) if len(w) >= 3 and w.isalpha()]
        if candidates:
            i = rng.choice(candidates)
            words[i] = typo(words[i], rng)
            noisy = " ".join(words)
        else:
            noisy = text.lower() if text.lower() != text else text + "?"
    return noisy


def noisy_copies(texts: Sequence[str], seed: int, fraction: float = 1.0) -> list[tuple[int, str]]:
    """(index, noisy text) for a seeded random `fraction` of `texts` (all when fraction >= 1)."""
    rng = random.Random(seed)
    chosen = range(len(texts)) if fraction >= 1 else sorted(rng.sample(range(len(texts)), round(len(texts) * fraction)))
    return [(i, chat_noise(texts[i], rng)) for i in chosen]
