"""An address read as a whole: the town and postcode around a street address, whatever NER made of them.

The recognizers find the street ("12 high st", "calle mayor 10") and the postcode shapes that are
safe anywhere (UK, Canada, Eircode, ZIP+4). What follows a street address is then read word by word
("12 high st, leeds ls1 4ab", "calle mayor 10, 28013 madrid", "via roma 15 00184 roma",
"901 little knolls, port taylor, h2e7y8"):

- up to four town words (particles such as "di", "de la", "in", "upon" inside), then
- a postcode: one the recognizers found, or a 4-6 digit code (not an amount), which an [ID] or
  nothing had taken, then
- up to four town words after the code; a town also follows any postcode found elsewhere
  ("postcode 75002 paris").

NER spans in that stretch are taken over: spaCy reads "Port Taylor" as a person and "Springfield
88402" as one place; here they become [LOCATION] and [POSTCODE]. A town word is no stop word or
chat word, and no very frequent English word or a typo of one ("please", "istead"), unless it is
capitalised in a message that is not in Title Case ("Parent", "Elise Ville"); words such as
"north", "san", "port" may start a town of two or more words. A town without a postcode counts
only after a comma ("12 high st, leeds").
"""

from __future__ import annotations

import regex

from intent_pipeline.pii.recognizers.person_cue import is_title_case
from intent_pipeline.pii.recognizers.postcode import POSTCODE_CUES
from intent_pipeline.pii.resolve import PiiEntity
from intent_pipeline.pii.words import CHAT_WORDS, TOWN_PARTICLES, is_frequent_or_typo, stop_words

TOWN_MAX_WORDS = 4
# Words more frequent than this are no town unless capitalised ("please", "instead", "house").
TOWN_MIN_RANK = 1000
# Frequent words that start many place names ("north shields", "san giorgio", "port taylor").
TOWN_PREFIXES = frozenset(
    """north south east west new old upper lower great little port fort mount saint st ste san santa santo sao
    são la le les el los las lake glen castle bad sankt""".split())
NOT_TOWN = frozenset("""postcode post code postal zip zipcode plz pin eircode address addr apt flat unit suite
please pls plz thanks thx instead asap not uk usa us""".split()) | {w for cue in POSTCODE_CUES for w in cue.split()}
ABSORBED = frozenset({"PERSON", "LOCATION", "ID"})  # NER spans and default-rule ids a town or code may take over
CODE = regex.compile(r"\d{4,6}(?![\w$€£%]|[.,]\d|\s?(?:usd|eur|gbp|dollars?|euros?|pounds?)\b)", regex.IGNORECASE)
_WORD = regex.compile(r"[^\W\d_](?:[^\W\d_]|['’.-](?=[^\W\d_]))*")
_SEPARATOR = regex.compile(r"[\s,]*(?:[-–]\s*)?")
_GAP = regex.compile(r"[ \t]+|[ \t]*[-–][ \t]*")


def _town_word(word: str, first: bool, capitals_count: bool, code_follows: bool) -> bool:
    low = word.lower()
    if first and low in TOWN_PREFIXES:
        return True
    if low in TOWN_PARTICLES:
        return not first
    if low in stop_words() or low in CHAT_WORDS or low in NOT_TOWN or len(low) < 2:
        return False
    if code_follows or capitals_count and word[:1].isupper() and not word.isupper():
        return True
    return not is_frequent_or_typo(low, TOWN_MIN_RANK)


def _read_town(text: str, cursor: int, limit: int, capitals_count: bool,
               entities: list[PiiEntity] | None = None) -> tuple[int, int] | None:
    """The town that starts after the separators at `cursor`: (start, end) or None. With `entities`,
    a town followed by a postcode is read with any words but stop and chat words ("marina di ardea")."""
    if entities is not None:
        town = _read_town(text, cursor, limit, capitals_count)
        lenient = _read_words(text, cursor, limit, capitals_count, code_follows=True)
        if lenient and (not town or lenient[1] > town[1]) and _code_at(text, lenient[1], limit, entities):
            return lenient
        return town
    return _read_words(text, cursor, limit, capitals_count, code_follows=False)


