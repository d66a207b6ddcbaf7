"""The released tokenizer carries the model's text normalisation, so every consumer sees the same text.

`with_model_normalizer(tokenizer)` prepends `intent_pipeline.text.MODEL_STEPS` (as `tokenizers`
normalizers) to the base tokenizer's own normalizer (for BERT: BertNormalizer, whose lower-casing and
accent stripping stay as they were, so token ids of already-normalised text do not change).
`save_tokenizer()` writes it with `tokenizer_class: PreTrainedTokenizerFast`: transformers 4 and 5
both load that class from tokenizer.json as written, where `BertTokenizer` would rebuild a plain
BertNormalizer on load (transformers 5) and drop ours. So `transformers.pipeline(...)` on raw text,
`tokenizers.Tokenizer.from_file("tokenizer.json")` before an ONNX graph, and the app all agree.

Models saved before this change have a tokenizer without the steps; `IntentClassifier` applies
`normalize_for_model` in Python either way, and the steps are idempotent, so both kinds serve alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from intent_pipeline.files import write_json_atomic
from intent_pipeline.text import MODEL_STEPS

TOKENIZER_CONFIG = "tokenizer_config.json"
TOKENIZER_FILE = "tokenizer.json"
# The class name both transformers 4 and 5 map to "the tokenizer in tokenizer.json, unchanged".
PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"
LOADED_AS_WRITTEN = (PORTABLE_TOKENIZER_CLASS, "TokenizersBackend")


def model_normalizer(base: Any = None) -> Any:
    """A `tokenizers.normalizers.Sequence`: MODEL_STEPS, then `base` (the tokenizer's own normalizer)."""
    from tokenizers import normalizers

    steps = [step.tokenizers_normalizer() for step in MODEL_STEPS]
    return normalizers.Sequence(steps + ([base] if base is not None else []))


def _as_json(normalizer: Any) -> Any:
    return None if normalizer is None else json.loads(normalizer.__getstate__())


def has_model_normalizer(tokenizer: Any) -> bool:
    """True when `tokenizer` (transformers, or a `tokenizers.Tokenizer`) starts with MODEL_STEPS."""
    current = _as_json(getattr(tokenizer, "backend_tokenizer", tokenizer).normalizer)
    if not current or current.get("type") != "Sequence":
        return False
    steps = _as_json(model_normalizer())["normalizers"]
    return current["normalizers"][: len(steps)] == steps


def with_model_normalizer(tokenizer: Any, max_length: int | None = None) -> Any:
    """A fast tokenizer like `tokenizer` whose normalizer runs MODEL_STEPS first (a no-op if it already does).

    `max_length` (the length the model was trained with) becomes `model_max_length`, so pipeline
    users who pass `truncation=True` cut where training did.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if has_model_normalizer(tokenizer):
        if max_length:
            tokenizer.model_max_length = max_length
        return tokenizer
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # a copy: the caller's stays as it was
    backend.normalizer = model_normalizer(backend.normalizer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_max_length=max_length or tokenizer.model_max_length,
        model_input_names=list(tokenizer.model_input_names),
        padding_side=tokenizer.padding_side,
        truncation_side=tokenizer.truncation_side,
        **tokenizer.special_tokens_map,
    )


def save_tokenizer(tokenizer: Any, folder: Path) -> None:
    """Save `tokenizer` with the model's normalisation into `folder`, loadable as written by transformers 4 and 5."""
    tokenizer = with_model_normalizer(tokenizer)
    tokenizer.save_pretrained(folder)
    path = Path(folder) / TOKENIZER_CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
    write_json_atomic(path, config)


def folder_normalizes_raw_text(folder: Path | str) -> bool:
    """True when the tokenizer saved in `folder` runs MODEL_STEPS when loaded by transformers (and from tokenizer.json).

    False for models saved before the steps moved into the tokenizer: those need `normalize_for_model` first.
    """
    from tokenizers import Tokenizer

    folder = Path(folder)
    try:
        config = json.loads((folder / TOKENIZER_CONFIG).read_text(encoding="utf-8"))
        backend = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    except Exception:  # OSError, JSON errors, and tokenizers' own exception type for a bad file
        return False
    return config.get("tokenizer_class") in LOADED_AS_WRITTEN and has_model_normalizer(backend)
