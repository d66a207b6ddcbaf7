"""Evaluation maths for stage 5: classification report, calibration, fallback-rule tuning.

Pure functions over numpy arrays (probabilities in the model's label order and integer targets),
so they can be tested without a model and reused by any stage that scores predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from intent_pipeline.predict import FallbackRule

# Grids for the fallback rule; 0.0 in both means "no fallback", so the untuned model is a candidate.
THRESHOLD_GRID = tuple(round(x, 2) for x in np.arange(0.0, 0.96, 0.05))
MARGIN_GRID = tuple(round(x, 2) for x in np.arange(0.0, 0.51, 0.05))


def top_two(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the top class, its probability, and the runner-up's probability, per row."""
    order = np.argsort(-probs, axis=1)
    rows = np.arange(len(probs))
    top1 = probs[rows, order[:, 0]]
    top2 = probs[rows, order[:, 1]] if probs.shape[1] > 1 else np.zeros(len(probs))
    return order[:, 0], top1, top2


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, macro/weighted P/R/F1 and the per-class report, as plain JSON-ready numbers."""
    ids = list(range(len(labels)))
    report: dict = {"accuracy": float(accuracy_score(y_true, y_pred)), "n": int(len(y_true))}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=ids, average=average, zero_division=0)
        report[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ids, average=None, zero_division=0)
    report["per_class"] = {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, label in enumerate(labels)
    }
    return report


def per_class_frame(report: dict) -> pd.DataFrame:
    rows = [{"label": label, **values} for label, values in report["per_class"].items()]
    return pd.DataFrame(rows, columns=["label", "precision", "recall", "f1", "support"])


def weakest_classes(report: dict, n: int = 5) -> list[tuple[str, float]]:
    """The n classes with the lowest F1 (ties broken by lower support: rarer classes first)."""
    items = [(label, v["f1"], v["support"]) for label, v in report["per_class"].items() if v["support"] > 0]
    items.sort(key=lambda item: (item[1], item[2], item[0]))
    return [(label, f1) for label, f1, _ in items[:n]]


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> float:
    return float(f1_score(y_true, y_pred, labels=list(range(n_labels)), average="macro", zero_division=0))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Counts, rows = true label, columns = predicted label."""
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
    return pd.DataFrame(matrix, index=list(labels), columns=list(labels))


def confused_pairs(matrix: pd.DataFrame, top_n: int = 10) -> pd.DataFrame:
    """Most frequent (true, predicted) mistakes, with the share of the true class they take."""
    rows = []
    for true_label in matrix.index:
        support = int(matrix.loc[true_label].sum())
        for pred_label in matrix.columns:
            count = int(matrix.loc[true_label, pred_label])
            if true_label != pred_label and count > 0:
                rows.append({"true": true_label, "predicted": pred_label, "count": count,
                             "share_of_true": count / support if support else 0.0})
    frame = pd.DataFrame(rows, columns=["true", "predicted", "count", "share_of_true"])
    return frame.sort_values(["count", "share_of_true"], ascending=False).head(top_n).reset_index(drop=True)


@dataclass(frozen=True)
class Calibration:
    ece: float
    bins: pd.DataFrame  # bin_lower, bin_upper, count, mean_confidence, accuracy


def calibration(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> Calibration:
    """Expected calibration error over equal-width confidence bins (Guo et al., 2017)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bins are (lower, upper]; a confidence of exactly 0 goes into the first bin.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    rows, ece, total = [], 0.0, max(len(confidence), 1)
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        mean_conf = float(confidence[mask].mean()) if count else float("nan")
        acc = float(correct[mask].mean()) if count else float("nan")
        if count:
            ece += count / total * abs(acc - mean_conf)
        rows.append({"bin_lower": edges[b], "bin_upper": edges[b + 1], "count": count,
                     "mean_confidence": mean_conf, "accuracy": acc})
    return Calibration(ece=float(ece), bins=pd.DataFrame(rows))


def fallback_effect(probs: np.ndarray, y_true: np.ndarray, rule: FallbackRule) -> dict:
    """Coverage (share answered) and accuracy on the answered share under `rule`."""
    return _effect(*top_two(probs), y_true, rule)


def _effect(pred: np.ndarray, top1: np.ndarray, top2: np.ndarray, y_true: np.ndarray, rule: FallbackRule) -> dict:
    answered = ~((top1 < rule.threshold) | ((top1 - top2) < rule.margin))
    n = len(y_true)
    covered = int(answered.sum())
    correct = pred == y_true
    return {
        "threshold": rule.threshold,
        "margin": rule.margin,
        "coverage": covered / n if n else 0.0,
        "accuracy_on_covered": float(correct[answered].mean()) if covered else 0.0,
        "fallback_rate": 1 - covered / n if n else 0.0,
        # Share of the model's mistakes the rule turns into "unknown" instead of a wrong answer.
        "errors_caught": float((~answered & ~correct).sum() / max((~correct).sum(), 1)),
        "n": int(n),
    }


def tune_fallback(
    probs: np.ndarray,
    y_true: np.ndarray,
    min_coverage: float,
    thresholds: Sequence[float] = THRESHOLD_GRID,
    margins: Sequence[float] = MARGIN_GRID,
) -> dict:
    """Pick (threshold, margin) maximising accuracy on answered messages, keeping coverage >= min_coverage.

    Meant for the validation split only. Ties go to higher coverage, then to the smaller values
    (the least intrusive rule). The no-fallback rule (0, 0) always qualifies, so there is always an
    answer. Returns the chosen rule's validation effect plus the search settings.
    """
    if not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be within [0, 1], got {min_coverage}")
    best: dict | None = None
    best_key: tuple | None = None
    ranked = top_two(probs)  # once, not per grid point
    for threshold in thresholds:
        for margin in margins:
            effect = _effect(*ranked, y_true, FallbackRule(float(threshold), float(margin)))
            if effect["coverage"] + 1e-12 < min_coverage:
                continue
            key = (round(effect["accuracy_on_covered"], 12), round(effect["coverage"], 12), -threshold, -margin)
            if best_key is None or key > best_key:
                best, best_key = effect, key
    assert best is not None  # (0, 0) has coverage 1.0
    return {
        "threshold": best["threshold"],
        "margin": best["margin"],
        "objective": "max accuracy on answered messages subject to coverage >= min_coverage",
        "min_coverage": min_coverage,
        "tuned_on": "val",
        "val": best,
    }
