"""Experiment tracking with MLflow: one run per fine-tune (evaluation adds to it), one per retrain comparison.

Everything goes through MLflow's own APIs (and the Trainer's `MLflowCallback` for per-epoch
metrics); this module only decides where runs go and what they carry. The store is
`settings.mlflow_tracking_uri`: by default SQLite under ARTIFACTS_DIR with artifacts beside it in
`mlruns/`, so nothing leaves the machine; a team server when MLFLOW_TRACKING_URI says so. MLflow's
usage telemetry is switched off unless the user opted in (config.library_env_defaults).

A run is referred to elsewhere (training_config.json, metrics.json, release.json, the dashboard)
by `run_reference()`: run id and name, experiment, and the store URI with any password masked.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import config
from config import Settings
from intent_pipeline.artifacts import PLOTLY_JS, RELEASED_STAGE5_FILES
from intent_pipeline.base_models import bundled_checkpoint
from intent_pipeline.errors import PipelineError

log = logging.getLogger(__name__)

# Stage 5 files logged with an evaluation: the released ones (never misclassified.csv: message text
# may reach a shared server) and the fallback rule.
EVALUATION_ARTIFACTS = tuple(name for name in RELEASED_STAGE5_FILES if name != PLOTLY_JS)
TRAINING_RUN_TAG = "intent_pipeline.stage"
_URL_PASSWORD = re.compile(r"(//[^/:@\s]+):[^@\s/]+@")


def _mlflow():
    config.library_env_defaults()  # before the first import: mlflow starts its telemetry client at import
    import mlflow

    for name in ("mlflow", "alembic"):  # store migrations and model logging are chatty at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


def _local_artifact_root(uri: str) -> str | None:
    """`file:` folder for the artifacts of a local SQLite store (beside the .db file); None for servers."""
    if not uri.startswith("sqlite:///"):
        return None
    db_file = Path(uri.removeprefix("sqlite:///"))
    if not db_file.is_absolute():
        db_file = config.PROJECT_ROOT / db_file
    return (db_file.parent / "mlruns").as_uri()


def setup(settings: Settings) -> str:
    """Point MLflow at the configured store and experiment (created if new); returns the experiment id.

    A store that cannot be reached fails here, in one line, before any training time is spent.
    """
    mlflow = _mlflow()
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.get_experiment_by_name(settings.mlflow_experiment)
        experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(
            settings.mlflow_experiment, artifact_location=_local_artifact_root(uri))
        mlflow.set_experiment(experiment_id=experiment_id)
    except Exception as exc:  # MlflowException, connection and database errors alike: one line, no URI password
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = _URL_PASSWORD.sub(r"\1:***@", reason)  # MLflow's messages repeat the URL, password included
        raise PipelineError(
            f"MLflow tracking store {config.mask_url(uri)} cannot be used ({reason[:300]}): fix MLFLOW_TRACKING_URI "
            "or set MLFLOW_TRACKING=false"
        ) from None
    return experiment_id


def run_reference(run: Any, settings: Settings) -> dict[str, str]:
    """What other files and the dashboard keep to name a run."""
    mlflow = _mlflow()
    experiment = mlflow.get_experiment(run.info.experiment_id)
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name or "",
        "experiment_id": run.info.experiment_id,
        "experiment_name": experiment.name if experiment else settings.mlflow_experiment,
        "tracking_uri": config.mask_url(settings.mlflow_tracking_uri),
    }


@contextlib.contextmanager
def start_run(settings: Settings, run_name: str, stage: str, run_id: str | None = None,
              tags: Mapping[str, str] | None = None) -> Iterator[dict[str, str] | None]:
    """An active MLflow run (resumed when `run_id` is in this store), or None when tracking is off.

    Yields the run's reference. A run that raises is marked FAILED, as MLflow does.
    """
    if not settings.mlflow_tracking:
        yield None
        return
    mlflow = _mlflow()
    setup(settings)
    if run_id and not _run_exists(mlflow, run_id):
        log.info("MLflow run %s is not in %s: starting a new run", run_id, config.mask_url(settings.mlflow_tracking_uri))
        run_id = None
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name) as run:
        if not run_id:
            mlflow.set_tags({TRAINING_RUN_TAG: stage, **(tags or {})})
        yield run_reference(run, settings)
        mlflow.flush_async_logging()  # the Trainer's callback logs asynchronously


def _run_exists(mlflow, run_id: str) -> bool:
    try:
        mlflow.get_run(run_id)
        return True
    except Exception:  # MlflowException RESOURCE_DOES_NOT_EXIST (or a malformed id)
        return False


def log_training_inputs(settings_used: Mapping[str, Any], fingerprint: str, train, val) -> None:
    """Our own settings (the Trainer's callback logs its TrainingArguments) and the data, as MLflow datasets."""
    mlflow = _mlflow()
    mlflow.log_params({f"pipeline.{key}": value for key, value in settings_used.items()})
    mlflow.set_tag("dataset_fingerprint", fingerprint)
    for frame, context in ((train, "training"), (val, "validation")):
        # Digest = the stage-3 fingerprint: the same data is recognisable across runs and stores.
        dataset = mlflow.data.from_pandas(frame[["text", "label"]], name=f"intent-{context}", targets="label",
                                          digest=fingerprint[:16])
        mlflow.log_input(dataset, context=context)


def log_final_training(config_json: Mapping[str, Any]) -> None:
    mlflow = _mlflow()
    mlflow.log_metrics({f"final_val_{k}": float(v) for k, v in config_json["val_metrics"].items()
                        if isinstance(v, (int, float))})
    mlflow.log_metrics({"train_rows": config_json["train_rows"], "val_rows": config_json["val_rows"],
                        "train_runtime_s": config_json["train_runtime_s"]})
    mlflow.set_tag("model_version", config_json["model_version"])
    mlflow.log_dict(dict(config_json), "training_config.json")


def log_model(model, tokenizer, settings: Settings) -> str | None:
    """The fine-tuned model as an MLflow `transformers` model (a LoggedModel of this run); its URI."""
    if not settings.mlflow_log_model:
        return None
    mlflow = _mlflow()
    import torch
    import transformers

    # Explicit requirements: MLflow's inference of them would import the model in a subprocess.
    requirements = [f"transformers=={transformers.__version__}", f"torch=={torch.__version__.split('+')[0]}"]
    info = mlflow.transformers.log_model(
        {"model": model, "tokenizer": tokenizer}, name="model", task="text-classification",
        pip_requirements=requirements, model_card=_model_card(str(model.name_or_path)),
    )
    return info.model_uri


def _model_card(base_model: str) -> Any:
    """A short card carrying the base model's licence, read from the card in its folder. Without one,
    MLflow looks the card and the licence up on the Hub by the model's name, which for a local base
    model is a path: every run then printed two warnings a user could do nothing about."""
    from huggingface_hub import ModelCard

    readme = Path(base_model) / "README.md"
    if not readme.is_file():
        return None  # a Hub id (MLflow may look it up) or a folder without a card
    checkpoint = bundled_checkpoint(base_model)
    name = checkpoint.published_as if checkpoint else base_model
    licence = ModelCard.load(readme).data.license or "other"
    return ModelCard(f"---\nlicense: {licence}\n---\n\nAn intent classifier fine-tuned from {name}.\n")


def evaluation_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Stage 5's headline numbers as flat MLflow metrics (test_*, per-class F1, the fallback rule)."""
    out: dict[str, float] = {}
    for key in ("accuracy", "macro_f1", "weighted_f1", "noisy_accuracy", "noisy_macro_f1", "ece"):
        if isinstance(metrics.get(key), (int, float)):
            out[f"test_{key}"] = float(metrics[key])
    for label, values in (metrics.get("test", {}).get("per_class") or {}).items():
        out[f"test_f1.{_metric_key(label)}"] = float(values["f1"])
    fallback = metrics.get("fallback") or {}
    for key in ("threshold", "margin"):
        if isinstance(fallback.get(key), (int, float)):
            out[f"fallback_{key}"] = float(fallback[key])
    for key in ("coverage", "accuracy_on_covered"):
        value = (fallback.get("test") or {}).get(key)
        if isinstance(value, (int, float)):
            out[f"test_fallback_{key}"] = float(value)
    return out


def _metric_key(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-. /" else "_" for ch in str(name))


def log_evaluation(metrics: Mapping[str, Any], out_dir: Path) -> None:
    """Into the active run: the test metrics and stage 5's plots and tables (under evaluation/)."""
    mlflow = _mlflow()
    mlflow.log_metrics(evaluation_metrics(metrics))
    for name in EVALUATION_ARTIFACTS:
        if (out_dir / name).is_file():
            mlflow.log_artifact(str(out_dir / name), artifact_path="evaluation")


def log_comparison(report: Mapping[str, Any], files: list[Path]) -> None:
    """Into the active run: champion/challenger metrics, their deltas, the decision and the report files."""
    mlflow = _mlflow()
    flat: dict[str, float] = {}
    for row in report.get("metrics", []):
        for role in ("champion", "challenger", "delta"):
            if isinstance(row.get(role), (int, float)):
                flat[f"{role}.{row['metric']}"] = float(row[role])
    mlflow.log_metrics(flat)
    mlflow.set_tags({"decision": report.get("decision", ""), "champion": (report.get("champion") or {}).get("version", ""),
                     "challenger_run_id": ((report.get("challenger") or {}).get("mlflow") or {}).get("run_id", "")})
    for path in files:
        mlflow.log_artifact(str(path), artifact_path="comparison")


def tag_release(settings: Settings, run_id: str | None, version: str) -> None:
    """Mark the run whose model became release `version` (best effort: the release itself already exists)."""
    if not (settings.mlflow_tracking and run_id):
        return
    try:
        setup(settings)
        mlflow = _mlflow()
        if _run_exists(mlflow, run_id):
            mlflow.MlflowClient().set_tag(run_id, "release", version)
    except Exception as exc:  # never fail a finished release over a tag
        log.warning("could not tag MLflow run %s with release %s: %s", run_id, version, type(exc).__name__)
