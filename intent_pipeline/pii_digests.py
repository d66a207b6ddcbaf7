"""Salted digests of the raw PII values stage 1 masked, and scanning files for leaks of them.

`PiiDigests` keeps salted SHA-256 digests (never raw values) in ARTIFACTS_DIR/pii_values.json;
`find_leaked_pii()` scans texts or files against them, so stage 6 can refuse a release that leaks a
masked value.

A value that stage 1 masked somewhere but that also occurs unmasked in the training data ("max" as
a name in one message, "max" as a word in many) is a word of the data, not a secret the release can
leak: `forget_words()` drops those digests (their count is kept), so the release gate does not fire
on them. The digests are salted, but the salt sits in the same file, and short values (7-digit
order numbers, 5-digit bill numbers, common first names) can be brute-forced by whoever holds
`pii_values.json`: it stays in ARTIFACTS_DIR, is never part of a release (push_model copies only
the model, metrics and plots), and should not be shared.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from intent_pipeline.errors import PipelineError
from intent_pipeline.files import write_json_atomic

if TYPE_CHECKING:
    from intent_pipeline.masking import MaskResult

_TOKEN_SPLIT = re.compile(r"[\s,;|\"<>\\]+")
_EDGE = "()[]{}.,;:!?'\"`*_-"


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT.split(text.lower()) if t]


def _canonical(text: str) -> str:
    """The form that is hashed: lower-case tokens joined by one space, edge punctuation stripped."""
    return " ".join(_tokens(text)).strip(_EDGE)


def _digest(salt: str, value: str) -> str:
    return hashlib.sha256((salt + value).encode("utf-8")).hexdigest()


class PiiDigests:
    """Collects salted SHA-256 digests of raw PII values; raw values are never stored."""

    def __init__(self, salt: str | None = None) -> None:
        self.salt = salt or secrets.token_hex(16)
        self.by_digest: dict[str, str] = {}
        self.max_tokens = 1
        self.words_dropped = 0

    def add(self, entity_type: str, raw_value: str) -> None:
        canonical = _canonical(raw_value)
        if canonical:
            self.by_digest[_digest(self.salt, canonical)] = entity_type
            self.max_tokens = max(self.max_tokens, len(canonical.split(" ")))

    def add_result(self, original: str, result: MaskResult) -> None:
        for entity in result.entities:
            self.add(entity.entity_type, original[entity.start : entity.end])

    def _ngram_digests(self, text: str, ignore: frozenset[str] = frozenset()):
        tokens = _tokens(text)
        for n in range(1, self.max_tokens + 1):
            for i in range(len(tokens) - n + 1):
                value = " ".join(tokens[i : i + n]).strip(_EDGE)
                if value and value not in ignore:
                    yield _digest(self.salt, value)

    def forget_words(self, masked_texts: Iterable[str]) -> int:
        """Drop the values that also occur unmasked in `masked_texts` (the training data); returns how many."""
        seen = set()
        for text in masked_texts:
            seen.update(d for d in self._ngram_digests(text) if d in self.by_digest)
        for digest in seen:
            del self.by_digest[digest]
        self.words_dropped += len(seen)
        return len(seen)

    def save(self, path: Path) -> None:
        """Write the digests readable by the owner only: salt + digest lets anyone test a guessed value."""
        write_json_atomic(path, {
            "algorithm": "sha256(salt + value); value = lower-case, whitespace-folded, edge punctuation stripped",
            "salt": self.salt,
            "max_tokens": self.max_tokens,
            "counts": dict(Counter(self.by_digest.values())),
            "dropped_as_words_of_the_data": self.words_dropped,
            "values": [{"type": t, "digest": d} for d, t in sorted(self.by_digest.items())],
        }, permissions=0o600)

    @classmethod
    def load(cls, path: Path | str) -> "PiiDigests":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            digests = cls(data["salt"])
            digests.by_digest = {v["digest"]: v["type"] for v in data["values"]}
            digests.max_tokens = int(data.get("max_tokens", 1))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PipelineError(f"cannot read PII digests at {path} ({exc}): re-run `python ingest_clean.py`") from None
        return digests

    def leaked_types(self, text: str, ignore: Iterable[str] = ()) -> set[str]:
        """Types of stored values that occur in `text` (as whole tokens or token n-grams); n-grams whose
        canonical form is in `ignore` (the release's own field and label names) do not count."""
        ignored = frozenset(_canonical(i) for i in ignore)
        return {self.by_digest[d] for d in self._ngram_digests(text, ignored) if d in self.by_digest}


def find_leaked_pii(texts_or_files: Iterable[str | Path], pii_values_path: Path | str) -> list[str]:
    """Sorted entity types of raw PII values (from stage 1's `pii_values.json`) found in the inputs.

    A `Path` is read as a file (undecodable bytes ignored); a `str` is scanned as text. Note that
    single-word names also occur in tokenizer vocabularies: scan text files, not `vocab.txt`.
    """
    digests = PiiDigests.load(pii_values_path)
    found: set[str] = set()
    for item in texts_or_files:
        text = item.read_text(encoding="utf-8", errors="ignore") if isinstance(item, Path) else item
        found |= digests.leaked_types(text)
    return sorted(found)