def _read_words(text: str, cursor: int, limit: int, capitals_count: bool, code_follows: bool) -> tuple[int, int] | None:
    position = _SEPARATOR.match(text, cursor, limit).end()
    words: list[tuple[int, int, str]] = []
    while len(words) < TOWN_MAX_WORDS:
        word = _WORD.match(text, position, limit)
        if not word or (word.end() < limit and text[word.end()].isalnum()):
            break  # "rm7", "ls1": the start of a code, not a town
        if not _town_word(word.group(0), not words, capitals_count, code_follows):
            break
        words.append((word.start(), word.end(), word.group(0).lower()))
        abbreviation = word.group(0).lower() in TOWN_PREFIXES and text[word.end() : word.end() + 1] == "."
        gap = _GAP.match(text, word.end() + abbreviation, limit)  # "st. donna"
        if not gap:
            break
        position = gap.end()
    while words and words[-1][2] in TOWN_PARTICLES:
        words.pop()  # a town never ends on "di"
    if len(words) == 1 and words[0][2] in TOWN_PREFIXES:
        return None  # "north" alone is a direction
    return (words[0][0], words[-1][1]) if words else None


def _code_at(text: str, cursor: int, limit: int, entities: list[PiiEntity]) -> tuple[int, int] | None:
    start = _SEPARATOR.match(text, cursor, limit).end()
    for e in entities:
        if e.start == start and e.entity_type == "POSTCODE":
            return e.start, e.end
    code = CODE.match(text, start, limit)
    return (code.start(), code.end()) if code else None


def _next_fixed(entities: list[PiiEntity], position: int, text: str) -> int:
    """Where the next entity that is no NER span or default id starts (the stretch ends there)."""
    return min((e.start for e in entities if e.start >= position and e.entity_type not in ABSORBED
                and e.entity_type != "POSTCODE"), default=len(text))


def _take_over(entities: list[PiiEntity], new: list[PiiEntity]) -> list[PiiEntity]:
    """`new` spans replace every NER span or id they overlap (a span reaching beyond them is dropped too)."""
    kept = [e for e in entities if all(e.end <= n.start or e.start >= n.end for n in new)
            or (e.entity_type not in ABSORBED and e.entity_type != "POSTCODE")]
    new = [n for n in new if all(n.end <= k.start or n.start >= k.end for k in kept)]
    return sorted(kept + new, key=lambda e: e.start)


def _parts_after_street(text: str, street: PiiEntity, entities: list[PiiEntity]) -> list[PiiEntity]:
    limit = _next_fixed(entities, street.end, text)
    capitals_count = not is_title_case(text, street.start, street.end)
    parts: list[PiiEntity] = []
    cursor = street.end
    town = _read_town(text, cursor, limit, capitals_count, entities)
    code = _code_at(text, town[1] if town else cursor, limit, entities)
    if town and not code and not text[cursor:town[0]].strip().startswith(","):
        town = None  # "12 high st leeds" is read only with a postcode after it; "12 high st, leeds" is read
    if not code and town is None:
        code = _code_at(text, cursor, limit, entities)
    if town:
        parts.append(PiiEntity("LOCATION", town[0], town[1], 0.5))
    if code:
        parts.append(PiiEntity("POSTCODE", code[0], code[1], 0.6))
        after = _read_town(text, code[1], limit, capitals_count)
        if after:
            parts.append(PiiEntity("LOCATION", after[0], after[1], 0.5))
    return parts


def complete_addresses(text: str, entities: list[PiiEntity]) -> list[PiiEntity]:
    """The town and postcode around each street address, and the town after any postcode (see the module)."""
    for street in [e for e in entities if e.entity_type == "STREET_ADDRESS"]:
        entities = _take_over(entities, _parts_after_street(text, street, entities))
    for code in [e for e in entities if e.entity_type == "POSTCODE"]:
        limit = _next_fixed(entities, code.end, text)
        following = [e for e in entities if e.start >= code.end]
        if following and following[0].entity_type == "LOCATION" and not text[code.end:following[0].start].strip(" ,-"):
            continue  # already read
        town = _read_town(text, code.end, limit, not is_title_case(text, code.start, code.end))
        if town:
            entities = _take_over(entities, [PiiEntity("LOCATION", town[0], town[1], 0.5)])
    return entities
