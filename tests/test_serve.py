"""The prediction API in-process (TestClient): endpoints, validation, limits, auth, logging, schema checks.

Real model (untrained 3-label head), real spaCy/Presidio masker, real databases. The API as real
uvicorn processes (ports, overload, workers, replicas on MariaDB) is in test_serve_processes.py.
"""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import config
import serve
from intent_pipeline import db
from intent_pipeline.serving.api import create_app

from conftest import TINY_LABELS

EMAIL = "john.doe@example.com"
MARKER = "Zebra-Quartz-4471"  # stands in for a customer's message: must never come back in an error
TOKEN = "t0k3n-for-tests"


def api_settings(model_dir: Path, database_url: str, **overrides) -> config.Settings:
    base = config.get_settings()
    values = dict(model_source=str(model_dir), database_url=database_url, inference_backend="auto",
                  max_text_chars=40, max_batch=3, api_token="", max_body_bytes=4096)
    return dataclasses.replace(base, **{**values, **overrides})


def with_schema(url: str) -> str:
    """Create the schema as stage 2 does (the API only checks it)."""
    db.connect(url).dispose()
    return url


@pytest.fixture(scope="module")
def release_dir(untrained_release_dir: Path) -> Path:
    return untrained_release_dir


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return with_schema(f"sqlite:///{tmp_path_factory.mktemp('serve_db') / 'db.sqlite'}")


@pytest.fixture(scope="module")
def client(release_dir: Path, sqlite_url: str):
    with TestClient(create_app(api_settings(release_dir, sqlite_url))) as test_client:
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


