"""Shared fixtures: settings redirected into tmp_path, and fresh databases on SQLite and MariaDB.

MariaDB tests need the server at MARIADB_TEST_URL (default root@127.0.0.1:3306). Where it is not
running they are skipped on a developer's machine but FAIL in CI (CI=true): never a silent skip.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Test-data generators the benchmarks share (benchmarks/varied_text.py) are imported from there, not copied.
sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
MARIADB_SERVER_URL = os.environ.get("MARIADB_TEST_URL", "mysql+pymysql://root@127.0.0.1:3306")

# Nothing may reach a hub at test time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# MLflow: no telemetry; fine-tunes log their runs but not a 90 MB model copy each (test_tracking turns it on).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOG_MODEL", "false")


@pytest.fixture(scope="session", autouse=True)
def _session_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs of tests that do not choose a store go to one per session, never to the project's artifacts/."""
    name = "MLFLOW_TRACKING_URI"
    before = os.environ.get(name)
    if before is None:
        os.environ[name] = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    yield
    if before is None:
        os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """Undo a test's `setup_logging()` (entry points run in-process call it): its handler writes to the
    stderr of that test, which capsys closes afterwards, and every later log line then printed a
    'Logging error' traceback into the next failure's report."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def settings_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every file setting at tmp_path and the database at a fresh SQLite file there."""
    monkeypatch.setenv("RAW_DATA_FILE", str(tmp_path / "raw.csv"))
    monkeypatch.setenv("CLEANED_DATA_FILE", str(tmp_path / "cleaned.csv"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'test.db'}")
    monkeypatch.setenv("ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "artifacts" / "bert_intent_model"))
    monkeypatch.setenv("REGISTRY_DIR", str(tmp_path / "registry"))
    # ONNX export adds ~30 s per release; the tests that need it turn it back on.
    monkeypatch.setenv("RELEASE_ONNX", "false")
    for name in ("HF_TOKEN", "HF_REPO_ID", "MODEL_SOURCE", "MYSQL_HOST", "MYSQL_DB", "MYSQL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _mariadb_available() -> str | None:
    try:
        engine = sa.create_engine(MARIADB_SERVER_URL + "/", connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means "not available"
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def mariadb_server() -> str:
    problem = _mariadb_available()
    if problem:
        message = f"MariaDB not reachable at {MARIADB_SERVER_URL}: {problem}"
        if config.in_ci():  # config.py parses the flag, so CI=on counts as CI here too
            pytest.fail(message + " (CI requires it; .ci/run starts it)")
        pytest.skip(message)
    return MARIADB_SERVER_URL


def _fresh_mariadb_url(server_url: str) -> Iterator[str]:
    name = f"ip_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url + "/")
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    try:
        yield f"{server_url}/{name}?charset=utf8mb4"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty database on each engine; DATABASE_URL points at it for the test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
        monkeypatch.setenv("DATABASE_URL", url)
        yield url
        return
    server = request.getfixturevalue("mariadb_server")
    for url in _fresh_mariadb_url(server):
        monkeypatch.setenv("DATABASE_URL", url)
        yield url


def linked_copy(src: Path, dst: Path) -> Path:
    """A model folder whose files are symlinks to `src` (cheap), so tests can add or break files."""
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.is_file():
            (dst / item.name).symlink_to(item)
    return dst


TINY_LABELS = ["check_order", "refund", "other"]


@pytest.fixture(scope="session")
def untrained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled base model with a fresh 3-label head, saved like stage 4 saves a model.

    For plumbing tests (loading, batching, file formats) only: its answers are not meaningful.
    Tests about model quality train a real one on small data instead.
    """
    import json

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import config

    out = tmp_path_factory.mktemp("untrained_model")
    base = config.get_settings().base_model
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(TINY_LABELS),
        id2label=dict(enumerate(TINY_LABELS)),
        label2id={label: i for i, label in enumerate(TINY_LABELS)},
    )
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    model.save_pretrained(out)
    (out / "training_config.json").write_text(
        json.dumps({"model_version": "test-untrained", "dataset_fingerprint": "0" * 64, "max_length": 64})
    )
    (out / "label_mapping.json").write_text(
        json.dumps({"label2id": {l: i for i, l in enumerate(TINY_LABELS)}, "id2label": dict(enumerate(TINY_LABELS))})
    )
    return out


@pytest.fixture(scope="session")
def untrained_release_dir(untrained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`untrained_model_dir` as a release folder (files symlinked) with a small metrics.json, for the API tests.

    metrics.json: {"test": {"macro_f1": 0.91, "per_class": [1, 2]}, "accuracy": 0.9}. No ONNX graphs,
    no release.json: INFERENCE_BACKEND=auto serves PyTorch here. Read-only.
    """
    import json

    folder = tmp_path_factory.mktemp("untrained_release") / "v1"
    folder.mkdir()
    for item in untrained_model_dir.iterdir():
        if item.is_file():
            (folder / item.name).symlink_to(item)
    (folder / "metrics.json").write_text(json.dumps({"test": {"macro_f1": 0.91, "per_class": [1, 2]}, "accuracy": 0.9}))
    return folder


@pytest.fixture(scope="session")
def tiny_release(untrained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local model registry holding one release, published by the real stage 6 code (push_model.publish).

    Signature: `tiny_release -> Path` = the registry dir, laid out as `<dir>/intent-classifier/v1/`
    (a full release folder of `untrained_model_dir`: labels check_order/refund/other, thresholds.json
    with threshold 0.05 and margin 0.0 so answers are the top intent, release.json, README.md) plus
    `<dir>/intent-classifier/LATEST` = "v1". Sets nothing globally: tests monkeypatch REGISTRY_DIR to
    it (with HF_REPO_ID and MODEL_SOURCE empty), or MODEL_SOURCE to `<dir>/intent-classifier/v1`.
    Shared by the session: treat it as read-only.
    """
    import dataclasses
    import json
    import shutil

    import config
    import push_model

    root = tmp_path_factory.mktemp("tiny_release")
    artifacts = root / "artifacts"
    model_dir = artifacts / "bert_intent_model"
    shutil.copytree(untrained_model_dir, model_dir)
    training = json.loads((model_dir / "training_config.json").read_text())
    stamp = {key: training[key] for key in ("model_version", "dataset_fingerprint")}
    per_class = {label: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2} for label in TINY_LABELS}
    metrics = {**stamp, "accuracy": 0.5, "macro_f1": 0.5, "weighted_f1": 0.5, "ece": 0.1, "labels": TINY_LABELS,
               "test": {"accuracy": 0.5, "n": 6, "per_class": per_class}}
    files = {"metrics.json": metrics, "thresholds.json": {**stamp, "threshold": 0.05, "margin": 0.0},
             "pii_values.json": {"salt": "tiny", "max_tokens": 1, "values": []}}
    for name, data in files.items():
        (artifacts / name).write_text(json.dumps(data))
    settings = dataclasses.replace(
        config.get_settings(), artifacts_dir=artifacts, model_dir=model_dir,
        registry_dir=root / "registry", hf_token="", hf_repo_id="", release_onnx=False,  # ONNX: ~8 s, unused
    )
    push_model.publish(settings)
    shutil.rmtree(artifacts)  # the release is self-contained
    return root / "registry"


TRAINED_LABELS = ["contact_support", "queries_related_to_order", "queries_related_to_refund", "request_invoice"]


def write_tiny_splits(out: Path, per_label: int, seed: int = 0) -> Path:
    """Stage-3 artifacts (splits, label map, fingerprint) from a small slice of the seed data."""
    import json

    import pandas as pd

    raw = pd.read_csv(PROJECT_ROOT / "data" / "raw_customer_interactions.csv")
    raw = raw[raw["intent"].isin(TRAINED_LABELS)].rename(columns={"query": "text", "intent": "label"})
    picked = raw.groupby("label", group_keys=False).sample(n=per_label + 8, random_state=seed)
    picked = picked.assign(group_id=range(len(picked)))
    val = picked.groupby("label", group_keys=False).head(8)
    train = picked.drop(val.index)
    (out / "splits").mkdir(parents=True, exist_ok=True)
    for name, frame in (("train", train), ("val", val)):
        frame[["text", "label", "group_id"]].to_csv(out / "splits" / f"{name}.csv", index=False)
    labels = sorted(TRAINED_LABELS)
    (out / "label_mapping.json").write_text(json.dumps(
        {"label2id": {l: i for i, l in enumerate(labels)}, "id2label": {str(i): l for i, l in enumerate(labels)}}
    ))
    (out / "dataset_fingerprint.json").write_text(json.dumps({"fingerprint": "f" * 64}))
    return out


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real fine-tune of the bundled base model on ~300 seed rows of 4 intents (about a minute on 2 CPUs).

    Labels: TRAINED_LABELS. Good enough for behavioural tests on plain requests about orders,
    refunds, invoices and reaching support; saved exactly as finetune_bert.py saves MODEL_DIR.
    """
    import finetune_bert

    root = tmp_path_factory.mktemp("trained_model")
    artifacts = write_tiny_splits(root / "artifacts", per_label=72)
    model_dir = root / "model"
    code = finetune_bert.main([
        "--artifacts-dir", str(artifacts), "--output-dir", str(model_dir), "--epochs", "3",
        "--lr", "3e-4", "--batch-size", "16", "--max-length", "32", "--seed", "0", "--patience", "3",
    ])
    assert code == 0 and (model_dir / "config.json").is_file()
    return model_dir


@pytest.fixture(scope="session")
def masker():
    """The real spaCy + Presidio PII masker, loaded once per test session (it takes seconds)."""
    import config
    from intent_pipeline.masking import get_masker

    return get_masker(config.get_settings().spacy_model)


# ---------------------------------------------------------------- stages 1-5 on a seeded slice

# The end-to-end quality run: every intent of the seed data, a seeded stratified slice, stages 1-5
# run as a user runs them (this interpreter, their own processes). Its model is shared by the
# behaviour tests, so they test what the pipeline really trains.
PIPELINE_ROWS_PER_INTENT = 40
PIPELINE_SEED = 0
PIPELINE_TRAIN_ARGS = ("--epochs", "3", "--batch-size", "16", "--lr", "2e-4", "--max-length", "32", "--patience", "2")


@dataclass(frozen=True)
class PipelineRun:
    """Where one stages-1-5 run left its outputs, and the environment its stages ran with."""

    root: Path
    raw: Path
    artifacts: Path
    model_dir: Path
    env: dict[str, str]
    stage_seconds: dict[str, float]


def seed_slice(rows_per_intent: int, seed: int) -> pd.DataFrame:
    """`rows_per_intent` seeded-random rows of every intent in the seed data (all 15 of them)."""
    seed_data = pd.read_csv(PROJECT_ROOT / "data" / "raw_customer_interactions.csv")
    return seed_data.groupby("intent", group_keys=False).sample(n=rows_per_intent, random_state=seed)


def run_stages_1_to_5(root: Path, rows_per_intent: int = PIPELINE_ROWS_PER_INTENT, seed: int = PIPELINE_SEED,
                      train_args: Sequence[str] = PIPELINE_TRAIN_ARGS, timeout_s: float = 1800) -> PipelineRun:
    """Stages 1-5 through their scripts with `sys.executable` (never a venv or pip), settings in tmp folders."""
    import subprocess
    import sys
    import time

    raw = root / "raw.csv"
    seed_slice(rows_per_intent, seed).to_csv(raw, index=False)
    artifacts = root / "artifacts"
    env = config.child_env(
        RAW_DATA_FILE=str(raw), CLEANED_DATA_FILE=str(root / "cleaned.csv"),
        DATABASE_URL=f"sqlite:///{root / 'pipeline.db'}", ARTIFACTS_DIR=str(artifacts),
        MODEL_DIR=str(artifacts / "bert_intent_model"), REGISTRY_DIR=str(root / "registry"), SEED=str(seed),
        N_PROCESS="1", LOG_LEVEL="WARNING", MODEL_SOURCE="", HF_TOKEN="", HF_REPO_ID="", RELEASE_ONNX="false",
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
    )
    stages = [("ingest_clean.py", ["--no-progress"]), ("load_to_mysql.py", []), ("prepare_data.py", []),
              ("finetune_bert.py", list(train_args)), ("export_bert_metrics.py", [])]
    seconds = {}
    for script, args in stages:
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(PROJECT_ROOT / script), *args], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout_s)
        assert done.returncode == 0, f"{script} failed:\n{done.stderr[-4000:]}"
        seconds[script] = round(time.monotonic() - started, 1)
    return PipelineRun(root, raw, artifacts, artifacts / "bert_intent_model", env, seconds)


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """Stages 1-5 on PIPELINE_ROWS_PER_INTENT rows of each of the 15 intents (about 2 minutes on 2 CPUs).

    Read-only for its users: the quality test checks it, the behaviour tests load its model.
    """
    return run_stages_1_to_5(tmp_path_factory.mktemp("pipeline_run"))
