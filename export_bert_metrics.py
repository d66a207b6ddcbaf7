"""Stage 5: MODEL_DIR + ARTIFACTS_DIR/splits -> metrics, plots and the tuned fallback rule in ARTIFACTS_DIR.

Scores the validation, test and noisy-test splits with `intent_pipeline.predict` (the code the app
and API use), tunes the fallback rule (confidence threshold + top-2 margin) on validation only,
and reports its effect on test. The test split is drawn by stage 3 or, with TEST_FILE, a team's fixed
test file; metrics.json says which (`test_source`, `val_source`). Fits the out-of-scope detector
(intent_pipeline.ood: Mahalanobis distance on the encoder's pooled features, means and covariance from
the training split, threshold calibrated on validation, see intent_pipeline.oos_evaluation) and reports
it on test and on the off-topic evaluation file (OFFTOPIC_EVAL_FILE, masked as the app masks; report
only, never tuning). Writes metrics.json (metrics.json last: it marks a complete run), per_class_report.csv,
confusion_matrix.{csv,html}, confused_pairs.csv, misclassified.csv, pr_curves.html, reliability.png,
confidence_histogram.png, thresholds.json and ood_detector.npz (both also copied into MODEL_DIR,
where the classifier reads them). Refuses a model trained on other data than the splits.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from config import Settings, get_settings
from intent_pipeline import artifacts, eval_plots, ood, tracking
from intent_pipeline import evaluation as ev
from intent_pipeline import oos_evaluation as oe
from intent_pipeline.artifacts import Artifacts, ModelFiles
from intent_pipeline.cli import run_cli
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import read_json, write_csv_atomic, write_json_atomic
from intent_pipeline.logging_setup import setup_logging
from intent_pipeline.predict import FallbackRule, IntentClassifier
from intent_pipeline.training import PREPARE_FIX, read_split

log = logging.getLogger("export_bert_metrics")


@dataclass
class Scored:
    """One split's model output: probabilities in the model's label order and integer targets."""

    frame: pd.DataFrame
    probs: np.ndarray
    y: np.ndarray
    features: np.ndarray  # pooled encoder features: what the out-of-scope detector scores

    @property
    def pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    def outputs(self, labels: list[str]) -> oe.Outputs:
        truth = np.asarray(labels)[self.y] if len(self.y) else None
        return oe.Outputs(self.probs, self.features, truth)


def parse_args(argv: Sequence[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64, help="messages scored per forward pass (default 64)")
    parser.add_argument("--min-coverage", type=float, default=settings.fallback_min_coverage,
                        help="smallest share of validation messages the fallback rule must still answer "
                             "(default: FALLBACK_MIN_COVERAGE)")
    parser.add_argument("--ece-bins", type=int, default=15, help="confidence bins for ECE and the reliability diagram")
    parser.add_argument("--top-pairs", type=int, default=10, help="confused label pairs to keep (default 10)")
    parser.add_argument("--max-misclassified", type=int, default=500,
                        help="misclassified test examples to keep, most confident first (default 500)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    if not 0.0 <= args.min_coverage <= 1.0:
        parser.error("--min-coverage must be within [0, 1]")
    if args.ece_bins < 1 or args.top_pairs < 0 or args.max_misclassified < 0:
        parser.error("--ece-bins must be >= 1, --top-pairs and --max-misclassified >= 0")
    return args


def read_prepared(settings: Settings) -> dict:
    """Stage 3's dataset_fingerprint.json: the fingerprint and where the test and validation splits came from."""
    path = Artifacts.from_settings(settings).dataset_fingerprint
    data = read_json(path, "dataset fingerprint", PREPARE_FIX)
    fingerprint = data.get("fingerprint") if isinstance(data, dict) else None
    if not fingerprint:
        raise PipelineError(f"{path} has no 'fingerprint': {PREPARE_FIX}")
    return data


def split_source(recorded: dict | None) -> dict:
    """Where a split came from, for metrics.json (which may be released: file names, never full paths)."""
    recorded = recorded or {"kind": "split"}  # splits prepared before issue 16 were always drawn
    if recorded.get("kind") == "frozen":
        inner = split_source(recorded.get("frozen_from"))
        return {"kind": "frozen", "rows": recorded.get("rows"), "frozen_from": inner}
    keep = ("kind", "name", "sha256", "rows", "ratio", "unlabeled_rows", "rows_read")
    return {key: recorded[key] for key in keep if key in recorded}


