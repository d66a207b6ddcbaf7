"""The API as real uvicorn processes: port 0, overload (fast 503s), streamed bodies, shutdown flush,
`--workers 2` on one SQLite file, and two API processes on one MariaDB losing no prediction rows."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from conftest import PROJECT_ROOT, TINY_LABELS, _fresh_mariadb_url

STARTUP_S = 420  # model + spaCy load; minutes when a shared 2-core machine is overloaded
MESSAGES = ["where is my order", "refund please, mail me at ann.lee@example.com", "hi", "cancel it now",
            "my card was charged twice"]


@pytest.fixture(scope="module")
def release_dir(untrained_release_dir: Path) -> Path:
    return untrained_release_dir


def create_schema(database_url: str) -> None:
    """As a deployment does it: stage 2's `--schema-only`."""
    result = subprocess.run([sys.executable, "load_to_mysql.py", "--schema-only"], cwd=PROJECT_ROOT,
                            env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "schema is current" in result.stdout


@contextmanager
def api_process(tmp_path: Path, name: str, env: dict[str, str], *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """serve.py on port 0; yields its base URL once /health answers. SIGTERM (graceful) in `finally`."""
    port_file = tmp_path / f"{name}.port"
    log_file = (tmp_path / f"{name}.log").open("w")
    proc = subprocess.Popen([sys.executable, "serve.py", "--port", "0", "--port-file", str(port_file), *args],
                            cwd=PROJECT_ROOT, env={**os.environ, "LOG_LEVEL": "WARNING", **env},
                            stdout=log_file, stderr=subprocess.STDOUT)
    try:
        yield wait_until_healthy(proc, port_file, tmp_path / f"{name}.log"), proc
    finally:
        stop(proc)
        log_file.close()


def wait_until_healthy(proc: subprocess.Popen, port_file: Path, log_path: Path) -> str:
    deadline = time.monotonic() + STARTUP_S
    while True:
        assert proc.poll() is None, f"serve.py exited {proc.returncode}: {log_path.read_text()[-2000:]}"
        if port_file.is_file() and port_file.read_text().strip():
            base = f"http://127.0.0.1:{int(port_file.read_text())}"
            try:
                if httpx.get(f"{base}/health", timeout=2).json()["status"] == "ok":
                    return base
            except httpx.HTTPError:
                pass
        assert time.monotonic() < deadline, f"serve.py not healthy in {STARTUP_S} s: {log_path.read_text()[-2000:]}"
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> int:
    """SIGTERM and wait; 0 or -SIGTERM (uvicorn re-raises the signal after its graceful shutdown)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    return 0 if proc.returncode == -signal.SIGTERM else proc.returncode


async def fire(bases: list[str], requests: int, concurrency: int) -> list[httpx.Response]:
    """`requests` POST /predict spread over the servers, `concurrency` at a time (1 or 2 messages each)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient, i: int) -> httpx.Response:
        body = {"text": MESSAGES[i % 5]} if i % 3 else {"texts": [MESSAGES[i % 5], f"order {i} is late"]}
        async with gate:
            return await client.post(f"{bases[i % len(bases)]}/predict", json=body)

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        return await asyncio.gather(*(one(client, i) for i in range(requests)))


def answered_texts(responses: list[httpx.Response]) -> Counter:
    return Counter(p["text"] for r in responses if r.status_code == 200 for p in r.json()["predictions"])


def logged_texts(database_url: str) -> Counter:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return Counter(row[0] for row in conn.execute(sa.text("SELECT text FROM predictions")))
    finally:
        engine.dispose()


def test_port_zero_overload_streamed_limit_and_flush_on_sigterm(release_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    create_schema(url)
    env = {"MODEL_SOURCE": str(release_dir), "DATABASE_URL": url, "MAX_QUEUE": "4", "MAX_BATCH": "2",
           "MAX_BODY_BYTES": "4096"}
    with api_process(tmp_path, "one", env) as (base, proc):
        responses = asyncio.run(fire([base], requests=60, concurrency=40))
        codes = Counter(r.status_code for r in responses)
        assert set(codes) <= {200, 503} and codes[200] > 0 and codes[503] > 0, codes
        refused = [r for r in responses if r.status_code == 503]
        assert all(r.headers["retry-after"] == "1" and "queue is full" in r.json()["error"] for r in refused)
        assert all(p["intent"] in TINY_LABELS for r in responses if r.status_code == 200 for p in r.json()["predictions"])

        def chunks():  # no Content-Length: the limit must be enforced while the body streams in
            for _ in range(10):
                yield b"x" * 1000

        streamed = httpx.post(f"{base}/predict", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert httpx.get(f"{base}/ready", timeout=5).json()["ready"] is True  # the overload is over
        assert stop(proc) == 0
    assert logged_texts(url) == answered_texts(responses)  # SIGTERM flushed every answered row


def test_workers_share_one_sqlite_file(release_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    create_schema(url)
    temp = tmp_path / "tmp"  # where serve.py makes the workers' shared metrics folder
    temp.mkdir()
    env = {"MODEL_SOURCE": str(release_dir), "DATABASE_URL": url, "TMPDIR": str(temp)}
    with api_process(tmp_path, "workers", env, "--workers", "2") as (base, proc):
        deadline = time.monotonic() + STARTUP_S  # /health answered as soon as one worker was up
        while predict_counts(base)[0] < 2:
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.5)
        responses = asyncio.run(fire([base], requests=40, concurrency=8))
        assert all(r.status_code == 200 for r in responses), Counter(r.status_code for r in responses)
        for _ in range(6):  # whichever worker answers the scrape reports both workers' totals
            assert predict_counts(base) == (2, 40, 54)  # 2 workers, 40 requests, 54 messages
        assert len(list(temp.glob("intent-api-metrics-*"))) == 1
        assert stop(proc) == 0
    assert logged_texts(url) == answered_texts(responses)
    assert list(temp.glob("intent-api-metrics-*")) == []  # removed at the end


def predict_counts(base: str) -> tuple[int, float, float]:
    """From GET /metrics: workers reporting a model, answered /predict requests, messages answered."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = [s for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text) for s in family.samples]
    workers = {s.labels.get("pid") for s in samples if s.name == "intent_api_model_info" and s.value == 1}
    requests = sum(s.value for s in samples
                   if s.name == "intent_api_requests_total" and s.labels == {"route": "/predict", "code": "200"})
    messages = sum(s.value for s in samples if s.name == "intent_api_messages_total")
    return len(workers), requests, messages


def test_two_api_processes_on_mariadb_lose_no_rows(mariadb_server: str, release_dir: Path, tmp_path: Path) -> None:
    for url in _fresh_mariadb_url(mariadb_server):
        create_schema(url)
        env = {"MODEL_SOURCE": str(release_dir), "DATABASE_URL": url, "MAX_QUEUE": "64"}
        with api_process(tmp_path, "a", env) as (base_a, proc_a), api_process(tmp_path, "b", env) as (base_b, proc_b):
            responses = asyncio.run(fire([base_a, base_b], requests=90, concurrency=12))
            assert all(r.status_code == 200 for r in responses), Counter(r.status_code for r in responses)
            pids = {httpx.get(f"{base}/health").json()["pid"] for base in (base_a, base_b)}
            assert len(pids) == 2
            assert stop(proc_a) == 0 and stop(proc_b) == 0
        answered = answered_texts(responses)
        assert sum(answered.values()) == 120  # 90 requests, every third with two messages
        assert logged_texts(url) == answered
        assert "ann.lee@example.com" not in json.dumps(list(answered))
