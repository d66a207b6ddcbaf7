"""Stage 5's out-of-scope numbers: fit and calibrate the detector, then report what it does.

Calibration (validation only): the detector's threshold is the lowest one that keeps the in-scope
validation accuracy (answered with the right intent; a fallback counts as wrong) within
OOS_MAX_ACCURACY_DROP of the accuracy under the softmax fallback rule alone; the lowest such
threshold catches the most off-topic messages. The validation rows labelled with OFFTOPIC_LABELS
(`other` in the seed) are the known off-topic examples: their recall is reported, never optimised
beyond that rule. The off-topic evaluation file (OFFTOPIC_EVAL_FILE) is scored for the report only.

Every rate here is computed for the served rule with and without the detector ("softmax_only"), so
metrics.json shows what the detector adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from intent_pipeline import ood
from intent_pipeline.evaluation import top_two
from intent_pipeline.predict import FallbackRule


@dataclass
class Outputs:
    """One data set as the model saw it: probabilities, pooled features, true labels (None: off-topic file)."""

    probs: np.ndarray
    features: np.ndarray
    truth: np.ndarray | None = None


def _decisions(out: Outputs, labels: Sequence[str], rule: FallbackRule, oos_labels: Sequence[str],
               detector: ood.OodDetector | None) -> ood.Decisions:
    pred, top1, top2 = top_two(out.probs)
    unsure = (top1 < rule.threshold) | ((top1 - top2) < rule.margin)
    flags = detector.flags(detector.score(out.features)) if detector is not None else None
    return ood.decide(np.asarray(labels)[pred], unsure, flags, oos_labels, out.truth)


def _rate(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if len(mask) else None


def fit_and_calibrate(train: Outputs, val: Outputs, labels: Sequence[str], rule: FallbackRule,
                      oos_labels: Sequence[str], max_drop: float, model_version: str) -> tuple[ood.OodDetector, dict]:
    """The detector fitted on `train` and calibrated on `val`, and the validation numbers behind it."""
    assert train.truth is not None and val.truth is not None
    detector = ood.fit_detector(train.features, train.truth, oos_labels)
    in_scope = ~np.isin(val.truth, list(oos_labels))
    base = _decisions(val, labels, rule, oos_labels, None)
    scores = detector.score(val.features)
    threshold = ood.calibrate_threshold(scores[in_scope], base.correct[in_scope], max_drop)
    detector = detector.with_threshold(threshold, model_version=model_version, calibrated_on="val",
                                       max_accuracy_drop=max_drop)
    with_oos = _decisions(val, labels, rule, oos_labels, detector)
    top1 = top_two(val.probs)[1]
    val_report = {
        "n_in_scope": int(in_scope.sum()),
        "n_known_off_topic": int((~in_scope).sum()),
        "in_scope_accuracy": {"softmax_only": _rate(base.correct[in_scope]),
                              "with_oos": _rate(with_oos.correct[in_scope])},
        "known_off_topic_recall": {"softmax_only": _rate(~base.routed[~in_scope]),
                                   "with_oos": _rate(~with_oos.routed[~in_scope])},
        # How well each score alone separates the known off-topic rows from in-scope ones (1.0: perfectly).
        "auroc": {"mahalanobis": ood.auroc(scores[in_scope], scores[~in_scope]),
                  "max_softmax": ood.auroc(-top1[in_scope], -top1[~in_scope])},
    }
    return detector, val_report


def split_report(out: Outputs, labels: Sequence[str], rule: FallbackRule, oos_labels: Sequence[str],
                 detector: ood.OodDetector) -> dict:
    """A labelled split (test): in-scope accuracy and known-off-topic recall, with and without the detector."""
    assert out.truth is not None
    in_scope = ~np.isin(out.truth, list(oos_labels))
    pred = np.asarray(labels)[out.probs.argmax(axis=1)]
    base = _decisions(out, labels, rule, oos_labels, None)
    with_oos = _decisions(out, labels, rule, oos_labels, detector)
    return {
        "n_in_scope": int(in_scope.sum()),
        "n_known_off_topic": int((~in_scope).sum()),
        "in_scope_accuracy": {"model_only": _rate((pred == out.truth)[in_scope]),
                              "softmax_only": _rate(base.correct[in_scope]),
                              "with_oos": _rate(with_oos.correct[in_scope])},
        "in_scope_flagged_out_of_scope": _rate(with_oos.out_of_scope[in_scope]),
        "known_off_topic_recall": {"softmax_only": _rate(~base.routed[~in_scope]),
                                   "with_oos": _rate(~with_oos.routed[~in_scope])},
    }


def offtopic_report(out: Outputs, labels: Sequence[str], rule: FallbackRule, oos_labels: Sequence[str],
                    detector: ood.OodDetector, domains: Sequence[str] | None, source: str) -> dict:
    """Off-topic messages: the share not routed to an in-scope intent (recall), overall and per domain."""
    base = _decisions(out, labels, rule, oos_labels, None)
    with_oos = _decisions(out, labels, rule, oos_labels, detector)
    report = {
        "file": source,
        "n": int(len(out.probs)),
        "recall": {"softmax_only": _rate(~base.routed), "with_oos": _rate(~with_oos.routed)},
        "answered_out_of_scope": _rate(with_oos.out_of_scope),
        "answered_unsure": _rate(with_oos.unsure),
    }
    if domains is not None:
        frame = pd.DataFrame({"domain": list(domains), "base": ~base.routed, "oos": ~with_oos.routed})
        grouped = frame.groupby("domain")[["base", "oos"]].mean()
        report["per_domain"] = {domain: {"softmax_only": float(row["base"]), "with_oos": float(row["oos"]),
                                         "n": int((frame["domain"] == domain).sum())}
                                for domain, row in grouped.iterrows()}
    return report


def headline(oos: dict) -> dict:
    """The top-level metrics.json numbers (dashboard, /model, model card): at the chosen operating point."""
    test = oos.get("test") or {}
    accuracy = test.get("in_scope_accuracy") or {}
    offtopic = oos.get("off_topic") or {}
    out = {"in_scope_accuracy": accuracy.get("with_oos"), "in_scope_accuracy_softmax_only": accuracy.get("softmax_only")}
    if offtopic:
        out.update(oos_recall=offtopic["recall"]["with_oos"], oos_recall_softmax_only=offtopic["recall"]["softmax_only"])
    return out