def describe_source(source: dict) -> str:
    if source.get("kind") == "file":
        return f"fixed file {source.get('name')} (sha256 {str(source.get('sha256', ''))[:12]})"
    if source.get("kind") == "frozen":
        return f"frozen test split, from {describe_source(source.get('frozen_from') or {})}"
    return "split drawn from the data"


def check_model_matches(classifier: IntentClassifier, fingerprint: str, splits: dict[str, pd.DataFrame]) -> None:
    """A model trained on other data (or other labels) would give meaningless, misleading numbers."""
    if classifier.fingerprint != fingerprint:
        raise PipelineError(
            f"stale model: {classifier.model_dir} was trained on dataset {classifier.fingerprint[:12] or '(unknown)'} "
            f"but the splits are dataset {fingerprint[:12]}: re-run `python finetune_bert.py`"
        )
    known = set(classifier.labels)
    for name, frame in splits.items():
        unknown = sorted(set(frame["label"]) - known)
        if unknown:
            raise PipelineError(
                f"{name} split has label(s) the model does not know: {unknown[:5]}: re-run `python finetune_bert.py`"
            )


def score(classifier: IntentClassifier, frame: pd.DataFrame, batch_size: int, name: str) -> Scored:
    """Probabilities and pooled features of `frame`'s texts; targets from its `label` column (if any)."""
    from tqdm import tqdm

    texts = frame["text"].tolist()
    chunk = batch_size * 8  # a progress tick every few batches, sorted-by-length batching within each
    parts = [classifier.proba_and_features(texts[i : i + chunk], batch_size=batch_size)
             for i in tqdm(range(0, len(texts), chunk), desc=f"scoring {name}", unit="chunk")]
    index = {label: i for i, label in enumerate(classifier.labels)}
    y = frame["label"].map(index).to_numpy(dtype=int) if "label" in frame.columns else np.zeros(0, dtype=int)
    return Scored(frame=frame, probs=np.concatenate([p for p, _ in parts]), y=y,
                  features=np.concatenate([f for _, f in parts]))


def train_sample(files: Artifacts, settings: Settings) -> pd.DataFrame:
    """The training rows the out-of-scope detector is fitted on (a stratified sample of large splits)."""
    train = read_split(files.split("train"))
    return train.iloc[ood.fit_sample(train["label"].tolist(), seed=settings.seed)].reset_index(drop=True)


def misclassified_frame(test: Scored, labels: list[str], limit: int) -> pd.DataFrame:
    """Wrong test answers, most confident first; text is the split's (already PII-masked) text."""
    pred, top1, _ = ev.top_two(test.probs)
    wrong = pred != test.y
    frame = pd.DataFrame({
        "text": test.frame["text"].to_numpy()[wrong],
        "label": [labels[i] for i in test.y[wrong]],
        "predicted": [labels[i] for i in pred[wrong]],
        "confidence": np.round(top1[wrong], 4),
    })
    return frame.sort_values("confidence", ascending=False).head(limit).reset_index(drop=True)


def out_of_scope(classifier: IntentClassifier, scored: dict[str, Scored], rule: FallbackRule,
                 settings: Settings) -> tuple[ood.OodDetector, dict]:
    """The calibrated out-of-scope detector and metrics.json's `oos` section."""
    labels = classifier.labels
    oos_labels = [label for label in settings.offtopic_labels if label in labels]
    detector, val_report = oe.fit_and_calibrate(
        scored["train"].outputs(labels), scored["val"].outputs(labels), labels, rule, oos_labels,
        settings.oos_max_accuracy_drop, classifier.version)
    report = {"method": ood.METHOD, "pooling": ood.POOLING, "threshold": ood.threshold_json(detector.threshold),
              "max_accuracy_drop": settings.oos_max_accuracy_drop, "oos_labels": oos_labels,
              "fit_rows": detector.info["fit_rows"], "rule": "out of scope when the score is over the threshold or "
              "the top intent is one of oos_labels; threshold: the lowest keeping in-scope validation accuracy within "
              "max_accuracy_drop of the softmax rule's", "val": val_report,
              "test": oe.split_report(scored["test"].outputs(labels), labels, rule, oos_labels, detector)}
    if "off_topic" in scored:
        off = scored["off_topic"]
        domains = off.frame["domain"].tolist() if "domain" in off.frame.columns else None
        report["off_topic"] = oe.offtopic_report(off.outputs(labels), labels, rule, oos_labels, detector, domains,
                                                 settings.offtopic_eval_file.name)  # no local path in a public release
    return detector, report


