"""Model loading and prediction: the one code path behind evaluation, the app and the API.

`IntentClassifier.load(path)` accepts a training output folder (MODEL_DIR) or a release folder.
Texts are normalised with `normalize_for_model` (as in training) and scored in batches. Tokenizers
saved since the steps moved into them normalise again, which changes nothing (the steps are
idempotent); tokenizers saved before need the Python pass, so it stays. The
fallback rule (confidence threshold + top-2 margin, tuned on validation by stage 5) turns unsure
answers into the fallback label, and the out-of-scope detector (`intent_pipeline.ood`, fitted by
stage 5; absent in older releases) turns off-topic ones into it too. `Prediction.fallback_reason`
says which: UNSURE or OUT_OF_SCOPE (None when the intent is answered).

Runtimes live in `intent_pipeline.backends`: 'torch' (PyTorch) or 'onnx' / 'onnx-int8' (ONNX Runtime
graphs written at release time by `intent_pipeline.onnx_export`; fp32 matches PyTorch within 1e-4),
and 'auto' picks the fastest one the release vouches for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from config import get_settings
from intent_pipeline import backends, ood
from intent_pipeline.artifacts import (MODEL_CONFIG, OOD_DETECTOR, RELEASE_INFO, THRESHOLDS, TRAINING_CONFIG,
                                       ModelFiles)
from intent_pipeline.backends import Backend
from intent_pipeline.errors import PipelineError
from intent_pipeline.text import normalize_for_model

log = logging.getLogger(__name__)

# Why an answer is the fallback label: the API's `fallback_reason`, the log's column, the app's wording.
UNSURE = "unsure"  # low confidence, or the top two intents too close (the FallbackRule)
OUT_OF_SCOPE = "out_of_scope"  # off-topic: OOS score over its threshold, or a known-off-topic top intent
FALLBACK_REASONS = (UNSURE, OUT_OF_SCOPE)


@dataclass(frozen=True)
class FallbackRule:
    """Answer the fallback label when confidence < threshold or top1 - top2 < margin."""

    threshold: float = 0.0
    margin: float = 0.0
    label: str = "unknown"

    def applies(self, top1: float, top2: float) -> bool:
        return top1 < self.threshold or (top1 - top2) < self.margin

    def reason(self, top1: float, top2: float, out_of_scope: bool) -> str | None:
        """Why the fallback answers (out of scope wins over unsure), or None when the intent is answered."""
        if out_of_scope:
            return OUT_OF_SCOPE
        return UNSURE if self.applies(top1, top2) else None


@dataclass
class Prediction:
    text: str  # the text as the model saw it
    intent: str  # the answer: top intent, or the fallback label
    top_intent: str  # the model's top intent, even when the fallback applies
    confidence: float
    is_fallback: bool
    top_k: list[tuple[str, float]] = field(default_factory=list)
    fallback_reason: str | None = None  # UNSURE, OUT_OF_SCOPE, or None when the intent is answered
    oos_score: float | None = None  # the out-of-scope score, when the model has a detector
    out_of_scope: bool = False  # the detector's verdict (holds whatever confidence rule is applied later)

    def to_dict(self, top_k: int | None = None) -> dict:
        """JSON-ready fields (the API's and the log's shape), with the first `top_k` ranked intents (default all).
        Built field by field: dataclasses.asdict deep-copies every value, on the API's hot path."""
        return {"text": self.text, "intent": self.intent, "top_intent": self.top_intent,
                "confidence": self.confidence, "is_fallback": self.is_fallback,
                "top_k": [{"intent": label, "confidence": score} for label, score in self.top_k[:top_k]],
                "fallback_reason": self.fallback_reason, "oos_score": self.oos_score, "out_of_scope": self.out_of_scope}


