"""Hot reload (issue 14, part 3): a real uvicorn API keeps answering while a new release is published and
then rolled back; every request succeeds and /model follows the release serving."""

from __future__ import annotations

import dataclasses
import gc
import json
import shutil
import socket
import threading
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import httpx
import pytest

import config
import push_model
from intent_pipeline import db, registry
from intent_pipeline.cli import run_cli
from intent_pipeline.reload import ReleasePoller, serving_release_id
from intent_pipeline.serving.api import create_app, swap_release
from intent_pipeline.serving.service import PredictionService, load_model


@pytest.fixture
def registry_copy(tiny_release: Path, settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the session's one-release registry; REGISTRY_DIR points at it."""
    target = settings_env / "registry"
    shutil.copytree(tiny_release, target, symlinks=True)
    monkeypatch.setenv("REGISTRY_DIR", str(target))
    return target / "intent-classifier"


def publish_copy_of_v1(repo: Path, version: str) -> None:
    """Publish the v1 weights again as `version` through the registry's own staging + rename + LATEST."""
    settings = config.get_settings()
    stage = registry.staging_dir(settings)
    shutil.rmtree(stage)
    shutil.copytree(repo / "v1", stage)
    info = json.loads((stage / "release.json").read_text())
    (stage / "release.json").write_text(json.dumps({**info, "version": version}))
    registry.publish_local(stage, version, settings)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_api_swaps_and_rolls_back_releases_under_load_with_zero_errors(registry_copy: Path, settings_env: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.setenv("RELOAD_INTERVAL_S", "0.2")
    settings = dataclasses.replace(config.get_settings(), inference_backend="torch")
    db.connect(settings.database_url).dispose()  # stage 2's schema: the API only checks it
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    server_thread = threading.Thread(target=server.run, daemon=True)
    server_thread.start()
    base = f"http://127.0.0.1:{port}"
    _wait_for(lambda: server.started, 120, "the API to start")

    stop = threading.Event()
    seen: dict[int, list[str]] = defaultdict(list)
    errors: list[str] = []

    def client(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    body = {"texts": [f"where is my order {worker}-{i}", "refund please"]} if i % 2 else \
                        {"text": f"I want my invoice {worker}-{i}"}
                    answer = http.post("/predict", json=body)
                    if answer.status_code != 200:
                        errors.append(f"{answer.status_code}: {answer.text[:200]}")
                        continue
                    payload = answer.json()
                    assert payload["predictions"] and payload["predictions"][0]["intent"]
                    seen[worker].append(payload["model_version"])
                except Exception as exc:  # any failure counts: a dropped connection is an error too
                    errors.append(f"{type(exc).__name__}: {exc}")

    def serving() -> str:
        return httpx.get(f"{base}/model", timeout=30).json()["version"]

    def serving_per_metrics() -> set[str]:
        from prometheus_client.parser import text_string_to_metric_families

        families = text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=30).text)
        return {s.labels["version"] for f in families for s in f.samples if s.name == "intent_api_model_info" and s.value}

    workers = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    try:
        for thread in workers:
            thread.start()
        _wait_for(lambda: sum(map(len, seen.values())) >= 8, 120, "requests on v1")
        assert serving() == "v1"

        publish_copy_of_v1(registry_copy, "v2")  # a new release appears while clients are busy
        _wait_for(lambda: serving() == "v2", 120, "the API to serve v2")
        _wait_for(lambda: serving_per_metrics() == {"v2"}, 30, "/metrics to name v2 alone")
        mark = sum(map(len, seen.values()))
        _wait_for(lambda: sum(map(len, seen.values())) >= mark + 8, 120, "requests on v2")

        assert run_cli(push_model.main, ["--rollback", "v1"]) == 0  # and is taken back, by the one command
        _wait_for(lambda: serving() == "v1", 120, "the API to serve v1 again")
        mark = sum(map(len, seen.values()))
        _wait_for(lambda: sum(map(len, seen.values())) >= mark + 8, 120, "requests after the rollback")
        model = httpx.get(f"{base}/model", timeout=30).json()
        _wait_for(lambda: serving_per_metrics() == {"v1"}, 30, "/metrics to name v1 alone again")
    finally:
        stop.set()
        for thread in workers:
            thread.join(60)
        server.should_exit = True
        server_thread.join(60)

    assert errors == []
    assert model["serving"]["release"] == "v1" and model["serving"]["reloads"] == 2
    assert model["serving"]["folder"].endswith("intent-classifier/v1")
    versions = [v for worker in seen.values() for v in worker]
    assert {"v1", "v2"} <= set(versions)
    for worker_versions in seen.values():  # each client saw v1, then v2, then v1 again: no flapping
        changes = [b for a, b in zip(worker_versions, worker_versions[1:]) if a != b]
        assert changes in ([], ["v2"], ["v2", "v1"], ["v1"]), changes


def test_a_broken_release_is_refused_and_the_old_one_keeps_serving(registry_copy: Path, caplog) -> None:
    settings = config.get_settings()
    service = PredictionService(settings, load_model(settings), masker=None)  # the model part is all that swaps
    poller = ReleasePoller(settings, lambda: service.model.folder, partial(swap_release, settings, service),
                           interval_s=0)
    assert service.model.version == "v1"
    assert poller.check_now() is False  # nothing new

    broken = registry_copy / "v2"
    shutil.copytree(registry_copy / "v1", broken)
    (broken / "model.safetensors").write_bytes(b"not a model")
    (registry_copy / "LATEST").write_text("v2\n")
    assert poller.check_now() is False
    assert service.model.version == "v1"
    assert "release v2 cannot be loaded, still serving v1" in caplog.text

    publish_copy_of_v1(registry_copy, "v3")
    gc.unfreeze()
    assert poller.check_now() is True and service.model.version == "v3" and poller.swaps == 1
    assert gc.get_freeze_count() > 0  # the new release is out of the collector's sight again


def test_pinned_sources_are_never_reloaded(registry_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SOURCE", str(registry_copy / "v1"))
    assert serving_release_id(config.get_settings()) is None
    monkeypatch.setenv("MODEL_SOURCE", "acme/intent-model@v3")
    assert serving_release_id(config.get_settings()) is None
    monkeypatch.setenv("MODEL_SOURCE", "")
    assert serving_release_id(config.get_settings()) == "v1"


def test_dashboard_switches_to_a_new_release_without_a_restart(registry_copy: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from conftest import PROJECT_ROOT

    monkeypatch.setenv("RELOAD_INTERVAL_S", "0.2")
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception

    def sidebar_text() -> str:
        return " ".join(m.value for m in at.sidebar.markdown)

    assert "`v1`" in sidebar_text()
    publish_copy_of_v1(registry_copy, "v2")
    deadline = time.monotonic() + 60
    while "`v2`" not in sidebar_text() and time.monotonic() < deadline:
        time.sleep(0.3)
        at.run()  # the next interaction of a user: same process, no restart
    assert "`v2`" in sidebar_text()
    at.sidebar.radio(key="view").set_value("Model quality").run()
    assert any("Model `v2`" in c.value for c in at.caption)  # the quality view names the version serving