def evaluate(classifier: IntentClassifier, scored: dict[str, Scored], args: argparse.Namespace,
             settings: Settings, sources: dict[str, dict] | None = None) -> tuple[dict, dict, ood.OodDetector]:
    """Compute every metric and write the figures and tables; returns (metrics, thresholds, OOS detector)."""
    out_dir = settings.artifacts_dir
    labels = classifier.labels
    test = scored["test"]
    report = ev.classification_report(test.y, test.pred, labels)
    _, confidence, _ = ev.top_two(test.probs)
    correct = test.pred == test.y
    calib = ev.calibration(confidence, correct, n_bins=args.ece_bins)

    rule = ev.tune_fallback(scored["val"].probs, scored["val"].y, min_coverage=args.min_coverage)
    tuned = FallbackRule(rule["threshold"], rule["margin"])
    rule["test"] = ev.fallback_effect(test.probs, test.y, tuned)
    rule["test_without_rule"] = ev.fallback_effect(test.probs, test.y, FallbackRule())
    detector, oos_report = out_of_scope(classifier, scored, tuned, settings)

    matrix = ev.confusion(test.y, test.pred, labels)
    write_csv_atomic(ev.per_class_frame(report), out_dir / artifacts.PER_CLASS_REPORT)
    write_csv_atomic(matrix.rename_axis("true").reset_index(), out_dir / artifacts.CONFUSION_MATRIX)
    write_csv_atomic(ev.confused_pairs(matrix, args.top_pairs), out_dir / artifacts.CONFUSED_PAIRS)
    write_csv_atomic(misclassified_frame(test, labels, args.max_misclassified), out_dir / artifacts.MISCLASSIFIED)
    eval_plots.confusion_html(matrix, out_dir / artifacts.CONFUSION_MATRIX_HTML)
    average_precision = eval_plots.pr_curves_html(test.probs, test.y, labels, out_dir / artifacts.PR_CURVES_HTML)
    eval_plots.reliability_png(calib.bins, calib.ece, out_dir / artifacts.RELIABILITY_PNG)
    eval_plots.confidence_histogram_png(confidence, correct, out_dir / artifacts.CONFIDENCE_HISTOGRAM_PNG,
                                        tuned.threshold)

    noisy = scored.get("test_noisy")
    noisy_metrics = None
    if noisy is not None:
        noisy_metrics = {"accuracy": float((noisy.pred == noisy.y).mean()),
                         "macro_f1": ev.macro_f1(noisy.y, noisy.pred, len(labels)), "n": int(len(noisy.y))}
    metrics = {
        "model_version": classifier.version,
        "dataset_fingerprint": classifier.fingerprint,
        "base_model": classifier.info.get("base_model", ""),
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels": labels,
        "split_sizes": {name: int(len(s.probs)) for name, s in scored.items()},
        "test_source": (sources or {}).get("test", split_source(None)),
        "val_source": (sources or {}).get("val", split_source(None)),
        "accuracy": report["accuracy"],
        "macro_f1": report["macro"]["f1"],
        "weighted_f1": report["weighted"]["f1"],
        "noisy_accuracy": noisy_metrics["accuracy"] if noisy_metrics else None,
        "noisy_macro_f1": noisy_metrics["macro_f1"] if noisy_metrics else None,
        "ece": calib.ece,
        "test": report,
        "noisy": noisy_metrics,
        "calibration_bins": calib.bins.replace({np.nan: None}).to_dict(orient="records"),
        "average_precision": average_precision,
        "fallback": rule,
        "weakest_classes": [{"label": label, "f1": f1} for label, f1 in ev.weakest_classes(report)],
        **oe.headline(oos_report),
        "oos": oos_report,
    }
    thresholds = {key: rule[key] for key in ("threshold", "margin", "objective", "min_coverage", "tuned_on")}
    thresholds.update(val=rule["val"], test=rule["test"], model_version=metrics["model_version"],
                      dataset_fingerprint=metrics["dataset_fingerprint"])
    return metrics, thresholds, detector


