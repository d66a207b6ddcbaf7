"""The release's model card: README.md with Hub YAML metadata (model-index eval results) and prose.

Built with `huggingface_hub.ModelCard`/`ModelCardData`, so the metadata is what the Hub parses:
`ModelCard.load(path).data.eval_results` gives back the test metrics.
"""

from __future__ import annotations

from pathlib import Path

from config import Settings
from intent_pipeline import ood

# The offline default base model is a pip-packaged copy of this Hub model.
BUNDLED_BASE_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
TASK = "text-classification"
DATASET_TYPE = "customer-interactions"  # not a Hub dataset: the project's own seed data
HYPERPARAMETER_KEYS = ("base_model", "epochs", "batch_size", "learning_rate", "max_length", "seed",
                       "weight_decay", "warmup_share", "patience", "average_weights", "augment", "class_weights",
                       "train_rows")


def hub_base_model(base_model: str, settings: Settings) -> str | None:
    """A Hub id for the YAML `base_model` field, or None when it is a local folder of unknown origin."""
    if not base_model:
        return None
    path = Path(base_model)
    if path.exists():
        bundled = Path(settings.base_model)
        return BUNDLED_BASE_MODEL_ID if bundled.exists() and path.resolve() == bundled.resolve() else None
    return base_model if base_model.count("/") <= 1 else None


def eval_results(metrics: dict) -> list:
    from huggingface_hub import EvalResult

    fingerprint = metrics.get("dataset_fingerprint", "")

    def result(metric_type: str, value: float, name: str, split: str = "test", config: str = "clean") -> EvalResult:
        return EvalResult(
            task_type=TASK, task_name="Intent classification", dataset_type=DATASET_TYPE,
            dataset_name=f"Customer interactions ({split}, {config})", dataset_split=split,
            dataset_config=config, dataset_revision=fingerprint, metric_type=metric_type,
            metric_value=round(float(value), 6), metric_name=name,
        )

    results = [
        result("accuracy", metrics["accuracy"], "Accuracy"),
        result("f1", metrics["macro_f1"], "Macro F1"),
        result("f1", metrics["weighted_f1"], "Weighted F1"),
    ]
    test = metrics.get("test") or {}
    if "macro" in test:
        results += [result("precision", test["macro"]["precision"], "Macro precision"),
                    result("recall", test["macro"]["recall"], "Macro recall")]
    if metrics.get("ece") is not None:
        results.append(result("ece", metrics["ece"], "Expected calibration error"))
    if metrics.get("noisy_accuracy") is not None:
        results += [result("accuracy", metrics["noisy_accuracy"], "Accuracy (noisy chat text)", config="noisy"),
                    result("f1", metrics["noisy_macro_f1"], "Macro F1 (noisy chat text)", config="noisy")]
    if metrics.get("oos_recall") is not None:
        results.append(result("recall", metrics["oos_recall"], "Out-of-scope recall (off-topic set)",
                              config="off-topic"))
    if metrics.get("in_scope_accuracy") is not None:
        results.append(result("accuracy", metrics["in_scope_accuracy"],
                              "In-scope accuracy with out-of-scope detection", config="in-scope"))
    return results


