"""A trained model + stage 3 splits -> printed comparison of out-of-scope scores on the VALIDATION split.

Which score should the detector use? For each candidate this prints the AUROC separating the
validation rows labelled with OFFTOPIC_LABELS (`other`) from the in-scope ones, and the share of
those `other` rows caught at the operating point stage 5 uses (threshold: the lowest that keeps
in-scope validation accuracy within OOS_MAX_ACCURACY_DROP of the softmax rule alone):

- mahalanobis on the mean-pooled last hidden state (what `intent_pipeline.ood` ships),
- mahalanobis on the [CLS] vector of the last hidden state,
- k-nearest-neighbour cosine distance (k=10) to the training rows, mean-pooled,
- 1 - max softmax probability (the baseline).

Only validation rows are used to compare: the test split and the off-topic evaluation file stay
for stage 5's report.

    ARTIFACTS_DIR=... MODEL_DIR=... python benchmarks/bench_oos.py
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import get_settings  # noqa: E402
from intent_pipeline import ood  # noqa: E402
from intent_pipeline.artifacts import Artifacts, ModelFiles, THRESHOLDS  # noqa: E402
from intent_pipeline.cli import run_cli  # noqa: E402
from intent_pipeline.evaluation import top_two  # noqa: E402
from intent_pipeline.files import read_json  # noqa: E402
from intent_pipeline.predict import FallbackRule, IntentClassifier  # noqa: E402
from intent_pipeline.text import normalize_for_model  # noqa: E402
from intent_pipeline.training import read_split  # noqa: E402

KNN_K = 10


def encode(classifier: IntentClassifier, texts: list[str], batch_size: int = 64) -> dict[str, np.ndarray]:
    """Probabilities, mean-pooled and [CLS] features of the last hidden state (PyTorch)."""
    import torch

    out: dict[str, list[np.ndarray]] = {"probs": [], "mean": [], "cls": []}
    for start in range(0, len(texts), batch_size):
        batch = [normalize_for_model(t) for t in texts[start:start + batch_size]]
        enc = classifier.tokenizer(batch, padding=True, truncation=True, max_length=classifier.max_length,
                                   return_tensors="pt")
        with torch.inference_mode():
            result = classifier.model(**enc, output_hidden_states=True)
        hidden = result.hidden_states[-1]
        out["probs"].append(torch.softmax(result.logits, -1).numpy())
        out["mean"].append(ood.pool_features(hidden, enc["attention_mask"]).numpy())
        out["cls"].append(hidden[:, 0].numpy())
    return {name: np.concatenate(parts) for name, parts in out.items()}


def knn_scores(train: np.ndarray, query: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Cosine distance to the k-th nearest training row."""
    a = train / np.linalg.norm(train, axis=1, keepdims=True)
    b = query / np.linalg.norm(query, axis=1, keepdims=True)
    similarity = b @ a.T
    return 1 - np.sort(similarity, axis=1)[:, -k]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-rows", type=int, default=ood.FIT_MAX_ROWS, help="training rows to fit on")
    args = parser.parse_args(argv)
    settings = get_settings()
    files = Artifacts.from_settings(settings)
    classifier = IntentClassifier.load(settings.model_dir)
    labels = np.asarray(classifier.labels)
    oos_labels = [label for label in settings.offtopic_labels if label in classifier.labels]
    raw = read_json(ModelFiles.from_settings(settings).root / THRESHOLDS, "thresholds", "run export_bert_metrics.py")
    rule = FallbackRule(float(raw.get("threshold", 0.0)), float(raw.get("margin", 0.0)))

    train = read_split(files.split("train"))
    train = train.iloc[ood.fit_sample(train["label"].tolist(), args.train_rows, settings.seed)]
    val = read_split(files.split("val"))
    tr, va = encode(classifier, train["text"].tolist()), encode(classifier, val["text"].tolist())
    train_labels, truth = train["label"].to_numpy(), val["label"].to_numpy()
    in_scope = ~np.isin(truth, oos_labels)
    pred, top1, top2 = top_two(va["probs"])
    unsure = (top1 < rule.threshold) | ((top1 - top2) < rule.margin)
    base = ood.decide(labels[pred], unsure, None, oos_labels, truth)
    keep_train = ~np.isin(train_labels, oos_labels)
    candidates = {
        "mahalanobis, mean-pooled (shipped)": ood.fit_detector(tr["mean"], train_labels, oos_labels).score(va["mean"]),
        "mahalanobis, [CLS]": ood.fit_detector(tr["cls"], train_labels, oos_labels).score(va["cls"]),
        f"kNN cosine (k={KNN_K}), mean-pooled": knn_scores(tr["mean"][keep_train], va["mean"]),
        "1 - max softmax": 1 - top1,
    }
    print(f"validation: {in_scope.sum()} in-scope rows, {(~in_scope).sum()} rows labelled {oos_labels}; "
          f"softmax rule: threshold {rule.threshold:.2f}, margin {rule.margin:.2f}; "
          f"budget {settings.oos_max_accuracy_drop * 100:.1f} points of in-scope accuracy")
    print(f"softmax rule alone: in-scope accuracy {base.correct[in_scope].mean():.4f}, "
          f"`other` rows not routed {(~base.routed[~in_scope]).mean():.3f}")
    for name, scores in candidates.items():
        threshold = ood.calibrate_threshold(scores[in_scope], base.correct[in_scope], settings.oos_max_accuracy_drop)
        decided = ood.decide(labels[pred], unsure, scores > threshold, oos_labels, truth)
        print(f"  {name:<38} AUROC {ood.auroc(scores[in_scope], scores[~in_scope]):.4f}   at the operating point: "
              f"in-scope accuracy {decided.correct[in_scope].mean():.4f}, `other` rows not routed "
              f"{(~decided.routed[~in_scope]).mean():.3f}, in-scope flagged by the score "
              f"{(scores[in_scope] > threshold).mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
