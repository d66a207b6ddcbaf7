"""MLflow tracking (issue 14, part 1): a real tiny fine-tune and its evaluation land in one MLflow run
in a local store, with settings, data fingerprint, per-epoch and final metrics, plots and the model;
nothing reaches the network; a team-server URI that does not answer fails in one line."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pandas as pd
import pytest

import config
import export_bert_metrics
import finetune_bert
import push_model
from conftest import write_tiny_splits
from intent_pipeline import dashboard as dash
from intent_pipeline import tracking
from intent_pipeline.cli import run_cli
from intent_pipeline.pii_digests import PiiDigests


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    """Any connection that is not to this machine fails, and is recorded."""
    attempts: list = []
    real_connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(address, tuple) and host not in {"127.0.0.1", "::1", "localhost"}:
            attempts.append(address)
            raise OSError(f"test: network access to {address} blocked")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


@pytest.fixture
def mlflow_store(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{settings_env / 'artifacts' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tracking-test")
    return uri


def _add_test_split(artifacts: Path) -> None:
    """write_tiny_splits makes train/val; stage 5 also needs test (+ noisy): reuse val's rows, relabelled files."""
    val = pd.read_csv(artifacts / "splits" / "val.csv")
    val.to_csv(artifacts / "splits" / "test.csv", index=False)
    val.assign(text=val["text"] + " pls!!").to_csv(artifacts / "splits" / "test_noisy.csv", index=False)


