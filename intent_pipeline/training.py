"""Fine-tuning building blocks for stage 4: split loading, tokenised datasets, the weighted-loss
Trainer, metrics, and the atomic save of a finished model folder.

Kept out of finetune_bert.py so the benchmark and the test fixtures train exactly the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from intent_pipeline.artifacts import Artifacts
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import read_json, write_json_atomic
from intent_pipeline.text import normalize_for_model
from intent_pipeline.tokenizer_normalizer import save_tokenizer

log = logging.getLogger(__name__)

PREPARE_FIX = "run `python prepare_data.py` first"


@dataclass
class SplitData:
    train: pd.DataFrame
    val: pd.DataFrame
    label2id: dict[str, int]
    class_weights: dict[str, float]
    fingerprint: str

    @property
    def id2label(self) -> dict[int, str]:
        return {i: label for label, i in self.label2id.items()}


def read_split(path: Path, required: bool = True) -> pd.DataFrame | None:
    """A split CSV from stage 3 (columns text,label), or a PipelineError naming the fix.

    With `required=False` a missing file gives None (optional splits such as test_noisy.csv).
    """
    if not path.is_file():
        if required:
            raise PipelineError(f"split not found at {path}: {PREPARE_FIX}")
        return None
    try:
        frame = pd.read_csv(path, dtype={"text": "string", "label": "string"}, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise PipelineError(f"split {path} cannot be read ({str(exc).splitlines()[0]}): {PREPARE_FIX}") from None
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise PipelineError(f"split {path} lacks column(s) {sorted(missing)}: {PREPARE_FIX}")
    if frame.empty:
        raise PipelineError(f"split {path} has no rows: {PREPARE_FIX}")
    return frame


def load_split_data(artifacts_dir: Path) -> SplitData:
    """Train/val splits, label map, class weights and fingerprint written by stage 3."""
    files = Artifacts(artifacts_dir)
    train, val = read_split(files.split("train")), read_split(files.split("val"))
    mapping = read_json(files.label_mapping, "label map", PREPARE_FIX)
    label2id = {str(k): int(v) for k, v in mapping.get("label2id", {}).items()}
    if len(label2id) < 2:
        # transformers reads num_labels == 1 as regression: it would train silently and mean nothing.
        raise PipelineError(f"label_mapping.json has {len(label2id)} label(s); a classifier needs at least 2: {PREPARE_FIX}")
    unknown = sorted((set(train["label"]) | set(val["label"])) - set(label2id))
    if unknown:
        raise PipelineError(f"labels {unknown} are missing from label_mapping.json (stale artifacts?): {PREPARE_FIX}")
    weights_path = files.class_weights
    weights = read_json(weights_path, "class weights", PREPARE_FIX) if weights_path.is_file() else {}
    fp = read_json(files.dataset_fingerprint, "dataset fingerprint", PREPARE_FIX)
    return SplitData(train, val, label2id, {str(k): float(v) for k, v in weights.items()}, str(fp.get("fingerprint", "")))


def subsample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most `max_rows` rows, sampled per label in proportion so every label stays present."""
    if max_rows <= 0 or len(frame) <= max_rows:
        return frame
    share = max_rows / len(frame)
    parts = [g.sample(n=max(1, round(len(g) * share)), random_state=seed) for _, g in frame.groupby("label", sort=True)]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


class EncodedDataset:
    """Tokenised texts (normalised as at prediction time) without padding: the collator pads per batch."""

    def __init__(self, frame: pd.DataFrame, tokenizer, label2id: dict[str, int], max_length: int):
        texts = [normalize_for_model(t) for t in frame["text"]]
        self.encodings = tokenizer(texts, truncation=True, max_length=max_length)
        self.labels = [label2id[label] for label in frame["label"]]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {key: values[i] for key, values in self.encodings.items()}
        item["labels"] = self.labels[i]
        return item


def compute_metrics(eval_pred) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_pred
    preds = np.argmax(logits, axis=-1)
    return {"macro_f1": float(f1_score(labels, preds, average="macro")), "accuracy": float(accuracy_score(labels, preds))}


def weighted_trainer_class():
    """A Trainer whose loss weighs each class (imported lazily: transformers is heavy)."""
    import torch
    from transformers import Trainer

    class WeightedLossTrainer(Trainer):
        def __init__(self, *args, class_weights: list[float] | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.class_weight_values = class_weights

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not self.class_weight_values:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            weight = torch.tensor(self.class_weight_values, dtype=outputs.logits.dtype, device=outputs.logits.device)
            loss = torch.nn.functional.cross_entropy(outputs.logits, labels, weight=weight)
            return (loss, outputs) if return_outputs else loss

    return WeightedLossTrainer


def load_base_model(base_model: str, id2label: dict[int, str]):
    """Tokenizer + classification model from BASE_MODEL, or a PipelineError naming the fix."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    # The base checkpoint has no classification head, so transformers prints a table of "MISSING"
    # weights that reads like an error to new users; one plain log line says the same.
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        model = AutoModelForSequenceClassification.from_pretrained(
            base_model,
            num_labels=len(id2label),
            id2label=id2label,
            label2id={label: i for i, label in id2label.items()},
            ignore_mismatched_sizes=True,
        )
        log.info("loaded %s with a new %d-label classification head", base_model, len(id2label))
    except (OSError, ValueError, EnvironmentError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PipelineError(
            f"BASE_MODEL {base_model!r} cannot be loaded ({reason}): set BASE_MODEL to a local model folder or a "
            "Hugging Face BERT-family model id (unset it to use the bundled all-MiniLM-L6-v2)"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    return tokenizer, model


def freeze_word_embeddings(model) -> int:
    """Stop training the token-embedding matrix; returns the number of frozen parameters.

    It holds half of MiniLM's weights, dominates optimiser and backward time on CPU, and
    fine-tuning it on a small dataset buys nothing measurable.
    """
    embeddings = model.get_input_embeddings()
    embeddings.weight.requires_grad_(False)
    return int(embeddings.weight.numel())


def save_model_dir(model_dir: Path, model, tokenizer, extra_json: dict[str, dict]) -> None:
    """Write model + tokenizer + JSON files into a temp folder, then swap it in for `model_dir`.

    The tokenizer is saved with the model's text normalisation (`save_tokenizer`), so the folder
    answers raw text the same through `transformers.pipeline` as through the app.
    A crash midway leaves the previous model untouched; readers never see a half-written folder.
    """
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = model_dir.parent / f".{model_dir.name}.staging-{os.getpid()}"
    old = model_dir.parent / f".{model_dir.name}.old-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model.save_pretrained(staging)
        save_tokenizer(tokenizer, staging)
        for name, obj in extra_json.items():
            write_json_atomic(staging / name, obj)
        if model_dir.exists():
            os.replace(model_dir, old)
        os.replace(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(old)
