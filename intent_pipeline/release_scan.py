"""Release PII scan: does any file of a release contain a raw PII value that stage 1 masked?

Stage 1 keeps the raw values Presidio found only as salted SHA-256 digests in
`ARTIFACTS_DIR/pii_values.json`; the comparison itself (word n-grams of each text file, hashed with
that salt) is `intent_pipeline.pii_digests.find_leaked_pii`, the code that wrote the digests. This module picks which
files to scan and reports findings by file and entity type only: a leaked value is never shown.

Files copied verbatim from third parties cannot carry our data and are exempt: the bundled
plotly.js, and tokenizer vocabulary files whose vocabulary equals the base model's (they are full of
ordinary first names that would otherwise match masked names).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from intent_pipeline.artifacts import TRAINING_CONFIG, Artifacts
from intent_pipeline.errors import PipelineError

log = logging.getLogger(__name__)

BINARY_SUFFIXES = {".safetensors", ".bin", ".pt", ".onnx", ".png", ".jpg", ".model", ".msgpack", ".h5"}
TOKENIZER_VOCAB_FILES = {"vocab.txt", "tokenizer.json", "merges.txt", "vocab.json"}
MAX_SCANNED_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Leak:
    file: str  # path inside the release
    kind: str  # entity type(s) that matched, e.g. "PERSON"; never the value


def _plotly_js_digest() -> str:
    from plotly.offline import get_plotlyjs

    return hashlib.sha256(get_plotlyjs().encode("utf-8")).hexdigest()


def _vocab_matches_base(folder: Path, settings: Settings) -> bool:
    """True when the release tokenizer's vocabulary is exactly its base model's (no tokens from our data)."""
    import json

    from transformers import AutoTokenizer

    training_config = folder / TRAINING_CONFIG
    base_model = settings.base_model
    if training_config.is_file():
        base_model = json.loads(training_config.read_text(encoding="utf-8")).get("base_model") or base_model
    try:
        ours = AutoTokenizer.from_pretrained(folder).get_vocab()
        base = AutoTokenizer.from_pretrained(base_model).get_vocab()
    except Exception as exc:  # any failure only costs the exemption: the files are then scanned
        log.warning("cannot compare the tokenizer with base model %s (%s): scanning its files too",
                    base_model, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
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


def find_leaks(folder: Path, settings: Settings) -> list[Leak]:
    """Every release file (under `folder`) containing a raw PII value stage 1 masked."""
    from intent_pipeline.pii_digests import find_leaked_pii

    pii_path = Artifacts.from_settings(settings).pii_values
    if not pii_path.is_file():
        raise PipelineError(f"PII value digests not found at {pii_path}: run `python ingest_clean.py` "
                            "(a release is only published after a scan for the values it masked)")
    leaks: list[Leak] = []
    files = files_to_scan(folder, settings)
    for path in files:
        kinds = find_leaked_pii([path], pii_path)
        if kinds:
            leaks.append(Leak(file=path.relative_to(folder).as_posix(), kind="/".join(kinds)))
    log.info("PII scan: %d file(s) checked, %d with a masked value", len(files), len(leaks))
    return leaks
