"""Inference runtimes behind IntentClassifier: one class per runtime, and which one a release should use.

A backend turns a tokenised batch into class probabilities, and, for the out-of-scope detector
(`intent_pipeline.ood`), into the pooled encoder features as well. The names below are the only place
backend names are spelled (INFERENCE_BACKEND, /model, release files, benchmarks all use them);
a new runtime is one `Backend` subclass added to `BACKENDS`.

`choose_backend()` implements "fast by default" (INFERENCE_BACKEND=auto): the int8 ONNX graph when
the release records that its test macro-F1 is within `INT8_MAX_F1_DROP` of PyTorch's, else the fp32
ONNX graph (which matches PyTorch to 1e-4), else PyTorch. Every choice carries a one-line reason.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from intent_pipeline.errors import PipelineError

log = logging.getLogger(__name__)

TORCH = "torch"
ONNX = "onnx"
ONNX_INT8 = "onnx-int8"
AUTO = "auto"
# The largest test macro-F1 loss (absolute, 0.005 = 0.5 points) for which auto serves int8.
INT8_MAX_F1_DROP = 0.005
# release.json keys written by push_model.int8_test_check: the int8 graph's test macro-F1, and it minus PyTorch's.
INT8_F1_KEY = "onnx_int8_macro_f1"
INT8_DELTA_KEY = "onnx_int8_delta"


class BackendUnavailable(Exception):
    """This runtime cannot serve this model folder; the message says why in one line."""


class Backend(ABC):
    """A loaded model on one runtime. Subclasses declare `name` and the tensor type they take."""

    name: ClassVar[str]
    title: ClassVar[str]  # for people: logs and /model
    tensors: ClassVar[str]  # what the tokenizer must return: "pt" or "np"

    @classmethod
    @abstractmethod
    def load(cls, model_dir: Path, num_threads: int | None) -> "Backend":
        """Load the runtime's model from `model_dir`; raise BackendUnavailable with the reason."""

    @abstractmethod
    def probabilities(self, encoding: Any) -> np.ndarray:
        """Softmax probabilities (batch, n_labels) float32 for one tokenised batch."""

    @property
    def has_features(self) -> bool:
        """Whether `probabilities_and_features` works (ONNX graphs exported before issue 16 lack the output)."""
        return True

    @abstractmethod
    def probabilities_and_features(self, encoding: Any) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and `ood.pool_features` of the last hidden state (batch, hidden) float32, one pass."""


class TorchBackend(Backend):
    name = TORCH
    title = "PyTorch"
    tensors = "pt"

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def load(cls, model_dir: Path, num_threads: int | None) -> "TorchBackend":
        import torch  # heavy; imported here so importing this module stays cheap
        from transformers import AutoModelForSequenceClassification

        if num_threads:
            torch.set_num_threads(num_threads)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        except (OSError, ValueError) as exc:
            raise PipelineError(f"model at {model_dir} cannot be loaded: {str(exc).splitlines()[0]}") from None
        return cls(model.eval())

    def probabilities(self, encoding: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = self.model(**encoding).logits
        return torch.softmax(logits.float(), dim=-1).numpy()

    def probabilities_and_features(self, encoding: Any) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from intent_pipeline.ood import pool_features

        with torch.inference_mode():
            out = self.model(**encoding, output_hidden_states=True)
            pooled = pool_features(out.hidden_states[-1].float(), encoding["attention_mask"])
        return torch.softmax(out.logits.float(), dim=-1).numpy(), pooled.numpy()


class OnnxBackend(Backend):
    """The fp32 ONNX graph written at release time (intent_pipeline.onnx_export)."""

    name = ONNX
    title = "ONNX fp32"
    tensors = "np"

    def __init__(self, session: Any) -> None:
        self.session = session

    @classmethod
    def load(cls, model_dir: Path, num_threads: int | None) -> "OnnxBackend":
        from intent_pipeline.onnx_export import onnx_file, ort_session, stale_reason

        path = onnx_file(model_dir, cls.name)
        reason = stale_reason(model_dir) if path.is_file() else f"{path} is missing"
        if reason is not None:
            raise BackendUnavailable(reason)
        try:
            return cls(ort_session(path, num_threads))
        except Exception as exc:  # onnxruntime raises its own exception types; any failure means "unavailable"
            detail = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise BackendUnavailable(f"onnxruntime cannot load {path} ({type(exc).__name__}: {detail})") from None

    def probabilities(self, encoding: Any) -> np.ndarray:
        from intent_pipeline.onnx_export import LOGITS, ort_feed, softmax

        return softmax(self.session.run([LOGITS], ort_feed(self.session, encoding))[0].astype(np.float32))

    @property
    def has_features(self) -> bool:
        from intent_pipeline.onnx_export import FEATURES

        return FEATURES in {output.name for output in self.session.get_outputs()}

    def probabilities_and_features(self, encoding: Any) -> tuple[np.ndarray, np.ndarray]:
        from intent_pipeline.onnx_export import FEATURES, LOGITS, ort_feed, softmax

        logits, features = self.session.run([LOGITS, FEATURES], ort_feed(self.session, encoding))
        return softmax(logits.astype(np.float32)), features.astype(np.float32)


class OnnxInt8Backend(OnnxBackend):
    """The dynamically quantised (int8 weights) copy of the fp32 graph: ~4x faster on CPU."""

    name = ONNX_INT8
    title = "ONNX int8"


BACKENDS: dict[str, type[Backend]] = {cls.name: cls for cls in (TorchBackend, OnnxBackend, OnnxInt8Backend)}
BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)
SETTING_VALUES: tuple[str, ...] = (AUTO, *BACKEND_NAMES)


@dataclass(frozen=True)
class BackendChoice:
    """The runtimes to try, best first, and why the first one was picked."""

    candidates: tuple[str, ...]
    reason: str


def choose_backend(requested: str, release_info: dict) -> BackendChoice:
    """What to serve for INFERENCE_BACKEND=`requested`, given the release's release.json contents."""
    if requested not in SETTING_VALUES:
        raise PipelineError(f"INFERENCE_BACKEND must be one of {', '.join(SETTING_VALUES)}, got {requested!r}")
    if requested != AUTO:
        return BackendChoice((requested,) if requested == TORCH else (requested, TORCH),
                             f"INFERENCE_BACKEND={requested}")
    delta = release_info.get(INT8_DELTA_KEY)
    if isinstance(delta, (int, float)) and not isinstance(delta, bool):
        int8_f1 = release_info.get(INT8_F1_KEY)
        shown = f"int8 test macro-F1 {int8_f1:.4f}, " if isinstance(int8_f1, (int, float)) else ""
        if delta >= -INT8_MAX_F1_DROP:
            return BackendChoice((ONNX_INT8, ONNX, TORCH),
                                 f"auto: the release records {shown}{delta * 100:+.2f} points vs PyTorch "
                                 f"(within {INT8_MAX_F1_DROP * 100:.1f})")
        return BackendChoice((ONNX, TORCH), f"auto: the release records {shown}{delta * 100:+.2f} points vs "
                                            f"PyTorch (more than {INT8_MAX_F1_DROP * 100:.1f} lost), so fp32 ONNX")
    return BackendChoice((ONNX, TORCH), "auto: the release records no int8 test macro-F1, so fp32 ONNX "
                                        "(identical to PyTorch within 1e-4)")


