"""The artifact contract: the name of every file and folder one stage writes and another reads.

Bare names (`METRICS`, `THRESHOLDS`, ...) are for folders whose layout is shared: ARTIFACTS_DIR,
MODEL_DIR and a release (a release is MODEL_DIR + stage 5's files + `RELEASE_INFO`, so the same
names hold in all of them). `Artifacts` turns the settings into the paths the stages use;
`ModelFiles` does the same for a model folder (MODEL_DIR or a release). docs/architecture.md shows
which stage writes and which reads each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config import Settings

# Stage 1 (ingest_clean.py), under ARTIFACTS_DIR
DATA_REPORT = "data_report.json"  # stage 3 adds its `splits` section
PII_VALUES = "pii_values.json"  # salted digests of the masked PII values; never released

# Stage 3 (prepare_data.py), under ARTIFACTS_DIR
SPLITS_DIR = "splits"
SPLIT_FILES = {"train": "train.csv", "val": "val.csv", "test": "test.csv", "test_noisy": "test_noisy.csv"}
LABEL_MAPPING = "label_mapping.json"  # also saved into MODEL_DIR by stage 4
CLASS_WEIGHTS = "class_weights.json"
DATASET_FINGERPRINT = "dataset_fingerprint.json"

# Stage 4 (finetune_bert.py), under MODEL_DIR (save_pretrained adds the model and tokenizer files)
CHECKPOINTS_DIR = "checkpoints"  # Trainer checkpoints for --resume, under ARTIFACTS_DIR
MODEL_CONFIG = "config.json"  # Hugging Face's: its presence is what makes a folder a model
TRAINING_CONFIG = "training_config.json"

# Stage 5 (export_bert_metrics.py), under ARTIFACTS_DIR (thresholds.json and ood_detector.npz into MODEL_DIR too)
METRICS = "metrics.json"
THRESHOLDS = "thresholds.json"
OOD_DETECTOR = "ood_detector.npz"  # the out-of-scope detector (intent_pipeline.ood): means, whitening, threshold
PER_CLASS_REPORT = "per_class_report.csv"
CONFUSION_MATRIX = "confusion_matrix.csv"
CONFUSED_PAIRS = "confused_pairs.csv"
MISCLASSIFIED = "misclassified.csv"  # message text: stays out of releases
CONFUSION_MATRIX_HTML = "confusion_matrix.html"
PR_CURVES_HTML = "pr_curves.html"
PLOTLY_JS = "plotly.min.js"  # written beside the HTML plots when the local Plotly bundle is found
RELIABILITY_PNG = "reliability.png"
CONFIDENCE_HISTOGRAM_PNG = "confidence_histogram.png"
# Stage 5 outputs that travel with the model into a release (not misclassified.csv: a release may be public).
RELEASED_EVALUATION_FILES = (
    METRICS, PER_CLASS_REPORT, CONFUSION_MATRIX, CONFUSED_PAIRS, CONFUSION_MATRIX_HTML, PR_CURVES_HTML, PLOTLY_JS,
    RELIABILITY_PNG, CONFIDENCE_HISTOGRAM_PNG,
)
# What stage 6 copies from ARTIFACTS_DIR into a release, besides the model folder: the files serving reads too.
RELEASED_STAGE5_FILES = (*RELEASED_EVALUATION_FILES, THRESHOLDS, OOD_DETECTOR)

# Stage 6 (push_model.py): REGISTRY_DIR/<repo>/<version>/ and REGISTRY_DIR/<repo>/LATEST
MODEL_CARD = "README.md"
RELEASE_INFO = "release.json"
ONNX_DIR = "onnx"
ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
ONNX_EXPORT_INFO = "export.json"
LATEST_POINTER = "LATEST"

# run_pipeline.py, under ARTIFACTS_DIR
PIPELINE_STATE = "pipeline_state.json"

# retrain.py, under ARTIFACTS_DIR
FROZEN_TEST_DIR = "frozen_test"  # the serving release's test split (+ noisy copy), kept for every retrain
FROZEN_TEST_INFO = "frozen.json"  # written last: marks a complete frozen folder
RETRAIN_REPORTS_DIR = "retrain"  # report-<time>.json/.md per retrain, and latest.json/.md


@dataclass(frozen=True)
class Artifacts:
    """Paths of the files under one ARTIFACTS_DIR (stages that take `--artifacts-dir` pass theirs)."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> Artifacts:
        return cls(settings.artifacts_dir)

    @property
    def data_report(self) -> Path:
        return self.root / DATA_REPORT

    @property
    def pii_values(self) -> Path:
        return self.root / PII_VALUES

    @property
    def splits_dir(self) -> Path:
        return self.root / SPLITS_DIR

    def split(self, name: str) -> Path:
        """`splits/<name>.csv` for name in SPLIT_FILES (train, val, test, test_noisy)."""
        return self.splits_dir / SPLIT_FILES[name]

    @property
    def label_mapping(self) -> Path:
        return self.root / LABEL_MAPPING

    @property
    def class_weights(self) -> Path:
        return self.root / CLASS_WEIGHTS

    @property
    def dataset_fingerprint(self) -> Path:
        return self.root / DATASET_FINGERPRINT

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def thresholds(self) -> Path:
        return self.root / THRESHOLDS

    @property
    def ood_detector(self) -> Path:
        return self.root / OOD_DETECTOR

    @property
    def pipeline_state(self) -> Path:
        return self.root / PIPELINE_STATE


@dataclass(frozen=True)
class ModelFiles:
    """Paths inside a model folder: MODEL_DIR, a staged release or a downloaded one."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelFiles:
        return cls(settings.model_dir)

    def is_model(self) -> bool:
        return (self.root / MODEL_CONFIG).is_file()

    @property
    def training_config(self) -> Path:
        return self.root / TRAINING_CONFIG

    @property
    def thresholds(self) -> Path:
        return self.root / THRESHOLDS

    @property
    def ood_detector(self) -> Path:
        return self.root / OOD_DETECTOR

    @property
    def release_info(self) -> Path:
        return self.root / RELEASE_INFO

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def onnx_dir(self) -> Path:
        return self.root / ONNX_DIR
