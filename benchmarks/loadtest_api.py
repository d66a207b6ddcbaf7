"""A model release -> printed sustained throughput, p50/p99 latency and errors of the API under load.

Starts `serve.py` under uvicorn on a free loopback port (or targets --url), then runs N concurrent
asyncio + httpx clients, each posting one message at a time for a fixed duration, and prints
requests/s, latency percentiles and the error count (target: zero errors at 32 clients).

    python benchmarks/loadtest_api.py --model-source registry/intent-classifier/<version> --duration 20
"""

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import config  # noqa: E402
from intent_pipeline.cli import run_cli  # noqa: E402
from intent_pipeline.errors import PipelineError  # noqa: E402

MESSAGES = (
    "Where is my order? It should have arrived yesterday",
    "I want a refund for the broken headphones",
    "can u change my delivery address pls",
    "How do I reset my password",
    "cancel my subscription",
    "my card was charged twice, call me on 555-123-4567",
    "hi",
    "Do you ship to Canada?",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, model_source: str | None, backend: str | None, startup_s: float) -> subprocess.Popen:
    """serve.py in a child process; returns once /health answers ok."""
    overrides = {"LOG_LEVEL": "WARNING"}  # the server's access log would drown the results
    if model_source:
        overrides["MODEL_SOURCE"] = model_source
    if backend:
        overrides["INFERENCE_BACKEND"] = backend
    env = config.child_env(**overrides)  # the child reads its settings itself; only these are overridden
    proc = subprocess.Popen([sys.executable, "serve.py", "--port", str(port)], cwd=PROJECT_ROOT, env=env)
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PipelineError(f"serve.py exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get("status") == "ok":
                return proc
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    proc.terminate()
    raise PipelineError(f"serve.py did not become healthy within {startup_s:.0f} s")


async def client_loop(client: httpx.AsyncClient, url: str, stop_at: float, worker: int,
                      latencies: list[float], errors: list[str]) -> None:
    i = worker
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        try:
            response = await client.post(url, json={"text": MESSAGES[i % len(MESSAGES)]})
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}")
            else:
                latencies.append((time.perf_counter() - started) * 1000)
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
        i += 1


async def run_load(base_url: str, clients: int, duration: float, warmup: float) -> tuple[list[float], list[str], float]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        url = f"{base_url}/predict"
        if warmup > 0:
            await asyncio.gather(*(client_loop(client, url, time.monotonic() + warmup, w, [], [])
                                   for w in range(clients)))
        latencies: list[float] = []
        errors: list[str] = []
        start = time.monotonic()
        await asyncio.gather(*(client_loop(client, url, start + duration, w, latencies, errors)
                               for w in range(clients)))
        return latencies, errors, time.monotonic() - start


def report(latencies: list[float], errors: list[str], elapsed: float, clients: int) -> None:
    lat = np.asarray(latencies) if latencies else np.asarray([float("nan")])
    print(f"clients {clients} · {elapsed:.1f} s · {len(latencies)} ok · {len(errors)} errors")
    print(f"throughput {len(latencies) / elapsed:.1f} req/s · latency p50 {np.percentile(lat, 50):.1f} ms · "
          f"p99 {np.percentile(lat, 99):.1f} ms · max {lat.max():.1f} ms")
    if errors:
        kinds = {kind: errors.count(kind) for kind in set(errors)}
        print("errors: " + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="test a running server (e.g. http://127.0.0.1:8000) instead")
    parser.add_argument("--model-source", default=None, help="MODEL_SOURCE for the started server (default: setting)")
    parser.add_argument("--backend", default=None, help="INFERENCE_BACKEND for the started server (default: setting)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--duration", type=float, default=20, help="measured seconds (default 20)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds first (default 3)")
    parser.add_argument("--startup", type=float, default=120, help="seconds to wait for the server (default 120)")
    args = parser.parse_args(argv)
    if args.url and not args.url.startswith(("http://127.0.0.1", "http://localhost")):
        parser.error("--url must be a loopback address (http://127.0.0.1:PORT)")
    proc = None
    base_url = args.url
    if base_url is None:
        port = free_port()
        proc = start_server(port, args.model_source, args.backend, args.startup)
        base_url = f"http://127.0.0.1:{port}"
    try:
        info = httpx.get(f"{base_url}/model", timeout=10).json()
        print(f"model {info.get('version')} · backend {info.get('backend')} · {base_url}")
        latencies, errors, elapsed = asyncio.run(run_load(base_url, args.clients, args.duration, args.warmup))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    report(latencies, errors, elapsed, args.clients)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
