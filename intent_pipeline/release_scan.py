"""Release PII scan: does any file of a release contain a raw PII value that stage 1 masked?

Stage 1 keeps the raw values Presidio found only as salted SHA-256 digests in
`ARTIFACTS_DIR/pii_values.json`; the comparison itself (word n-grams of each text file, hashed with
that salt) belongs with the code that wrote the digests (`preprocess.find_leaked_pii`); until that
exists, `leaked_ngrams` here implements the agreed contract. This module picks which files to scan
and reports findings by file only: a leaked value is never shown.

Files copied verbatim from third parties cannot carry our data and are exempt: the bundled
plotly.js, and tokenizer vocabulary files whose vocabulary equals the base model's (they are full of
ordinary first names that would otherwise match masked names).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from intent_pipeline.io import PipelineError, read_json

log = logging.getLogger(__name__)

PII_VALUES_FILE = "pii_values.json"
BINARY_SUFFIXES = {".safetensors", ".bin", ".pt", ".onnx", ".png", ".jpg", ".model", ".msgpack", ".h5"}
TOKENIZER_VOCAB_FILES = {"vocab.txt", "tokenizer.json", "merges.txt", "vocab.json"}
MAX_SCANNED_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_WORDS = 8
_EDGE_PUNCT = "\"'`.,;:!?()[]{}<>"


@dataclass(frozen=True)
class Leak:
    file: str  # path inside the release
    kind: str  # what matched, e.g. "2-word value"; never the value


def load_pii_values(settings: Settings) -> dict:
    path = settings.artifacts_dir / PII_VALUES_FILE
    data = read_json(path, "PII value digests", "run `python ingest_clean.py` (stage 1 writes them)")
    if not isinstance(data, dict) or "salt" not in data or not isinstance(data.get("digests"), list):
        raise PipelineError(f"{path} lacks 'salt' or 'digests': re-run `python ingest_clean.py`")
    return data


def _plotly_js_digest() -> str:
    from plotly.offline import get_plotlyjs

    return hashlib.sha256(get_plotlyjs().encode("utf-8")).hexdigest()


def _vocab_matches_base(folder: Path, settings: Settings) -> bool:
    """True when the release tokenizer's vocabulary is exactly the base model's (no tokens from our data)."""
    from transformers import AutoTokenizer

    try:
        ours = AutoTokenizer.from_pretrained(folder).get_vocab()
        base = AutoTokenizer.from_pretrained(settings.base_model).get_vocab()
    except (OSError, ValueError) as exc:
        log.warning("cannot compare the tokenizer with the base model (%s): scanning its files too", exc)
        return False
    return ours == base


def files_to_scan(folder: Path, settings: Settings) -> list[Path]:
    exempt_digests = {_plotly_js_digest()}
    vocab_exempt = _vocab_matches_base(folder, settings)
    chosen = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix.lower() in BINARY_SUFFIXES or path.stat().st_size > MAX_SCANNED_BYTES:
            continue
        if vocab_exempt and path.name in TOKENIZER_VOCAB_FILES:
            continue
        if path.name.endswith(".js") and hashlib.sha256(path.read_bytes()).hexdigest() in exempt_digests:
            continue
        chosen.append(path)
    return chosen


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None  # binary file without a known suffix: cannot hold a readable value


def pii_digest(value: str, salt: str) -> str:
    return hashlib.sha256((salt + value).encode("utf-8")).hexdigest()


def leaked_ngrams(text: str, pii: dict) -> list[int]:
    """Word counts of the n-grams of `text` whose salted digest is in `pii["digests"]`.

    Words are split on whitespace, tried both as written and with surrounding punctuation
    stripped (so `Smith,` and `"john@x.io"` match), each n-gram as written and lower-cased.
    """
    digests = set(pii["digests"])
    salt = str(pii["salt"])
    max_words = int(pii.get("max_words") or DEFAULT_MAX_WORDS)
    raw = text.split()
    stripped = [w.strip(_EDGE_PUNCT) for w in raw]
    found = []
    seen: set[str] = set()
    for words in (raw, stripped):
        for n in range(1, max_words + 1):
            for start in range(len(words) - n + 1):
                gram = " ".join(words[start : start + n])
                for candidate in (gram, gram.lower()):
                    if candidate and candidate not in seen:
                        seen.add(candidate)
                        if pii_digest(candidate, salt) in digests:
                            found.append(n)
    return found


def _matcher() -> Callable[[str, dict], list]:
    try:
        from preprocess import find_leaked_pii  # stage 1's own matcher, once it provides one
    except ImportError:
        return leaked_ngrams
    return find_leaked_pii


def find_leaks(folder: Path, settings: Settings) -> list[Leak]:
    """Every release file (under `folder`) containing a digest-matching word n-gram."""
    find_leaked_pii = _matcher()
    pii = load_pii_values(settings)
    if not pii["digests"]:
        log.info("stage 1 found no PII values: nothing to scan for")
        return []
    leaks: list[Leak] = []
    scanned = 0
    for path in files_to_scan(folder, settings):
        text = _read_text(path)
        if text is None:
            continue
        scanned += 1
        for n_words in find_leaked_pii(text, pii):
            leaks.append(Leak(file=path.relative_to(folder).as_posix(), kind=f"{n_words}-word value"))
    log.info("PII scan: %d file(s) checked against %d masked value(s), %d finding(s)",
             scanned, len(pii["digests"]), len(leaks))
    return leaks
