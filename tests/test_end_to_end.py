"""End to end: run_pipeline.py drives stages 1-6 on a small slice of the seed data, as a user would.

Real spaCy/Presidio, a real (tiny) fine-tune, SQLite, the local registry. Also checks that a re-run
skips completed stages and that a failed stage leaves a state a re-run recovers from.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import PROJECT_ROOT

LABELS = ["queries_related_to_refund", "manage_shipping_address", "inquire_business_hours", "other"]
ROWS_PER_LABEL = 60


def run_pipeline(*args: str) -> subprocess.CompletedProcess:
    # --no-venv: run with this interpreter. Without it, a pytest started from any other Python would
    # make run_pipeline.py create .venv and pip-install the requirements in the middle of a test.
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run_pipeline.py"), "--fast", "--no-app", "--no-venv", *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
    )
    assert "Creating the virtual environment" not in result.stdout + result.stderr
    assert "Installing the pinned requirements" not in result.stdout + result.stderr
    return result


@pytest.fixture
def small_raw(settings_env: Path) -> Path:
    seed = pd.read_csv(PROJECT_ROOT / "data" / "raw_customer_interactions.csv")
    rows = [seed[seed["intent"] == label].sample(ROWS_PER_LABEL, random_state=0) for label in LABELS]
    raw = settings_env / "raw.csv"
    pd.concat(rows).to_csv(raw, index=False)
    return raw


def test_pipeline_runs_end_to_end_then_skips_and_recovers(small_raw: Path, settings_env: Path, monkeypatch) -> None:
    # A base model that does not exist makes stage 4 fail after stages 1-3 completed.
    monkeypatch.setenv("BASE_MODEL", str(settings_env / "no-such-model"))
    failed = run_pipeline()
    assert failed.returncode == 1
    assert "stage finetune (finetune_bert.py) failed" in failed.stderr
    assert "BASE_MODEL" in failed.stderr  # the stage's own one-line error names the fix
    state_file = settings_env / "artifacts" / "pipeline_state.json"
    assert set(json.loads(state_file.read_text())) == {"ingest", "load", "prepare"}
    assert not (settings_env / "registry").exists()

    # Fixed: the completed stages are skipped, the rest run, and a release comes out.
    monkeypatch.delenv("BASE_MODEL")
    done = run_pipeline()
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stderr
    for stage in ("ingest", "load", "prepare"):
        assert f"stage {stage}: up to date, skipped" in log
    for stage in ("finetune", "evaluate", "release"):
        assert f"stage {stage} done" in log
    assert "Pipeline complete" in done.stdout

    release = settings_env / "registry" / "intent-classifier" / "v1"
    info = json.loads((release / "release.json").read_text())
    metrics = json.loads((settings_env / "artifacts" / "metrics.json").read_text())
    assert info["dataset_fingerprint"] == metrics["dataset_fingerprint"]
    assert set(json.loads((release / "config.json").read_text())["id2label"].values()) == set(LABELS)
    assert 0.0 <= metrics["macro_f1"] <= 1.0 and metrics["noisy_macro_f1"] is not None
    cleaned = pd.read_csv(settings_env / "cleaned.csv")
    assert len(cleaned) > 0.9 * len(LABELS) * ROWS_PER_LABEL

    # Nothing changed: a third run does no work and publishes nothing new.
    again = run_pipeline()
    assert again.returncode == 0
    assert again.stderr.count("up to date, skipped") == 6
    assert sorted(p.name for p in release.parent.iterdir()) == ["LATEST", "v1"]

    # An output removed by hand is noticed: evaluation and release run again, nothing before them.
    (settings_env / "artifacts" / "metrics.json").unlink()
    redo = run_pipeline()
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert redo.stderr.count("up to date, skipped") == 4
    assert (release.parent / "LATEST").read_text().strip() == "v2"

    # --retrain with no approved corrections since v2: stages 1-2 are checked, nothing is trained.
    retrain = run_pipeline("--retrain")
    assert retrain.returncode == 0, retrain.stderr[-3000:]
    assert "0 approved correction(s) since v2" in retrain.stdout and "nothing to do" in retrain.stdout
    assert retrain.stderr.count("up to date, skipped") == 2


def test_a_changed_setting_reruns_its_stage_and_everything_after(settings_env: Path, monkeypatch) -> None:
    import config
    import run_pipeline as rp

    (settings_env / "raw.csv").write_text("intent,query\nrefund,I want my money back\n")
    stages = rp.pipeline_stages(fast=False)
    before = rp.stage_keys(stages, config.get_settings(), fast=False)
    monkeypatch.setenv("AUGMENT", "false")
    after = rp.stage_keys(stages, config.get_settings(), fast=False)
    changed = [name for name in before if before[name] != after[name]]
    assert changed == ["prepare", "finetune", "evaluate", "release"]
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("HF_REPO_ID", "me/intents")
    assert "hf_secret_value" not in json.dumps(rp.stage_keys(stages, config.get_settings(), fast=False))


def test_fixed_test_file_content_and_columns_are_part_of_the_keys(settings_env: Path, monkeypatch) -> None:
    import config
    import run_pipeline as rp

    (settings_env / "raw.csv").write_text("text,category\nI want my money back,refund\n")
    (settings_env / "test.csv").write_text("text,category\nmoney back please,refund\n")
    stages = rp.pipeline_stages(fast=False)
    before = rp.stage_keys(stages, config.get_settings(), fast=False)
    monkeypatch.setenv("TEST_FILE", str(settings_env / "test.csv"))
    with_file = rp.stage_keys(stages, config.get_settings(), fast=False)
    assert [name for name in before if before[name] != with_file[name]] == ["prepare", "finetune", "evaluate", "release"]
    (settings_env / "test.csv").write_text("text,category\nrefund my money please,refund\n")  # edited in place
    edited = rp.stage_keys(stages, config.get_settings(), fast=False)
    assert edited["ingest"] == with_file["ingest"] and edited["prepare"] != with_file["prepare"]
    monkeypatch.setenv("LABEL_COLUMN", "category")
    assert rp.stage_keys(stages, config.get_settings(), fast=False)["ingest"] != edited["ingest"]


def test_missing_raw_file_is_one_clear_line(settings_env: Path) -> None:
    result = run_pipeline()
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: raw data file not found")