def _oos_section(metrics: dict, fallback_label: str) -> str:
    """The card's out-of-scope paragraph: how it decides and what it measured (empty for older metrics)."""
    oos = metrics.get("oos")
    if not isinstance(oos, dict) or "test" not in oos:
        return ""
    accuracy = oos["test"]["in_scope_accuracy"]
    offtopic = oos.get("off_topic") or {}
    measured = ""
    if offtopic:
        measured = (f"On {offtopic['n']} hand-written off-topic messages (`{Path(offtopic['file']).name}`, never "
                    f"used for training or tuning) it answers `{fallback_label}` to {offtopic['recall']['with_oos']:.1%} "
                    f"(the confidence rule alone: {offtopic['recall']['softmax_only']:.1%}). ")
    known = ", ".join(f"`{label}`" for label in oos.get("oos_labels", [])) or "none"
    return f"""
## Out-of-scope detection
`ood_detector.npz` holds a {oos['method']} detector on the encoder's {oos['pooling']}-pooled last hidden
state (class means and a shrunk shared covariance of the training split). A message is answered
`{fallback_label}` with reason "out_of_scope" when its distance to the nearest intent is over
{ood.threshold_text(oos['threshold'])}, or when the top intent is a known off-topic label ({known}). The threshold was
calibrated on the validation split: the lowest one keeping in-scope accuracy within
{oos['max_accuracy_drop'] * 100:.1f} points of the confidence rule alone. {measured}In-scope test accuracy
(a fallback counts as wrong): {accuracy['with_oos']:.4f} with the detector, {accuracy['softmax_only']:.4f}
with the confidence rule alone.
"""


def _table(rows: list[tuple], header: tuple) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _test_source(source: dict) -> str:
    """Which test set the numbers are on: a team's fixed file (or the frozen copy of one) or a drawn split."""
    if source.get("kind") == "frozen":
        source = source.get("frozen_from") or {}
    if source.get("kind") == "file":
        return f"fixed test file `{source.get('name')}`, {source.get('rows')} messages, never trained on"
    return "held-out test split"