def load_backend(model_dir: Path, choice: BackendChoice, num_threads: int | None,
                 need_features: bool = False) -> tuple[Backend, str]:
    """The first candidate that loads, and the reason (with why better ones were skipped).

    `need_features`: the model has an out-of-scope detector, so a runtime that cannot give the pooled
    features is skipped like a missing one: every backend must give the same answers."""
    skipped: list[str] = []
    for i, name in enumerate(choice.candidates):
        try:
            backend = BACKENDS[name].load(model_dir, num_threads)
            if need_features and not backend.has_features:
                raise BackendUnavailable("its graph has no pooled-features output for the out-of-scope detector "
                                         f"(re-run `python -m intent_pipeline.onnx_export {model_dir}`)")
        except BackendUnavailable as exc:
            if i + 1 == len(choice.candidates):
                raise PipelineError(f"no inference backend can load {model_dir}: {exc}") from None
            following = BACKENDS[choice.candidates[i + 1]].title
            log.warning("%s backend unavailable, falling back to %s: %s", name, following, exc)
            skipped.append(f"{name} unavailable ({exc})")
            continue
        reason = choice.reason if not skipped else f"{choice.reason}; {'; '.join(skipped)}"
        return backend, reason
    raise PipelineError(f"no inference backend to try for {model_dir}")  # candidates is never empty