def print_summary(metrics: dict, out_dir: Path) -> None:
    fb = metrics["fallback"]
    lines = [
        f"Model {metrics['model_version']} on test (n={metrics['test']['n']}; {describe_source(metrics['test_source'])}):",
        f"  accuracy {metrics['accuracy']:.4f}   macro-F1 {metrics['macro_f1']:.4f}   "
        f"weighted-F1 {metrics['weighted_f1']:.4f}   ECE {metrics['ece']:.4f}",
    ]
    if metrics["noisy"]:
        lines.append(f"  noisy text: accuracy {metrics['noisy_accuracy']:.4f}   macro-F1 {metrics['noisy_macro_f1']:.4f}")
    lines.append(
        f"  fallback rule (tuned on val): threshold {fb['threshold']:.2f}, margin {fb['margin']:.2f} -> on test "
        f"coverage {fb['test']['coverage']:.3f}, accuracy on answered {fb['test']['accuracy_on_covered']:.4f} "
        f"(without rule: {fb['test_without_rule']['accuracy_on_covered']:.4f})"
    )
    oos = metrics["oos"]
    accuracy = oos["test"]["in_scope_accuracy"]
    lines.append(
        f"  out-of-scope detector ({oos['method']}, threshold {ood.threshold_text(oos['threshold'])}, calibrated on "
        f"val): in-scope "
        f"test accuracy {accuracy['with_oos']:.4f} (softmax rule only: {accuracy['softmax_only']:.4f})"
        + (f"; off-topic recall {oos['off_topic']['recall']['with_oos']:.3f} (softmax rule only: "
           f"{oos['off_topic']['recall']['softmax_only']:.3f}, n={oos['off_topic']['n']})" if "off_topic" in oos else "")
    )
    lines.append("  weakest classes (F1): " + ", ".join(
        f"{w['label']} {w['f1']:.3f}" for w in metrics["weakest_classes"]))
    lines.append(f"  written to {out_dir}")
    if metrics.get("mlflow"):
        run = metrics["mlflow"]
        lines.append(f"  MLflow run {run['run_name']} ({run['run_id']}) in experiment {run['experiment_name']} "
                     f"at {run['tracking_uri']}")
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    settings = get_settings()
    args = parse_args(argv, settings)
    setup_logging(settings.log_level)
    files = Artifacts.from_settings(settings)
    splits = {"val": read_split(files.split("val")), "test": read_split(files.split("test"))}
    noisy = read_split(files.split("test_noisy"), required=False)
    if noisy is None:
        log.warning("no %s: noisy-text metrics are left out", files.split("test_noisy"))
    else:
        splits["test_noisy"] = noisy
    prepared = read_prepared(settings)
    fingerprint = str(prepared["fingerprint"])
    sources = {name: split_source(prepared.get(f"{name}_source")) for name in ("test", "val")}

    classifier = IntentClassifier.load(settings.model_dir, fallback_label=settings.fallback_label)
    check_model_matches(classifier, fingerprint, splits)
    scored = {name: score(classifier, frame, args.batch_size, name) for name, frame in splits.items()}
    scored["train"] = score(classifier, train_sample(files, settings), args.batch_size, "train")
    offtopic = ood.read_offtopic(settings.offtopic_eval_file)
    if offtopic is not None:
        # Raw messages as users type them: cleaned, PII-masked and cut exactly as the app and the API do.
        masked = ood.mask_like_serving(offtopic["text"].tolist(), settings.spacy_model, settings.max_text_chars)
        frame = offtopic.drop(columns=["label"], errors="ignore").assign(text=masked)
        scored["off_topic"] = score(classifier, frame, args.batch_size, "off-topic")
    metrics, thresholds, detector = evaluate(classifier, scored, args, settings, sources)

    # The evaluation joins the fine-tune's MLflow run (same model), or gets its own in another store.
    training_run = (classifier.info.get("mlflow") or {}).get("run_id")
    with tracking.start_run(settings, f"evaluate-{classifier.version}", "evaluate", run_id=training_run) as run:
        if run is not None:
            metrics["mlflow"] = {**(classifier.info.get("mlflow") or {}), **run}
        write_json_atomic(files.thresholds, thresholds)
        write_json_atomic(ModelFiles.from_settings(settings).thresholds, thresholds)
        detector.save(files.ood_detector)
        detector.save(ModelFiles.from_settings(settings).ood_detector)
        write_json_atomic(files.metrics, metrics)
        if run is not None:
            tracking.log_evaluation(metrics, settings.artifacts_dir)
    print_summary(metrics, settings.artifacts_dir)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