def scrape(client: TestClient) -> dict[tuple[str, tuple], float]:
    """GET /metrics parsed: {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def test_metrics_count_requests_batches_and_answers_without_any_text(client: TestClient) -> None:
    before = scrape(client)
    assert client.post("/predict", json={"text": f"{MARKER} {EMAIL}"}).status_code == 200
    assert client.post("/predict", json={"text": "where is my order"}).status_code == 200
    assert client.post("/predict", json={"texts": ["refund now", "hi"]}).status_code == 200
    assert client.post("/predict", json={"text": MARKER * 3}).status_code == 422
    assert client.get("/wp-admin/setup.php").status_code == 404
    text = client.get("/metrics").text
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("intent_api_requests_total", route="/predict", code="200") == 3
    assert grew("intent_api_requests_total", route="/predict", code="422") == 1
    assert grew("intent_api_requests_total", route="other", code="404") == 1  # unknown paths share one label
    assert grew("intent_api_request_duration_seconds_count", route="/predict") == 4
    assert grew("intent_api_messages_total") == 4
    # sequential requests: one micro-batch each, of 1, 1 and 2 messages
    assert grew("intent_api_batch_messages_count") == 3 and grew("intent_api_batch_messages_sum") == 4
    answers = {labels: after[(name, labels)] - before.get((name, labels), 0.0)
               for name, labels in after if name == "intent_api_answers_total"}
    assert sum(answers.values()) == 4
    assert {dict(labels)["intent"] for labels, n in answers.items() if n} <= set(TINY_LABELS)
    assert after[("intent_api_model_info", (("backend", "torch"), ("version", "test-untrained")))] == 1
    assert after[("intent_api_queued_messages", ())] == 0
    for secret in (MARKER, EMAIL, "john", "where is my order"):
        assert secret not in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, 'exactly one of "text"'),
        ({"text": "a", "texts": ["b"]}, 'exactly one of "text"'),
        ({"text": "   "}, "text is empty"),
        ({"text": "\u200b\u200d\ufeff \u2060\t"}, "text is empty"),  # zero-width only: nothing to classify
        ({"texts": ["ok", ""]}, "texts[1] is empty"),
        ({"texts": ["ok", "\u200c\u00a0"]}, "texts[1] is empty"),
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


@pytest.mark.parametrize(
    "body",
    [
        {"text": f"call {MARKER} " * 3},  # too long
        {"texts": ["fine", {"nested": MARKER}]},  # wrong type
        {"text": "fine", "colour": MARKER},  # extra field
        {"text": "fine", "top_k": MARKER},  # not an int
        {"text": "fine", "texts": [MARKER]},  # both
    ],
)
def test_validation_errors_never_echo_the_submitted_text(client: TestClient, body: dict) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 422, response.text
    assert MARKER not in response.text


def test_malformed_json_is_422_without_echo(client: TestClient) -> None:
    response = client.post("/predict", content=f'{{"text": "{MARKER}'.encode(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 422 and MARKER not in response.text


def test_body_over_the_limit_is_413_before_parsing(client: TestClient) -> None:
    # Not JSON at all: a parser would answer 422; the size check answers first.
    response = client.post("/predict", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "MAX_BODY_BYTES" in response.json()["error"]
    response = client.post("/predict", content=b"{}", headers={"content-type": "application/json",
                                                               "content-length": "zzz"})
    assert response.status_code == 400


def test_top_k_above_the_label_count_gives_every_label(client: TestClient) -> None:
    response = client.post("/predict", json={"text": "where is my order", "top_k": 50})
    assert response.status_code == 200, response.text
    assert sorted(k["intent"] for k in response.json()["predictions"][0]["top_k"]) == sorted(TINY_LABELS)
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    top_k = next(v["properties"]["top_k"] for k, v in schema.items() if "top_k" in v.get("properties", {})
                 and "texts" in v["properties"])
    assert top_k["maximum"] == 100 and "all of them" in top_k["description"]


def test_startup_takes_the_loaded_model_out_of_the_collectors_sight(release_dir: Path, sqlite_url: str) -> None:
    """Full collections walking the model and masker stalled every request (the load test's p99)."""
    gc.unfreeze()
    with TestClient(create_app(api_settings(release_dir, sqlite_url))):
        assert gc.get_freeze_count() > 100_000
    gc.unfreeze()


def test_health_ready_model_and_docs(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["db_logging"] is True
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True and ready.json()["queued"] == 0
    info = client.get("/model").json()
    assert info["labels"] == TINY_LABELS and info["version"] == "test-untrained"
    assert info["metrics"] == {"test": {"macro_f1": 0.91}, "accuracy": 0.9}
    # auto on a release without ONNX graphs: PyTorch, and /model says why
    assert info["backend"] == "torch" and "auto" in info["backend_reason"] and "onnx unavailable" in info["backend_reason"]
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_bearer_token_guards_every_route_but_health(release_dir: Path, sqlite_url: str) -> None:
    with TestClient(create_app(api_settings(release_dir, sqlite_url, api_token=TOKEN))) as test_client:
        assert test_client.get("/health").status_code == 200
        for method, path in [("post", "/predict"), ("get", "/ready"), ("get", "/model"), ("get", "/metrics"),
                             ("get", "/docs"), ("get", "/openapi.json")]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                response = getattr(test_client, method)(path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.headers["www-authenticate"] == "Bearer" and TOKEN not in response.text
        ok = test_client.post("/predict", json={"text": "where is my order"},
                              headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["predictions"][0]["intent"] in TINY_LABELS


def test_request_timeout_answers_504(release_dir: Path, sqlite_url: str) -> None:
    with TestClient(create_app(api_settings(release_dir, sqlite_url, request_timeout_s=0.001))) as test_client:
        response = test_client.post("/predict", json={"text": "where is my order"})
    assert response.status_code == 504 and "REQUEST_TIMEOUT_S" in response.json()["error"]
    assert response.headers["retry-after"] == "1"


def test_unopenable_database_still_serves(release_dir: Path, tmp_path: Path, caplog) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")  # SQLite cannot create a database inside a file: an OSError, not a PipelineError
    with TestClient(create_app(api_settings(release_dir, f"sqlite:///{not_a_folder}/db.sqlite"))) as test_client:
        assert test_client.get("/health").json()["db_logging"] is False
        response = test_client.post("/predict", json={"text": "where is my order"})
        assert response.status_code == 200 and response.json()["predictions"][0]["intent"] in TINY_LABELS
    assert "predictions will not be logged" in caplog.text


def test_missing_schema_fails_startup_clearly(release_dir: Path, db_url: str) -> None:
    with pytest.raises(db.SchemaError, match="table predictions is missing.*load_to_mysql.py --schema-only"):
        with TestClient(create_app(api_settings(release_dir, db_url))):
            pass
    assert db.schema_problems(db.make_engine(db_url))  # the server did not create anything itself


def test_predictions_are_logged(release_dir: Path, db_url: str) -> None:
    with TestClient(create_app(api_settings(release_dir, with_schema(db_url)))) as test_client:
        assert test_client.post("/predict", json={"texts": [f"write to {EMAIL}", "hello"]}).status_code == 200
        assert test_client.post("/predict", json={"text": "where is it"}).status_code == 200
    # Leaving the client runs the shutdown hook, which flushes the background log queue.
    rows = db.read_predictions(db.connect(db_url))
    assert len(rows) == 3
    assert set(rows["channel"]) == {"api"} and set(rows["model_version"]) == {"test-untrained"}
    assert not rows["text"].str.contains(EMAIL).any()
    assert (rows["latency_ms"] > 0).all()


def test_sqlite_runs_in_wal_mode_with_the_busy_timeout_setting(sqlite_url: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    with db.make_engine(sqlite_url).connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA busy_timeout")).scalar() == config.get_settings().sqlite_busy_timeout_s * 1000
    monkeypatch.setenv("SQLITE_BUSY_TIMEOUT_S", "2.5")
    with db.make_engine(sqlite_url).connect() as conn:
        assert conn.execute(sa.text("PRAGMA busy_timeout")).scalar() == 2500
    monkeypatch.setenv("SQLITE_BUSY_TIMEOUT_S", "-1")
    with pytest.raises(config.ConfigError, match="SQLITE_BUSY_TIMEOUT_S must be >= 0"):
        config.get_settings()


def test_cli_rejects_bad_port_missing_model_and_missing_schema(settings_env: Path, release_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    from intent_pipeline.cli import run_cli

    with pytest.raises(SystemExit) as exit_info:
        serve.main(["--port", "70000"])
    assert exit_info.value.code == 2 and "--port must be 0-65535" in capsys.readouterr().err
    assert run_cli(serve.main, []) == 1  # empty registry: one clear line, no uvicorn trace
    assert capsys.readouterr().err.strip().startswith("error: no release in the local registry")
    monkeypatch.setenv("MODEL_SOURCE", str(release_dir))  # a release, but the database has no schema yet
    assert run_cli(serve.main, ["--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the database") and "load_to_mysql.py --schema-only" in err


def test_ready_high_water_comes_from_its_setting(release_dir: Path, sqlite_url: str) -> None:
    settings = api_settings(release_dir, sqlite_url, max_queue=40, ready_high_water=0.25)
    with TestClient(create_app(settings)) as test_client:
        ready = test_client.get("/ready").json()
    assert ready["high_water"] == 10 and ready["max_queue"] == 40 and ready["ready"] is True


def test_each_worker_gives_the_model_half_of_its_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from intent_pipeline.serving.server import threads_per_worker

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    settings = config.get_settings()
    auto = dataclasses.replace(settings, inference_threads=0)
    assert [threads_per_worker(auto, workers) for workers in (1, 2, 4, 8)] == [4, 2, 1, 1]
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert threads_per_worker(auto, 1) == 1  # the masker keeps the other core
    assert threads_per_worker(dataclasses.replace(settings, inference_threads=3), 1) == 3
