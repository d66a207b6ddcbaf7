"""Running the API: bind the listening socket here, then hand it to uvicorn (one or several workers).

Binding first means `--port 0` works: the OS picks a free port, this process reports it (log line
and `--port-file`) and keeps the socket, so nothing can take the port between "found free" and
"listening". Worker processes share that one socket; each loads its own model, so the model
runtime gets half of its share of the cores (INFERENCE_THREADS=0; the masker uses the rest).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

import config
from intent_pipeline import db
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import write_text_atomic

log = logging.getLogger(__name__)

APP_FACTORY = "serve:create_app"
BACKLOG = 2048


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PipelineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def threads_per_worker(settings: config.Settings, workers: int) -> int:
    """INFERENCE_THREADS, or half of each worker process's share of the CPU cores.

    Half, because a worker masks on one thread while the model scores on others (the two stages of
    its micro-batcher, and a lone request's early score): the model's threads get the cores the
    masker leaves. On 2 cores, 1 model thread answered a sequential client 253 req/s against 199 with
    2, at the same batched and 32-client throughput (benchmarks/loadtest_api.py, 2026-11-26)."""
    return settings.inference_threads or max(1, (os.cpu_count() or 1) // (2 * workers))


def check_database(settings: config.Settings) -> None:
    """Fail before any worker starts when the database is reachable but lacks the current schema."""
    try:
        db.open_existing(settings.database_url).dispose()
    except db.SchemaError:
        raise
    except Exception as exc:  # unreachable: the API still answers, without logging (each worker warns)
        log.warning("database not reachable at startup (%s): predictions will not be logged", type(exc).__name__)


def serve(settings: config.Settings, host: str, port: int, workers: int, port_file: Path | None = None) -> None:
    """Run the API until interrupted (SIGINT/SIGTERM shut down gracefully, flushing the prediction log)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    check_database(settings)
    # Settings reach uvicorn's workers (separate processes) through their environment.
    config.export_to_children(INFERENCE_THREADS=str(threads_per_worker(settings, workers)))
    metrics_dir = metrics_folder(workers)
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    if port_file is not None:
        write_text_atomic(port_file, f"{bound}\n")
    log.info("serving on http://%s:%d with %d worker process(es)", host, bound, workers)
    # One access-log line per request costs CPU on every answer; it is on only with LOG_LEVEL=DEBUG.
    uv_config = uvicorn.Config(APP_FACTORY, factory=True, workers=workers, log_level=settings.log_level.lower(),
                               access_log=settings.log_level == "DEBUG",
                               timeout_graceful_shutdown=max(5, int(settings.request_timeout_s) + 5))
    try:
        if workers > 1:
            Multiprocess(uv_config, sockets=[sock]).run()
        else:
            server = uvicorn.Server(uv_config)
            server.run(sockets=[sock])
            if not server.started:
                raise PipelineError("the API did not start (see the log above)")
    finally:
        sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def metrics_folder(workers: int) -> Path | None:
    """With several workers, a new empty folder where each writes its Prometheus values, so any worker
    answering GET /metrics reports the totals of all (prometheus_client's multiprocess mode); None
    with one worker, whose values stay in memory."""
    if workers <= 1:
        return None
    folder = Path(tempfile.mkdtemp(prefix="intent-api-metrics-"))
    config.export_to_children(PROMETHEUS_MULTIPROC_DIR=str(folder))
    return folder