class IntentClassifier:
    """A fine-tuned sequence classifier plus its label map, fallback rule and version info.

    `runtime` is the loaded `intent_pipeline.backends.Backend`; `backend` its name and
    `backend_reason` why it was chosen. `model` (PyTorch) or `session` (ONNX Runtime) expose the
    runtime's own object; the other is None. `labels` come from the model config either way.
    """

    def __init__(
        self, model_dir: Path, runtime: Backend, tokenizer, max_length: int, fallback: FallbackRule, info: dict,
        labels: list[str], backend_reason: str = "", detector: ood.OodDetector | None = None,
    ):
        self.model_dir = model_dir
        self.runtime = runtime
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.fallback = fallback
        self.info = info
        self.labels: list[str] = labels
        self.backend_reason = backend_reason or f"INFERENCE_BACKEND={runtime.name}"
        self.detector = detector  # None: no out-of-scope detection (releases made before it existed)

    @property
    def backend(self) -> str:
        return self.runtime.name

    @property
    def model(self):
        return getattr(self.runtime, "model", None)

    @property
    def session(self):
        return getattr(self.runtime, "session", None)

    @property
    def version(self) -> str:
        return str(self.info.get("version") or self.info.get("model_version") or "unversioned")

    @property
    def fingerprint(self) -> str:
        return str(self.info.get("dataset_fingerprint", ""))

    @classmethod
    def load(
        cls, model_dir: Path | str, max_length: int | None = None, fallback_label: str | None = None,
        backend: str = backends.TORCH, num_threads: int | None = None,
    ) -> "IntentClassifier":
        """Load a model folder with `backend` (auto | torch | onnx | onnx-int8: settings.inference_backend).

        `max_length` (tokens per text) defaults to the one the model was trained with (its training
        config), else MAX_LENGTH; `fallback_label` defaults to FALLBACK_LABEL. An explicit value wins.

        'auto' picks the fastest runtime the release vouches for (`backends.choose_backend`). An
        ONNX backend whose file is missing, stale or unloadable falls back to the next candidate
        (finally PyTorch) with a logged warning, so a release without an export still serves.
        """
        from transformers import AutoConfig, AutoTokenizer

        model_dir = Path(model_dir)
        if backend not in backends.SETTING_VALUES:
            raise PipelineError(f"INFERENCE_BACKEND must be one of {', '.join(backends.SETTING_VALUES)}, got {backend!r}")
        if not (model_dir / MODEL_CONFIG).is_file():
            raise PipelineError(
                f"no model at {model_dir}: run `python finetune_bert.py` (or set MODEL_DIR / MODEL_SOURCE)"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model_config = AutoConfig.from_pretrained(model_dir)
        except (OSError, ValueError) as exc:
            raise PipelineError(f"model at {model_dir} cannot be loaded: {str(exc).splitlines()[0]}") from None
        labels = [model_config.id2label[i] for i in range(model_config.num_labels)]
        info: dict = {}
        for name in (TRAINING_CONFIG, RELEASE_INFO):
            if (model_dir / name).is_file():
                info.update(json.loads((model_dir / name).read_text(encoding="utf-8")))
        max_length = model_max_length(model_dir) if max_length is None else max_length
        fallback_label = get_settings().fallback_label if fallback_label is None else fallback_label
        fallback = FallbackRule(label=fallback_label)
        if (model_dir / THRESHOLDS).is_file():
            raw = json.loads((model_dir / THRESHOLDS).read_text(encoding="utf-8"))
            fallback = FallbackRule(float(raw.get("threshold", 0.0)), float(raw.get("margin", 0.0)), fallback_label)
        detector = ood.load_for_model(model_dir / OOD_DETECTOR, str(info.get("model_version", "")))
        runtime, reason = backends.load_backend(model_dir, backends.choose_backend(backend, info), num_threads,
                                                need_features=detector is not None)
        return cls(model_dir, runtime, tokenizer, max_length, fallback, info, labels, reason, detector)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape (len(texts), n_labels), in the model's label order."""
        return self._scores([normalize_for_model(t) for t in texts], batch_size, features=False)[0]

    def proba_and_features(self, texts: Sequence[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and the pooled encoder features (`ood.pool_features`), row-aligned with `texts`."""
        probs, feats = self._scores([normalize_for_model(t) for t in texts], batch_size, features=True)
        assert feats is not None  # load() refuses a backend without features when they are needed
        return probs, feats

    def _scores(self, normalized: list[str], batch_size: int, features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if len(normalized) == 1:  # the API/app hot path: no sorting or scatter bookkeeping
            return self._score(normalized, features)
        probs = np.zeros((len(normalized), len(self.labels)), dtype=np.float32)
        feats: np.ndarray | None = None
        # Sorting by length keeps padding (and so wasted compute) small within each batch.
        order = sorted(range(len(normalized)), key=lambda i: len(normalized[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            probs[idx], batch_feats = self._score([normalized[i] for i in idx], features)
            if batch_feats is not None:
                if feats is None:
                    feats = np.zeros((len(normalized), batch_feats.shape[1]), dtype=np.float32)
                feats[idx] = batch_feats
        return probs, feats

    def _score(self, batch: list[str], features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (and pooled features when asked) for one batch of already-normalised texts."""
        enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors=self.runtime.tensors)
        if not features:
            return self.runtime.probabilities(enc), None
        return self.runtime.probabilities_and_features(enc)

    def predict(
        self, texts: Sequence[str], top_k: int = 3, fallback: FallbackRule | None = None, batch_size: int = 64
    ) -> list[Prediction]:
        """Answers with the `top_k` best intents each; top_k is clipped to 1..number of labels."""
        rule = fallback or self.fallback
        top_k = max(1, min(top_k, len(self.labels)))
        normalized = [normalize_for_model(t) for t in texts]
        probs, feats = self._scores(normalized, batch_size, features=self.detector is not None)
        scores = self.detector.score(feats) if self.detector is not None and feats is not None else None
        return [self._to_prediction(text, row, top_k, rule, None if scores is None else float(scores[i]))
                for i, (text, row) in enumerate(zip(normalized, probs))]

    def _to_prediction(self, text: str, row: np.ndarray, top_k: int, rule: FallbackRule,
                       oos_score: float | None) -> Prediction:
        """`text` is the normalised text the model scored; `oos_score` None: no detector."""
        ranked = np.argsort(-row)
        top1 = float(row[ranked[0]])
        top2 = float(row[ranked[1]]) if len(ranked) > 1 else 0.0
        top_label = self.labels[ranked[0]]
        out_of_scope = self.is_out_of_scope(top_label, oos_score)
        reason = rule.reason(top1, top2, out_of_scope)
        return Prediction(
            text=text,
            intent=rule.label if reason else top_label,
            top_intent=top_label,
            confidence=top1,
            is_fallback=reason is not None,
            top_k=[(self.labels[i], float(row[i])) for i in ranked[:top_k]],
            fallback_reason=reason,
            oos_score=oos_score,
            out_of_scope=out_of_scope,
        )

    def is_out_of_scope(self, top_label: str, oos_score: float | None) -> bool:
        """The detector's verdict: score over its threshold, or a known-off-topic top intent (no detector: never)."""
        if self.detector is None:
            return False
        return top_label in self.detector.oos_labels or (oos_score is not None and oos_score > self.detector.threshold)


def model_max_length(model_dir: Path | str) -> int:
    """Tokens per text the model in `model_dir` was trained with (its training config), else MAX_LENGTH."""
    path = ModelFiles(Path(model_dir)).training_config
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8")).get("max_length")
        if recorded:
            return int(recorded)
    return get_settings().max_length
