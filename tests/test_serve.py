"""The prediction API: endpoints, validation, DB logging (SQLite + MariaDB) and one real uvicorn process."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import config
import serve
from intent_pipeline import db

from conftest import PROJECT_ROOT, TINY_LABELS

EMAIL = "john.doe@example.com"


def _settings(model_dir: Path, database_url: str, **overrides) -> config.Settings:
    base = config.get_settings()
    return dataclasses.replace(base, model_source=str(model_dir), database_url=database_url,
                               inference_backend="torch", max_text_chars=40, max_batch=3, **overrides)


@pytest.fixture(scope="module")
def release_dir(untrained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The untrained model as a release folder with a metrics.json (files symlinked, not copied)."""
    folder = tmp_path_factory.mktemp("release") / "v1"
    folder.mkdir()
    for item in untrained_model_dir.iterdir():
        if item.is_file():
            (folder / item.name).symlink_to(item)
    (folder / "metrics.json").write_text(json.dumps({"test": {"macro_f1": 0.91, "per_class": [1, 2]}, "accuracy": 0.9}))
    return folder


@pytest.fixture(scope="module")
def client(release_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    url = f"sqlite:///{tmp_path_factory.mktemp('serve_db') / 'db.sqlite'}"
    with TestClient(serve.create_app(_settings(release_dir, url))) as test_client:
        yield test_client


def test_predict_one_and_many(client: TestClient) -> None:
    one = client.post("/predict", json={"text": f"mail {EMAIL} pls"})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model_version"] == "test-untrained" and body["backend"] == "torch"
    (pred,) = body["predictions"]
    assert EMAIL not in pred["text"] and "[EMAIL]" in pred["text"]
    assert pred["intent"] in TINY_LABELS and len(pred["top_k"]) == 3 and pred["is_fallback"] is False
    assert abs(sum(k["confidence"] for k in pred["top_k"]) - 1.0) < 1e-4
    many = client.post("/predict", json={"texts": ["where is my order", "refund now"], "top_k": 1}).json()
    assert [len(p["top_k"]) for p in many["predictions"]] == [1, 1]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, 'exactly one of "text"'),
        ({"text": "a", "texts": ["b"]}, 'exactly one of "text"'),
        ({"text": "   "}, "text is empty"),
        ({"texts": ["ok", ""]}, "texts[1] is empty"),
        ({"text": "x" * 41}, "longer than 40 characters"),
        ({"texts": []}, "texts: List should have at least 1 item"),
        ({"texts": ["a", "b", "c", "d"]}, "texts: List should have at most 3 items"),
        ({"text": 42}, "text: Input should be a valid string"),
        ({"texts": "not a list"}, "texts: Input should be a valid list"),
        ({"text": "a", "top_k": 0}, "top_k: Input should be greater than or equal to 1"),
        ({"text": "a", "top_k": "3"}, "top_k: Input should be a valid integer"),
        ({"text": "a", "top_k": 101}, "top_k: Input should be less than or equal to 100"),
        ({"text": "a", "colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_requests_get_422_with_a_clear_message(client: TestClient, body: dict, message: str) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert response.json()["detail"]


def test_top_k_above_the_label_count_gives_every_label(client: TestClient) -> None:
    response = client.post("/predict", json={"text": "where is my order", "top_k": 50})
    assert response.status_code == 200, response.text
    assert sorted(k["intent"] for k in response.json()["predictions"][0]["top_k"]) == sorted(TINY_LABELS)
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    top_k = next(v["properties"]["top_k"] for k, v in schema.items() if "top_k" in v.get("properties", {})
                 and "texts" in v["properties"])
    assert top_k["maximum"] == 100 and "all of them" in top_k["description"]


def test_unopenable_database_still_serves(release_dir: Path, tmp_path: Path, caplog) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")  # SQLite cannot create a database inside a file: an OSError, not a PipelineError
    with TestClient(serve.create_app(_settings(release_dir, f"sqlite:///{not_a_folder}/db.sqlite"))) as test_client:
        assert test_client.get("/health").json()["db_logging"] is False
        response = test_client.post("/predict", json={"text": "where is my order"})
        assert response.status_code == 200 and response.json()["predictions"][0]["intent"] in TINY_LABELS
    assert "predictions will not be logged" in caplog.text


def test_health_model_and_docs(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["db_logging"] is True
    info = client.get("/model").json()
    assert info["labels"] == TINY_LABELS and info["version"] == "test-untrained"
    assert info["metrics"] == {"test": {"macro_f1": 0.91}, "accuracy": 0.9}
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_predictions_are_logged(release_dir: Path, db_url: str) -> None:
    with TestClient(serve.create_app(_settings(release_dir, db_url))) as test_client:
        assert test_client.post("/predict", json={"texts": [f"write to {EMAIL}", "hello"]}).status_code == 200
        assert test_client.post("/predict", json={"text": "where is it"}).status_code == 200
    # Leaving the client runs the shutdown hook, which flushes the background log queue.
    rows = db.read_predictions(db.connect(db_url))
    assert len(rows) == 3
    assert set(rows["channel"]) == {"api"} and set(rows["model_version"]) == {"test-untrained"}
    assert not rows["text"].str.contains(EMAIL).any()
    assert (rows["latency_ms"] > 0).all()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_uvicorn_process(release_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "MODEL_SOURCE": str(release_dir), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
           "INFERENCE_BACKEND": "torch", "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "serve.py", "--port", str(port)], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{base}/health", timeout=2).json()["status"] == "ok":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not come up in 90 s"
            time.sleep(0.5)
        response = httpx.post(f"{base}/predict", json={"text": "where is my parcel"}, timeout=30)
        assert response.status_code == 200 and response.json()["predictions"][0]["intent"] in TINY_LABELS
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode in (0, -15)


def test_cli_rejects_bad_port_and_missing_model(settings_env: Path, capsys: pytest.CaptureFixture) -> None:
    from intent_pipeline.cli import run_cli

    with pytest.raises(SystemExit) as exit_info:
        serve.main(["--port", "70000"])
    assert exit_info.value.code == 2 and "--port must be 1-65535" in capsys.readouterr().err
    assert run_cli(serve.main, []) == 1  # empty registry: one clear line, no uvicorn trace
    assert capsys.readouterr().err.strip().startswith("error: no release in the local registry")
