"""Out-of-scope (OOS) detection: how far a message's encoder features lie from every in-scope intent.

The score is the Mahalanobis distance (squared) from the fine-tuned encoder's mean-pooled last
hidden state to the nearest in-scope class mean, under one covariance shared by all classes
(Lee et al., 2018; Podolskiy et al., 2021). Stage 5 fits it (`fit_detector`: class means and a
Ledoit-Wolf shrunk covariance from the training split, known-off-topic labels such as `other` left
out) and calibrates the threshold on the validation split only (`calibrate_threshold`). The result
is one small `.npz` file (`artifacts.OOD_DETECTOR`) that travels in the release; `IntentClassifier`
loads it and every backend (PyTorch, ONNX fp32/int8) feeds it the same pooled features.

A message is "out of scope" when its score is over the threshold or the model's top intent is one of
the detector's known-off-topic labels. Releases without the file answer as before.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from intent_pipeline.errors import PipelineError
from intent_pipeline.files import atomic_path

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
METHOD = "mahalanobis"
# Mean of the last hidden state over real tokens: measured against the [CLS] vector on validation (README).
POOLING = "mean"
# Rows used to fit means and covariance: plenty for 384 dimensions, and stage 5 stays quick on a CPU.
FIT_MAX_ROWS = 10_000
RIDGE = 1e-6  # relative to the mean variance


def pool_features(hidden: Any, attention_mask: Any) -> Any:
    """Mean of `hidden` (batch, seq, dim) over the tokens `attention_mask` marks (torch tensors).

    The one definition of the features: PyTorch serving and the ONNX graph (traced from this
    function) both call it, so all backends score the same vector."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