def _body(release: dict, metrics: dict, training: dict, thresholds: dict, fallback_label: str,
          normalizes_raw_text: bool) -> str:
    labels = metrics.get("labels") or list((metrics.get("test") or {}).get("per_class", {}))
    per_class = (metrics.get("test") or {}).get("per_class", {})
    # finetune_bert.py nests the hyper-parameters; base_model and max_length sit at the top level.
    recorded = {**(training.get("hyperparameters") or {}), **training}
    settings_rows = [(key, recorded[key]) for key in HYPERPARAMETER_KEYS if key in recorded]
    fb_test = thresholds.get("test") or {}
    effect = ""
    if "coverage" in fb_test:
        effect = (f"; on test it answers {fb_test['coverage']:.1%} of messages, with accuracy "
                  f"{fb_test['accuracy_on_covered']:.4f} on those")
    noisy = ""
    if metrics.get("noisy_accuracy") is not None:
        noisy = (f"\nOn the same test messages with chat-style noise (typos, slang, casing): accuracy "
                 f"{metrics['noisy_accuracy']:.4f}, macro-F1 {metrics['noisy_macro_f1']:.4f}.\n")
    int8 = ""
    if release.get("onnx_int8_macro_f1") is not None:
        int8 = (f"\nServed with ONNX Runtime int8 (`onnx/model.int8.onnx`, `INFERENCE_BACKEND=onnx-int8`): test "
                f"macro-F1 {release['onnx_int8_macro_f1']:.4f} ({release['onnx_int8_delta']:+.4f} vs PyTorch above).\n")
    per_class_table = _table(
        [(label, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", v["support"])
         for label, v in per_class.items()], ("intent", "precision", "recall", "F1", "support"),
    ) if per_class else "(not available)"
    return f"""
# Customer-message intent classifier ({release['version']})

Fine-tuned BERT-family sequence classifier that maps a customer chat message to one of
{len(labels)} intents: {", ".join(f"`{label}`" for label in labels)}.
Model version `{release.get('model_version', '')}`, trained on dataset fingerprint
`{release.get('dataset_fingerprint', '')}` (SHA-256 of the training data splits).

## Intended use
- Routing and triage of short English customer-support chat messages to the listed intents.
- Use the bundled fallback rule: answer `{fallback_label}` when confidence < {thresholds.get('threshold', 0):.2f}
  or when the top two intents are closer than {thresholds.get('margin', 0):.2f} (tuned on the
  validation split{effect}).

## Limits
- Only the {len(labels)} intents above: anything else is forced into one of them unless the fallback
  rule or the out-of-scope detector (below, when the release has one) catches it. Not for other languages, long documents, or decisions with legal or financial effect
  without a human in the loop.
- Trained on one company's historical messages; accuracy drops on other domains and on noisy text
  (see below). Confidence is not a calibrated probability (ECE {metrics.get('ece', float('nan')):.4f}).
- Personal data (names, e-mails, phone numbers, addresses...) was masked with spaCy + Presidio before
  training; masking is imperfect, and the release was scanned for the raw values found.

## Training
Base model: `{training.get('base_model') or metrics.get('base_model') or "(not recorded)"}`.

{_table(settings_rows, ("setting", "value")) if settings_rows else "(training settings not recorded)"}

## Evaluation ({_test_source(metrics.get("test_source") or {})})
Accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, weighted-F1
{metrics['weighted_f1']:.4f}.
{noisy}{int8}
{per_class_table}
{_oos_section(metrics, fallback_label)}
Plots: `confusion_matrix.html`, `pr_curves.html`, `reliability.png`, `confidence_histogram.png`;
numbers: `metrics.json`, `per_class_report.csv`.

## How to use
{_how_to_use(fallback_label, normalizes_raw_text)}
"""


def _how_to_use(fallback_label: str, normalizes_raw_text: bool) -> str:
    if normalizes_raw_text:
        return f"""Feed raw text to `pipeline()` directly: the tokenizer applies the model's text normalisation
itself (Unicode NFKC, zero-width and control characters dropped, whitespace folded, lower-cased,
punctuation and quotes stripped from both ends), exactly as in training and in the project's app
and API, so the answers are the same. ONNX users who load `tokenizer.json` with `tokenizers` get
the same normalisation.
```python
from transformers import pipeline
classifier = pipeline("text-classification", model="<this folder or repo id>", top_k=3, truncation=True)
classifier("  Where is my ORDER?? ")
```
`truncation=True` cuts long messages where training did (the tokenizer's `model_max_length`).
In this project, `intent_pipeline.predict.IntentClassifier.load(folder)` adds the fallback rule
from `thresholds.json` (answer `{fallback_label}` when unsure) and the out-of-scope detector from
`ood_detector.npz` (answer `{fallback_label}` for off-topic messages)."""
    return """This release's tokenizer does not normalise text: lower-case it, fold whitespace and strip
punctuation from both ends before calling the pipeline, as training did.
```python
from transformers import pipeline
classifier = pipeline("text-classification", model="<this folder or repo id>", top_k=3)
classifier("where is my order")
```
In this project, `intent_pipeline.predict.IntentClassifier.load(folder)` applies the text
normalisation used in training, the fallback rule from `thresholds.json` and the out-of-scope
detector from `ood_detector.npz`."""


def build_model_card(release: dict, metrics: dict, training: dict, thresholds: dict, settings: Settings,
                     normalizes_raw_text: bool = True):
    """A `ModelCard` whose YAML carries the test metrics as model-index eval results.

    `normalizes_raw_text`: whether the release's tokenizer applies the model's text normalisation
    (`tokenizer_normalizer.folder_normalizes_raw_text`); the usage section says what users must do.
    """
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        language="en",
        library_name="transformers",
        pipeline_tag=TASK,
        tags=["intent-classification", "customer-support", "bert"],
        base_model=hub_base_model(training.get("base_model") or metrics.get("base_model", ""), settings),
        model_name=f"intent-classifier-{release['version']}",
        eval_results=eval_results(metrics),
        # Extra keys are kept verbatim in the YAML, so the card alone identifies the release.
        release_version=release["version"],
        model_version=release.get("model_version", ""),
        dataset_fingerprint=release.get("dataset_fingerprint", ""),
        fallback={"threshold": thresholds.get("threshold", 0.0), "margin": thresholds.get("margin", 0.0)},
    )
    body = _body(release, metrics, training, thresholds, settings.fallback_label, normalizes_raw_text)
    content = f"---\n{data.to_yaml()}\n---\n{body}"
    return ModelCard(content)
