"""Word lists the recognizers share to tell a name (or a username) from an ordinary word in chat.

`common_words()` is the bundled frequency list (data/common_words.txt, built by
tools/build_common_words.py); `CHAT_WORDS` adds chat and support vocabulary that no dictionary has
("pls", "paypal", "wifi"); `NOT_NAME_AFTER_NAME` are words that follow a name without being part of
it ("im sarah here", "for john asap").
"""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

import regex

_DATA = Path(__file__).resolve().parent / "data"

# Chat spellings and product/tech words a support message uses as words, never as names.
CHAT_WORDS = frozenset(
    """im ive id ill dont cant wont didnt doesnt isnt wasnt arent havent hasnt couldnt wouldnt shouldnt
    thats whats theres u ur ya yeah yep nope ok okay pls plz thx thanks ty asap btw fyi idk imo lol omg
    hi hii hiya hey hello heya sup morning evening afternoon mornin evenin bye goodbye cya ciao hola bonjour salut
    hallo namaste merci gracias danke grazie
    paypal ebay amazon iphone ipad android app apps wifi online offline login logout signup email emails
    emailed gmail hotmail outlook yahoo website webpage checkout cart refund refunds refunded cancelled
    cancelling canceled canceling shipped delivered subscription subscriptions unsubscribe username
    password passcode otp pin cvv sms voicemail upgrade downgrade premium pro basic standard plus gold
    platinum silver bronze newsletter invoice invoices chatbot bot agent support helpdesk
    netflix spotify hulu disney xbox playstation nintendo samsung huawei xiaomi pixel macbook airpods
    uber lyft airbnb venmo zelle revolut monzo klarna stripe visa mastercard amex fedex ups usps dhl
    hermes royalmail whatsapp facebook instagram tiktok twitter youtube google alexa kindle
    monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun
    january february march april may june july august september october november december jan feb mar apr jun
    jul aug sep sept oct nov dec christmas xmas easter halloween thanksgiving weekend weekday tonight
    info infos details settings prefs preferences pic pics photo avatar acct acc pw pwd msg msgs dm dms
    laptop laptops desktop desktops smartwatch earbuds
    promo promos promocode coupon coupons voucher vouchers giftcard ecommerce wishlist preorder restock
    cafe paid said sent spent bought topup topups""".split()
)

# Words that follow a name in chat without belonging to it.
NOT_NAME_AFTER_NAME = frozenset(
    """please pls plz here there now today tomorrow yesterday again asap thanks thx speaking calling
    writing texting messaging and or but so then too also regarding about re from at in on to with by
    for of is was are were am be been has have had will would can could should shall may might must
    just only still already yet not no yes hi hello hey dear sir madam team""".split()
)

# Lower-case words inside a town name ("santeramo in colle", "stratford upon avon", "castiglione della valle").
TOWN_PARTICLES = frozenset(
    "di de del della delle dei degli da do dos das du des la le les en in sur sous am an der im on upon y el i".split())

# Name particles: part of a surname, never a name on their own ("van der berg", "de la cruz").
NAME_PARTICLES = frozenset("van von der den de del della di da dos das du la le el al bin ibn ter ten".split())


@functools.lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Common English words (lower case), plus CHAT_WORDS."""
    words = (_DATA / "common_words.txt").read_text(encoding="utf-8").split()
    return frozenset(words) | CHAT_WORDS


_CURRENCY_WORD = regex.compile(
    r"(?:dollar|pound|euro|ruble|rouble|franc|peso|rupee|krona|krone|dinar|real|rand|lira)s?|yen|yuan")


@functools.lru_cache(maxsize=1)
def coarse_places() -> frozenset[str]:
    """Countries, continents, regions and nationality words (lower case; tools/build_coarse_places.py)."""
    return frozenset((_DATA / "coarse_places.txt").read_text(encoding="utf-8").splitlines()) - {""}


def is_coarse_place(value: str) -> bool:
    """A country, continent or region ("China", "the UK", "Europe"): no place that identifies a person.
    HIPAA's Safe Harbor rule keeps geographic units of state size and above; towns stay masked."""
    words = value.lower().strip(" .,;:!?'’\"").split()
    if len(words) > 1 and _CURRENCY_WORD.fullmatch(words[-1]):
        words = words[:-1]  # "Russian Ruble", "UK pounds"
    return " ".join(words) in coarse_places()