@dataclass(frozen=True)
class OodDetector:
    """Class means and a whitening factor `chol` (precision = chol @ chol.T, lower-triangular).

    `threshold`: scores above it are out of scope. `oos_labels`: intents that mean "off-topic" in
    the training data (their top answer counts as out of scope too). `info`: how it was fitted and
    calibrated, plus the model version it belongs to."""

    means: np.ndarray
    chol: np.ndarray
    threshold: float
    oos_labels: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Whitened class means, computed once: a score is then one matrix product per batch.
        object.__setattr__(self, "_white_means", (self.means @ self.chol).astype(np.float64))

    @property
    def model_version(self) -> str:
        return str(self.info.get("model_version", ""))

    def score(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row of `features` to the nearest class mean."""
        white = np.asarray(features, dtype=np.float64) @ self.chol.astype(np.float64)
        means = self._white_means  # type: ignore[attr-defined]
        dist = (white**2).sum(1)[:, None] - 2 * white @ means.T + (means**2).sum(1)[None, :]
        return np.maximum(dist.min(axis=1), 0.0)

    def flags(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) > self.threshold

    def with_threshold(self, threshold: float, **info: Any) -> "OodDetector":
        return OodDetector(self.means, self.chol, float(threshold), self.oos_labels, {**self.info, **info})

    def save(self, path: Path | str) -> None:
        """Write the detector as a compressed .npz (only the lower triangle of the factor: half the bytes)."""
        rows, cols = np.tril_indices(self.chol.shape[0])
        meta = {"format_version": FORMAT_VERSION, "method": METHOD, "pooling": POOLING,
                "threshold": threshold_json(self.threshold), "oos_labels": list(self.oos_labels), **self.info}
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, means=self.means.astype(np.float32),
                                chol_tril=self.chol[rows, cols].astype(np.float32),
                                meta=np.array(json.dumps(meta, sort_keys=True)))

    @classmethod
    def load(cls, path: Path | str) -> "OodDetector":
        try:
            with np.load(path, allow_pickle=False) as data:
                means = data["means"].astype(np.float32)
                tril = data["chol_tril"].astype(np.float32)
                meta = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError) as exc:
            raise PipelineError(f"out-of-scope detector {path} cannot be read ({exc}): re-run "
                                "`python export_bert_metrics.py`") from None
        if meta.get("format_version") != FORMAT_VERSION or meta.get("pooling") != POOLING:
            raise PipelineError(f"out-of-scope detector {path} has format {meta.get('format_version')} / pooling "
                                f"{meta.get('pooling')}; this code reads {FORMAT_VERSION} / {POOLING}: re-run "
                                "`python export_bert_metrics.py`")
        dim = means.shape[1]
        chol = np.zeros((dim, dim), dtype=np.float32)
        chol[np.tril_indices(dim)] = tril
        info = {k: v for k, v in meta.items() if k not in ("threshold", "oos_labels")}
        threshold = math.inf if meta.get("threshold") is None else float(meta["threshold"])
        return cls(means, chol, threshold, tuple(meta.get("oos_labels", ())), info)


def load_for_model(path: Path, model_version: str) -> OodDetector | None:
    """The detector in a model folder, or None: absent (older releases), or fitted for other weights."""
    if not path.is_file():
        return None
    detector = OodDetector.load(path)
    if detector.model_version and model_version and detector.model_version != model_version:
        log.warning("ignoring %s: it was fitted for model %s, not %s (re-run export_bert_metrics.py)",
                    path, detector.model_version, model_version)
        return None
    return detector


def fit_sample(labels: Sequence[str], max_rows: int = FIT_MAX_ROWS, seed: int = 0) -> np.ndarray:
    """Row indices to fit on: all of them, or a per-label stratified sample of `max_rows`."""
    n = len(labels)
    if n <= max_rows:
        return np.arange(n)
    frame = pd.DataFrame({"label": list(labels)})
    share = max_rows / n
    picked = frame.groupby("label", group_keys=False).sample(frac=share, random_state=seed).index
    return np.sort(picked.to_numpy())


def fit_detector(features: np.ndarray, labels: Sequence[str], oos_labels: Sequence[str]) -> OodDetector:
    """Class means and shared Ledoit-Wolf covariance of the in-scope rows (threshold: +inf until calibrated)."""
    from sklearn.covariance import LedoitWolf

    labels = np.asarray([str(label) for label in labels])
    in_scope = ~np.isin(labels, list(oos_labels))
    classes = sorted(set(labels[in_scope]))
    if len(classes) < 1:
        raise PipelineError("no in-scope training rows to fit the out-of-scope detector on")
    x = np.asarray(features, dtype=np.float64)[in_scope]
    y = labels[in_scope]
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    centred = x - means[np.searchsorted(classes, y)]
    # Shrinkage keeps the precision well conditioned: 384 dimensions, classes of a few hundred rows.
    covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    # A tiny ridge keeps degenerate fits (identical rows, a single row per class) invertible.
    covariance += np.eye(len(covariance)) * (RIDGE * np.trace(covariance) / len(covariance) + 1e-12)
    precision = np.linalg.inv(covariance)
    chol = np.linalg.cholesky((precision + precision.T) / 2)
    return OodDetector(means.astype(np.float32), chol.astype(np.float32), math.inf, tuple(oos_labels),
                       {"classes": classes, "fit_rows": int(in_scope.sum()), "dim": int(x.shape[1])})


@dataclass(frozen=True)
class Decisions:
    """Per message: answered with the right intent, flagged out of scope, answered "unsure"."""

    correct: np.ndarray
    out_of_scope: np.ndarray
    unsure: np.ndarray

    @property
    def routed(self) -> np.ndarray:
        """Answered with an intent (neither fallback)."""
        return ~(self.out_of_scope | self.unsure)


def decide(pred_labels: np.ndarray, unsure: np.ndarray, oos_flags: np.ndarray | None, oos_labels: Sequence[str],
           truth: np.ndarray | None = None) -> Decisions:
    """The serving decision (see predict.IntentClassifier) in vectorised form, for stage 5's numbers.

    `oos_flags` None: the softmax-rule-only baseline (known-off-topic labels still count as out of scope,
    as their answer routes nowhere)."""
    pred_labels = np.asarray(pred_labels)
    out = np.isin(pred_labels, list(oos_labels))
    if oos_flags is not None:
        out = out | np.asarray(oos_flags, dtype=bool)
    unsure = np.asarray(unsure, dtype=bool) & ~out
    correct = (pred_labels == truth) & ~out & ~unsure if truth is not None else np.zeros(len(pred_labels), bool)
    return Decisions(correct, out, unsure)


def calibrate_threshold(scores: np.ndarray, base_correct: np.ndarray, max_drop: float) -> float:
    """The lowest threshold that keeps in-scope accuracy within `max_drop` of `base_correct`'s.

    `scores` and `base_correct` are the in-scope validation rows' OOS scores and whether each is
    answered correctly without the detector. Flagging costs accuracy only where it hits a correct
    answer, so the answer is the k-th smallest score of the correct rows, k = the correct answers
    that must survive. The lowest such threshold flags the most off-topic messages."""
    n = len(scores)
    if n == 0:
        return math.inf
    kept = np.sort(np.asarray(scores)[np.asarray(base_correct, dtype=bool)])
    if len(kept) == 0:  # a model that answers nothing right: nothing to calibrate against, flag nothing
        return math.inf
    need = max(1, math.ceil(round((base_correct.mean() - max_drop) * n, 9)))
    return float(kept[need - 1])


def threshold_json(threshold: float) -> float | None:
    """The threshold as JSON can hold it: None stands for +inf (the detector flags nothing)."""
    return float(threshold) if math.isfinite(threshold) else None


def threshold_text(threshold: float | None) -> str:
    """A threshold from metrics.json for people: '123.4', or what None means."""
    return "none (the score flags nothing)" if threshold is None else f"{threshold:.1f}"


def auroc(in_scope: np.ndarray, out_of_scope: np.ndarray) -> float | None:
    """Area under the ROC curve of the score separating off-topic (positive) from in-scope rows."""
    from sklearn.metrics import roc_auc_score

    if len(in_scope) == 0 or len(out_of_scope) == 0:
        return None
    truth = np.r_[np.zeros(len(in_scope)), np.ones(len(out_of_scope))]
    return float(roc_auc_score(truth, np.r_[in_scope, out_of_scope]))


def read_offtopic(path: Path) -> pd.DataFrame | None:
    """Off-topic messages (a `text` column; optional `label`, `domain`), or None when the file is absent."""
    if not path.is_file():
        log.info("no off-topic set at %s: off-topic metrics are left out", path)
        return None
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise PipelineError(f"off-topic set {path} cannot be read ({str(exc).splitlines()[0]}): fix OFFTOPIC_EVAL_FILE")
    if "text" not in frame.columns or frame.empty:
        raise PipelineError(f"off-topic set {path} needs a `text` column and at least one row: fix OFFTOPIC_EVAL_FILE")
    return frame


def mask_like_serving(texts: list[str], spacy_model: str, max_chars: int) -> list[str]:
    """Raw messages cleaned, PII-masked and cut to `max_chars` exactly as the app and the API do."""
    from intent_pipeline import masking  # spaCy + Presidio: loaded only when an off-topic set is scored

    masker = masking.get_masker(spacy_model)
    return [text for text, _ in masking.mask_then_truncate(masker, texts, max_chars)]