def test_finetune_and_evaluation_are_one_tracked_run(mlflow_store: str, settings_env: Path, no_network: list,
                                                     monkeypatch: pytest.MonkeyPatch, capsys, caplog) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_LOG_MODEL", "true")
    # MLflow's loggers need not reach the root logger, so listen on the model flavour's own.
    flavour_log = logging.getLogger("mlflow.transformers")
    monkeypatch.setattr(flavour_log, "handlers", [*flavour_log.handlers, caplog.handler])
    artifacts = write_tiny_splits(settings_env / "artifacts", per_label=16)
    _add_test_split(artifacts)
    model_dir = artifacts / "bert_intent_model"
    assert run_cli(finetune_bert.main, ["--epochs", "2", "--lr", "3e-4", "--batch-size", "16", "--max-length", "32",
                                        "--seed", "0", "--patience", "3"]) == 0
    assert run_cli(export_bert_metrics.main, ["--batch-size", "16"]) == 0
    assert no_network == []  # the default local store, model logging included, stays on this machine
    # The base model's card goes with the logged model, so MLflow neither looks it up nor warns.
    assert [r.getMessage() for r in caplog.records
            if r.name.startswith("mlflow.transformers") and r.levelno >= logging.WARNING] == []

    training = json.loads((model_dir / "training_config.json").read_text())
    metrics = json.loads((artifacts / "metrics.json").read_text())
    run_id = training["mlflow"]["run_id"]
    assert metrics["mlflow"]["run_id"] == run_id  # the evaluation joined the fine-tune's run
    assert metrics["mlflow"]["experiment_name"] == "tracking-test"
    assert "MLflow run finetune-" in capsys.readouterr().out

    mlflow.set_tracking_uri(mlflow_store)
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    data = run.data
    # Settings: ours and the Trainer's arguments (logged by transformers' MLflowCallback).
    assert data.params["pipeline.epochs"] == "2.0" and data.params["pipeline.seed"] == "0"
    assert data.params["learning_rate"] == "0.0003" and "per_device_train_batch_size" in data.params
    assert data.tags["dataset_fingerprint"] == "f" * 64 and data.tags["model_version"] == training["model_version"]
    # Per-epoch validation metrics from the callback: one point per epoch, at increasing steps.
    history = client.get_metric_history(run_id, "eval_macro_f1")
    assert len(history) >= 2 and [m.step for m in history] == sorted(m.step for m in history)
    assert data.metrics["final_val_macro_f1"] == pytest.approx(training["val_metrics"]["macro_f1"])
    assert data.metrics["test_macro_f1"] == pytest.approx(metrics["macro_f1"])
    assert data.metrics["test_macro_f1"] > 0.5  # a real model: well above chance (0.25)
    assert data.metrics["test_noisy_accuracy"] == pytest.approx(metrics["noisy_accuracy"])
    assert "test_f1.request_invoice" in data.metrics
    # The data, as MLflow datasets carrying the stage-3 fingerprint.
    contexts = {inp.tags[0].value: inp.dataset.digest for inp in run.inputs.dataset_inputs}
    assert contexts == {"training": "f" * 16, "validation": "f" * 16}
    # Plots and tables, and the model as an MLflow transformers model of this run.
    logged = {item.path for item in client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation/reliability.png", "evaluation/confusion_matrix.html", "evaluation/metrics.json"} <= logged
    assert "evaluation/misclassified.csv" not in logged  # message text stays out of a shared store
    model_uri = training["mlflow"]["model_uri"]
    assert model_uri.startswith("models:/")
    loaded = mlflow.transformers.load_model(model_uri, return_type="components")
    assert loaded["model"].config.num_labels == 4

    # The release names the run, and the run the release; the dashboard shows the run.
    PiiDigests().save(artifacts / "pii_values.json")
    folder = push_model.publish(config.get_settings())
    release = json.loads((folder / "release.json").read_text())
    assert release["mlflow"]["run_id"] == run_id
    assert client.get_run(run_id).data.tags["release"] == "v1"
    caption = dash.mlflow_caption(json.loads((folder / "metrics.json").read_text()))
    assert run_id in caption and "tracking-test" in caption and training["mlflow"]["run_name"] in caption


def test_tracking_off_logs_nothing(settings_env: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING", "false")
    artifacts = write_tiny_splits(settings_env / "artifacts", per_label=4)
    assert run_cli(finetune_bert.main, ["--epochs", "1", "--max-length", "16", "--max-train-rows", "16"]) == 0
    assert "mlflow" not in json.loads((artifacts / "bert_intent_model" / "training_config.json").read_text())
    assert not (artifacts / "mlflow.db").exists()


def test_unreachable_team_server_fails_in_one_line_without_password(settings_env: Path, no_network: list,
                                                                    monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cret@mlflow.invalid:5000")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    write_tiny_splits(settings_env / "artifacts", per_label=4)
    assert run_cli(finetune_bert.main, ["--epochs", "1", "--max-length", "16", "--max-train-rows", "16"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if line.startswith("error:")]) == 1
    assert err[-1].startswith("error: MLflow tracking store http://alice:***@mlflow.invalid:5000 cannot be used")
    assert "s3cret" not in "\n".join(err)
    assert not (settings_env / "artifacts" / "bert_intent_model").exists()  # failed before training


def test_evaluation_metrics_are_flat_numbers() -> None:
    metrics = {"accuracy": 0.9, "macro_f1": 0.8, "noisy_accuracy": None, "ece": 0.05,
               "test": {"per_class": {"a b/c?": {"f1": 0.7}}},
               "fallback": {"threshold": 0.3, "margin": 0.1, "test": {"coverage": 0.95, "accuracy_on_covered": 0.93}}}
    flat = tracking.evaluation_metrics(metrics)
    assert flat == {"test_accuracy": 0.9, "test_macro_f1": 0.8, "test_ece": 0.05, "test_f1.a b/c_": 0.7,
                    "fallback_threshold": 0.3, "fallback_margin": 0.1, "test_fallback_coverage": 0.95,
                    "test_fallback_accuracy_on_covered": 0.93}
    assert config.get_settings().mlflow_tracking_uri  # the default is always a usable store


def test_default_store_is_sqlite_under_artifacts(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = config.get_settings()
    assert settings.mlflow_tracking_uri == f"sqlite:///{settings_env / 'artifacts' / 'mlflow.db'}"
    assert tracking._local_artifact_root(settings.mlflow_tracking_uri) == (settings_env / "artifacts" / "mlruns").as_uri()
