"""Release PII scan: does any file of a release contain a raw PII value that stage 1 masked?

Stage 1 keeps the raw values Presidio found only as salted SHA-256 digests in
`ARTIFACTS_DIR/pii_values.json`; the comparison itself (word n-grams hashed with that salt) is
`intent_pipeline.pii_digests`, the code that wrote the digests. This module picks which files to
scan and what in them, and reports findings by file, place and entity type only: a leaked value is
never shown.

The gate tells a leak from a word of the release itself:
- JSON files are read as JSON: field names are never scanned, nor numbers and booleans, nor string
  values that are label names; every other string is scanned, and a finding names its field path
  (`metrics.json: $.examples[3].text`);
- other text files (the model card, CSVs, HTML plots) are scanned line by line, and a finding names
  the line; the release's own field names and label names do not count there either;
- values that also occur unmasked in the training data were dropped at stage 1
  (`PiiDigests.forget_words`).

Files copied verbatim from third parties cannot carry our data and are exempt: the bundled
plotly.js, and tokenizer vocabulary files whose vocabulary equals the base model's (they are full of
ordinary first names that would otherwise match masked names).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from intent_pipeline.artifacts import MODEL_CONFIG, TRAINING_CONFIG, Artifacts
from intent_pipeline.errors import PipelineError
from intent_pipeline.pii_digests import PiiDigests

log = logging.getLogger(__name__)

# Weights, graphs, images and numeric arrays (ood_detector.npz: compressed floats, whose random bytes can
# spell a short masked word; its only text is label names and numbers) are not scanned as text.
BINARY_SUFFIXES = {".safetensors", ".bin", ".pt", ".onnx", ".png", ".jpg", ".model", ".msgpack", ".h5", ".npz"}
TOKENIZER_VOCAB_FILES = {"vocab.txt", "tokenizer.json", "merges.txt", "vocab.json"}
MAX_SCANNED_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Leak:
    file: str  # path inside the release
    where: str  # JSON field path ("$.examples[3].text") or "line 12"; never the value
    kind: str  # entity type(s) that matched, e.g. "PERSON"

    def __str__(self) -> str:
        return f"{self.file} {self.where} ({self.kind})"


def _plotly_js_digest() -> str:
    from plotly.offline import get_plotlyjs

    return hashlib.sha256(get_plotlyjs().encode("utf-8")).hexdigest()


def _vocab_matches_base(folder: Path, settings: Settings) -> bool:
    """True when the release tokenizer's vocabulary is exactly its base model's (no tokens from our data)."""
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


def _read_json(path: Path) -> object | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def _json_strings(value: object, where: str = "$") -> Iterator[tuple[str, str]]:
    """(field path, string) for every string value; keys, numbers, booleans and nulls are not text."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _json_strings(item, f"{where}[{i}]")
    elif isinstance(value, str):
        yield where, value


def _json_keys(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _json_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_keys(item)


def release_vocabulary(folder: Path, files: list[Path]) -> tuple[set[str], set[str]]:
    """(field names of every JSON file, label names of the model): words of the release itself."""
    keys: set[str] = set()
    for path in files:
        if path.suffix.lower() == ".json":
            keys.update(_json_keys(_read_json(path)))
    labels: set[str] = set()
    model_config = _read_json(folder / MODEL_CONFIG)
    if isinstance(model_config, dict) and isinstance(model_config.get("id2label"), dict):
        labels.update(str(v) for v in model_config["id2label"].values())
    # label words too: "manage_shipping_address" shows up as "manage shipping address" in text
    labels |= {part for label in labels for part in label.replace("-", "_").split("_") if part}
    return keys, labels


def scan_file(path: Path, relative: str, digests: PiiDigests, ignore: set[str], labels: set[str]) -> list[Leak]:
    data = _read_json(path) if path.suffix.lower() == ".json" else None
    if data is not None:
        places = ((where, text) for where, text in _json_strings(data) if text not in labels)
    else:
        text = path.read_text(encoding="utf-8", errors="ignore")
        places = ((f"line {i}", line) for i, line in enumerate(text.splitlines(), 1))
    leaks = []
    for where, text in places:
        kinds = digests.leaked_types(text, ignore)
        if kinds:
            leaks.append(Leak(relative, where, "/".join(sorted(kinds))))
    return leaks


def find_leaks(folder: Path, settings: Settings) -> list[Leak]:
    """Every place in the release (under `folder`) that holds a raw PII value stage 1 masked."""
    pii_path = Artifacts.from_settings(settings).pii_values
    if not pii_path.is_file():
        raise PipelineError(f"PII value digests not found at {pii_path}: run `python ingest_clean.py` "
                            "(a release is only published after a scan for the values it masked)")
    digests = PiiDigests.load(pii_path)
    files = files_to_scan(folder, settings)
    keys, labels = release_vocabulary(folder, files)
    leaks: list[Leak] = []
    for path in files:
        leaks += scan_file(path, path.relative_to(folder).as_posix(), digests, keys | labels, labels)
    log.info("PII scan: %d file(s) checked, %d place(s) with a masked value", len(files), len(leaks))
    return leaks