@functools.lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """spaCy's English stop words plus chat spellings of them ("im", "u")."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | frozenset("im ive id ill u ur ya dont cant wont pls plz".split())


FOREIGN_LANGUAGES = ("fr", "de", "es", "it", "pt", "nl", "pl", "sv", "tr")


@functools.lru_cache(maxsize=1)
def foreign_stop_words() -> frozenset[str]:
    """spaCy's stop words of the other languages support chat arrives in (FOREIGN_LANGUAGES), less
    English ones: evidence that a lower-case message is not English ("tu connais une ...")."""
    import importlib.util

    # The stop-word files alone: importing spacy.lang.fr compiles its tokenizer exceptions (seconds).
    base = Path(importlib.util.find_spec("spacy.lang").submodule_search_locations[0])
    words: set[str] = set()
    for language in FOREIGN_LANGUAGES:
        spec = importlib.util.spec_from_file_location(f"_stop_words_{language}", base / language / "stop_words.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        words |= module.STOP_WORDS
    return frozenset(words - stop_words())


_VOWELS = frozenset("aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿąęóœ")


def is_gibberish(word: str) -> bool:
    """No vowel ("bnmbnmbnm", "vcx"), or one letter three times in a row ("aaaahhh", "yyyy")."""
    low = word.lower()
    letters = [c for c in low if c.isalpha()]
    if not letters:
        return False
    tripled = any(low[i] == low[i + 1] == low[i + 2] for i in range(len(low) - 2))
    return tripled or not any(c in _VOWELS for c in letters)


@functools.lru_cache(maxsize=1)
def _ranks() -> dict[str, int]:
    words = (_DATA / "common_words.txt").read_text(encoding="utf-8").split()
    return {w: i for i, w in enumerate(words)}


_SUFFIXES = (("ies", "y"), ("ier", "y"), ("iest", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""),
             ("ing", "e"), ("ly", ""), ("er", ""), ("ers", ""), ("ment", ""), ("ments", ""), ("ness", ""),
             ("ations", "e"), ("ations", ""))


_PREFIXES = ("re", "un", "pre", "mis", "dis", "over", "out", "non", "co", "de", "sub", "super")


# An accented spelling is a common word when, without its accents, it is among this many most frequent
# words ("naïve", "résumé", "ÁCCOUNT"): rarer listed words are often names ("Thérèse", "Müller").
FOLDED_MAX_RANK = 12000


def fold_accents(word: str) -> str:
    """`word` without its accents ("naïve" -> "naive"): the word list is unaccented, chat is not."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def _in_or_inflected(word: str, words: frozenset[str], min_stem: int) -> bool:
    return word in words or any(
        word.endswith(suffix) and len(word) - len(suffix) >= min_stem and word[: -len(suffix)] + replacement in words
        for suffix, replacement in _SUFFIXES)


def is_common(word: str) -> bool:
    """A common English word, or an inflection of one ("compensations", "tracked"), or a frequent one
    with accents ("naïve", "résumé")."""
    word = word.lower().strip("'’")
    if _in_or_inflected(word, common_words(), 4):
        return True
    if not word.isascii():
        folded = fold_accents(word)
        if folded != word and (folded in CHAT_WORDS or _in_or_inflected(folded, _frequent(FOLDED_MAX_RANK), 4)):
            return True
    # "rewatching", "unsubscribed", "preorders": a prefix on a common word
    return any(word.startswith(prefix) and len(word) - len(prefix) >= 4 and is_common(word[len(prefix):])
               for prefix in _PREFIXES)


# A pronoun or verb with a clitic ("I'm", "isn't", "we'll", "it's"): no name is written like this, but
# spaCy's small model tags "since I'm dissatisfied" as a person. "'s" counts only after a pronoun, since
# "John's" is a name.
_CONTRACTION = regex.compile(r"([^\W\d_]+?)(n['’]t|['’](?:m|re|ve|ll|d|s))", regex.IGNORECASE)
_NEGATED_STEMS = frozenset({"ca", "wo", "sha", "ai"})  # "can't", "won't", "shan't", "ain't"
_PRONOUNS_WITH_S = frozenset("it that there here what who where how let he she everyone someone".split())


def is_contraction(word: str) -> bool:
    """A function word with a clitic ("I'm", "isn't", "won't", "it's"), not a name ("John's", "O'Brien")."""
    match = _CONTRACTION.fullmatch(word)
    if not match:
        return False
    stem, clitic = match.group(1).lower(), match.group(2).lower()
    if clitic.endswith("s"):
        return stem in _PRONOUNS_WITH_S
    return stem in stop_words() or stem in _NEGATED_STEMS


@functools.lru_cache(maxsize=1 << 16)  # the same chat words come back in every message
def is_ordinary_word(word: str) -> bool:
    """A stop word or a common word, accents aside ("has", "naïve", "CAFÉ"): common_words.txt leaves
    most stop words out, so `is_common` alone calls "has" a rare word."""
    low = word.lower().strip("'’")
    return low in stop_words() or is_common(low) or is_contraction(low)


@functools.lru_cache(maxsize=1 << 16)  # the same chat words come back in every message
def is_frequent_or_typo(word: str, max_rank: int) -> bool:
    """One of the `max_rank` most frequent words (or an inflection of one), a chat word, or one of them
    with a typo ("pleae", "istead"): for a word that may be a rare name or town, but not a word a
    sentence is made of."""
    word = word.lower().strip("'’")
    frequent = _frequent(max_rank)
    if word in CHAT_WORDS or _in_or_inflected(word, frequent, 3):
        return True
    if len(word) < 5:
        return False  # short words are one letter away from too many others ("elis", "bath")
    swaps = (word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1))
    drops = (word[:i] + word[i + 1 :] for i in range(len(word)))
    adds = (word[:i] + c + word[i:] for i in range(len(word) + 1) for c in "abcdefghijklmnopqrstuvwxyz")
    return any(w in frequent for w in (*swaps, *drops, *adds))


@functools.lru_cache(maxsize=4)
def _frequent(max_rank: int) -> frozenset[str]:
    return frozenset(w for w, rank in _ranks().items() if rank < max_rank)


def is_compound_of_common(word: str, min_part: int = 4) -> bool:
    """Two common words run together ("smartphones", "kitchenware", "backpacks") or joined by hyphens in
    lower case ("top-ups", "cross-border"): a product or a thing, not a name."""
    if "-" in word.strip("-"):
        return word.islower() and all(is_ordinary_word(part) for part in word.split("-") if part)
    word = word.lower()
    return any(is_common(word[:i]) and is_common(word[i:]) for i in range(min_part, len(word) - min_part + 1))


def frequency_rank(word: str) -> int:
    """Position of `word` in the common-word list (0 = most frequent); a large number if absent."""
    return _ranks().get(word.lower().strip("'’"), 1_000_000)
