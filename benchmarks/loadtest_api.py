"""A model release -> printed API throughput, latency, refusals, lost log rows and memory under load.

Starts `serve.py` (port 0, a fresh SQLite log database in a temporary folder, schema created as
stage 2 does) and measures, each for --duration seconds after a short warm-up:

- sequential: one client, one message per request (compare: a plain `transformers.pipeline` on the
  same model, in this process, one message at a time, measured after the server has stopped);
- N concurrent clients (--clients, default 32 and 128), one message per request: req/s, p50/p99
  of answered requests, errors (anything but 200/503), 503s (and how fast they came), 504s;
- the batched ceiling: one client sending --batch-size-message batches (messages/s).

After a graceful stop it counts the rows in the log database against the answered messages
(dropped log rows), and reports the server's peak RSS (all its processes) per scenario.
Targets (2-core machine): 32 clients >= 0.6x the batched ceiling with p99 <= 250 ms and no errors;
sequential >= 2x the plain pipeline; 128 clients: only fast 503s, no timeouts, bounded memory.

    python benchmarks/loadtest_api.py --model-source registry/intent-classifier/<version>
    python benchmarks/loadtest_api.py --clients 32 --duration 10 --no-pipeline
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import config  # noqa: E402
from intent_pipeline.cli import run_cli  # noqa: E402
from intent_pipeline.errors import PipelineError  # noqa: E402

SEED_FILE = PROJECT_ROOT / "data" / "raw_customer_interactions.csv"


def distinct_messages(n: int = 2000, seed: int = 0) -> list[str]:
    """`n` distinct seed messages in a seeded order: repeated texts would let the batch path mask one
    copy for many (the masker dedupes within a batch) and inflate the batched ceiling."""
    import pandas as pd

    texts = pd.read_csv(SEED_FILE, usecols=["query"])["query"].dropna().astype(str).drop_duplicates()
    return texts.sample(n=min(n, len(texts)), random_state=seed).tolist()


MESSAGES: list[str] = []  # filled by main() before any load runs


@dataclass
class Result:
    name: str
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # ms, answered (200) requests
    refusals: list[float] = field(default_factory=list)  # ms, 503 answers
    timeouts: int = 0  # 504 answers and client-side timeouts
    errors: dict[str, int] = field(default_factory=dict)
    messages: int = 0  # answered messages
    peak_rss_mb: float = 0.0
    server_cpu_s: float = 0.0  # CPU time the server's processes used during the scenario
    client_cpu_s: float = 0.0  # ... and this load generator
    cpu_messages: int = 0  # messages answered while that CPU was spent (warm-up included)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class RssSampler:
    """Peak resident memory of a process and its children, sampled every 100 ms in a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(0.1):
            try:
                procs = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server and its worker processes so far."""
        import psutil

        total = 0.0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    def take_peak(self) -> float:
        """Peak since the last call, in MB."""
        peak, self.peak = self.peak, 0
        return peak / 1e6

    def close(self) -> None:
        self._stop.set()


def start_server(env: dict[str, str], workers: int, workdir: Path, startup_s: float) -> tuple[subprocess.Popen, str]:
    port_file = workdir / "api.port"
    proc = subprocess.Popen([sys.executable, "serve.py", "--port", "0", "--port-file", str(port_file),
                             "--workers", str(workers)], cwd=PROJECT_ROOT, env=config.child_env(**env))
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PipelineError(f"serve.py exited with code {proc.returncode} before it was ready")
        if port_file.is_file() and port_file.read_text().strip():
            base = f"http://127.0.0.1:{int(port_file.read_text())}"
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    stop_server(proc)
    raise PipelineError(f"serve.py did not become ready within {startup_s:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # graceful: the server flushes its prediction log
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


async def client_loop(session, url: str, stop_at: float, worker: int, batch: int, result: Result) -> None:
    import aiohttp

    i = worker
    while time.monotonic() < stop_at:
        texts = [MESSAGES[(i + k) % len(MESSAGES)] for k in range(batch)]
        i += 1
        body = {"text": texts[0]} if batch == 1 else {"texts": texts}
        started = time.perf_counter()
        try:
            async with session.post(url, json=body) as response:
                await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After", "1")
        except asyncio.TimeoutError:
            result.timeouts += 1
            continue
        except aiohttp.ClientError as exc:
            result.error(type(exc).__name__)
            continue
        ms = (time.perf_counter() - started) * 1000
        if status == 200:
            result.latencies.append(ms)
            result.messages += batch
        elif status == 503:
            result.refusals.append(ms)
            await asyncio.sleep(float(retry_after))  # as a well-behaved client does
        elif status == 504:
            result.timeouts += 1
        else:
            result.error(f"HTTP {status}")


async def run_load(base_url: str, name: str, clients: int, batch: int, duration: float, warmup: float,
                   answered: list[int]) -> Result:
    # aiohttp, not httpx: at 32+ clients httpx spends more CPU per request than the server does, and
    # on a 2-core machine the load generator would then measure itself.
    import aiohttp

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        url = f"{base_url}/predict"
        if warmup > 0:
            warm = Result("warm-up")
            await asyncio.gather(*(client_loop(session, url, time.monotonic() + warmup, w, batch, warm)
                                   for w in range(clients)))
            answered.append(warm.messages)
        result = Result(name)
        start = time.monotonic()
        await asyncio.gather(*(client_loop(session, url, start + duration, w, batch, result)
                               for w in range(clients)))
        result.elapsed = time.monotonic() - start
        answered.append(result.messages)
        return result


def pipeline_baseline(folder: str, duration: float) -> tuple[float, float]:
    """Messages/s of a plain transformers.pipeline, in this process, one message at a time, and its
    CPU ms per message (comparable with the server's CPU/msg when the machine is busy)."""
    from transformers import pipeline

    pipe = pipeline("text-classification", model=folder, device=-1)
    for text in MESSAGES[:8]:  # warm-up
        pipe(text, truncation=True)
    done, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < duration:
        pipe(MESSAGES[done % len(MESSAGES)], truncation=True)
        done += 1
    return done / (time.perf_counter() - start), (time.process_time() - cpu) * 1000 / max(1, done)


def count_rows(database_url: str) -> int:
    from intent_pipeline import db

    engine = db.make_engine(database_url)
    try:
        return len(db.read_predictions(engine))
    finally:
        engine.dispose()


def line(r: Result) -> str:
    lat = np.asarray(r.latencies) if r.latencies else np.asarray([np.nan])
    refused = f"{len(r.refusals)} (p99 {np.percentile(r.refusals, 99):.0f} ms)" if r.refusals else "0"
    errors = ", ".join(f"{kind} x{n}" for kind, n in sorted(r.errors.items())) or "0"
    # CPU per answered message: unlike req/s, comparable between a quiet machine and a busy one.
    per_msg = 1000 / max(1, r.cpu_messages)
    return (f"{r.name:<14} {len(r.latencies) / r.elapsed:7.1f} req/s {r.messages / r.elapsed:7.1f} msg/s  "
            f"p50 {np.percentile(lat, 50):5.0f} ms  p99 {np.percentile(lat, 99):5.0f} ms  errors {errors}  "
            f"503s {refused}  timeouts {r.timeouts}  peak RSS {r.peak_rss_mb:.0f} MB  "
            f"CPU/msg server {r.server_cpu_s * per_msg:.1f} ms, client {r.client_cpu_s * per_msg:.1f} ms")


def verdicts(results: dict[str, Result], clients: Sequence[int], pipe_rate: float | None) -> list[str]:
    out = []
    ceiling = results["batched"].messages / results["batched"].elapsed
    if 32 in clients:
        r = results["32 clients"]
        rate, p99 = r.messages / r.elapsed, float(np.percentile(r.latencies or [np.inf], 99))
        ok = rate >= 0.6 * ceiling and p99 <= 250 and not r.errors and r.timeouts == 0
        out.append(f"32 clients: {rate / ceiling:.2f}x the batched ceiling, p99 {p99:.0f} ms, "
                   f"{sum(r.errors.values())} errors -> {'MET' if ok else 'NOT MET'} (>= 0.6x, <= 250 ms, 0)")
    if 128 in clients:
        r = results["128 clients"]
        slow = float(np.percentile(r.refusals, 99)) if r.refusals else 0.0
        ok = not r.errors and r.timeouts == 0 and slow <= 250
        out.append(f"128 clients: {len(r.refusals)} 503s (p99 {slow:.0f} ms), {r.timeouts} timeouts, "
                   f"{sum(r.errors.values())} errors, peak RSS {r.peak_rss_mb:.0f} MB -> {'MET' if ok else 'NOT MET'}")
    if pipe_rate:
        seq = results["sequential"]
        ratio = seq.messages / seq.elapsed / pipe_rate
        out.append(f"sequential: {ratio:.2f}x a plain transformers.pipeline ({pipe_rate:.1f} msg/s) -> "
                   f"{'MET' if ratio >= 2 else 'NOT MET'} (>= 2x)")
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-source", default=None, help="MODEL_SOURCE for the server (default: setting)")
    parser.add_argument("--backend", default=None, help="INFERENCE_BACKEND for the server (default: setting, auto)")
    parser.add_argument("--workers", type=int, default=1, help="serve.py --workers (default 1)")
    parser.add_argument("--clients", type=int, nargs="+", default=[32, 128], help="concurrency levels (default 32 128)")
    parser.add_argument("--batch-size", type=int, default=64, help="messages per request for the ceiling (default 64)")
    parser.add_argument("--duration", type=float, default=30, help="measured seconds per scenario (default 30)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each (default 3)")
    parser.add_argument("--startup", type=float, default=300, help="seconds to wait for the server (default 300)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the transformers.pipeline baseline")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from intent_pipeline import db
    from intent_pipeline.registry import resolve_model_source

    settings = config.get_settings()
    folder = str(resolve_model_source(settings, args.model_source))
    MESSAGES[:] = distinct_messages()
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'log.db'}"
        db.create_schema(database_url)  # stage 2 creates the schema; the API only checks it
        env = {"LOG_LEVEL": "WARNING", "MODEL_SOURCE": folder, "DATABASE_URL": database_url,
               "MAX_BATCH": str(max(args.batch_size, settings.max_batch))}
        if args.backend:
            env["INFERENCE_BACKEND"] = args.backend
        proc, base = start_server(env, args.workers, Path(tmp), args.startup)
        sampler = RssSampler(proc.pid)
        results: dict[str, Result] = {}
        answered: list[int] = []
        try:
            info = httpx.get(f"{base}/model", timeout=10).json()
            print(f"model {info['version']} · backend {info['backend']} ({info['backend_reason']}) · "
                  f"workers {args.workers} · {os.cpu_count()} CPUs · load average {os.getloadavg()[0]:.1f}")
            scenarios = [("sequential", 1, 1), *((f"{c} clients", c, 1) for c in args.clients),
                         ("batched", 1, args.batch_size)]
            for name, clients, batch in scenarios:
                sampler.take_peak()
                cpu, own_cpu, seen = sampler.cpu_seconds(), time.process_time(), len(answered)
                result = asyncio.run(run_load(base, name, clients, batch, args.duration, args.warmup, answered))
                result.peak_rss_mb = sampler.take_peak()
                result.server_cpu_s, result.client_cpu_s = sampler.cpu_seconds() - cpu, time.process_time() - own_cpu
                result.cpu_messages = sum(answered[seen:])
                results[name] = result
                print(line(result), flush=True)
        finally:
            stop_server(proc)
            sampler.close()
        logged = count_rows(database_url)
    print(f"dropped log rows: {sum(answered) - logged} of {sum(answered)} answered messages "
          f"({logged} rows logged)")
    pipe_rate = None
    if not args.no_pipeline:
        pipe_rate, pipe_cpu_ms = pipeline_baseline(folder, min(args.duration, 20))
        print(f"{'plain pipeline':<22} {pipe_rate:8.1f} msg/s, CPU/msg {pipe_cpu_ms:.1f} ms "
              "(transformers.pipeline, sequential, in-process)")
    for verdict in verdicts(results, args.clients, pipe_rate):
        print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
