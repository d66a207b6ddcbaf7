"""Model release (MODEL_SOURCE) + HTTP requests -> intent predictions as JSON, logged to the database.

FastAPI app (intent_pipeline/serving/api.py) run by uvicorn. `POST /predict` takes {"text": "..."}
or {"texts": [...]} (optional "top_k") and answers, per message, the intent, confidence, top-k,
fallback flag and the PII-masked text; `GET /health` (alive), `GET /ready` (model loaded, queue not
backed up), `GET /model` (release, backend and why, metrics), `GET /metrics` (Prometheus: requests,
latency, batch sizes, answers by intent and outcome); OpenAPI docs at /docs.

Concurrent requests are micro-batched: one mask call and one model call per batch, on the backend
INFERENCE_BACKEND picks (auto: int8 ONNX when the release vouches for it). The queue is bounded
(MAX_QUEUE; full = 503 + Retry-After), each request has a deadline (REQUEST_TIMEOUT_S; 504), and
predictions are logged from a background thread. A new serving release (a new LATEST, a moved Hub
`serving` tag, or a rollback) is loaded in the background and swapped in without a restart or a
failed request, every RELOAD_INTERVAL_S seconds (intent_pipeline/reload.py). The database schema must exist already
(stage 2: `python load_to_mysql.py --schema-only`).

    python serve.py --port 8000 --workers 2
    python serve.py --port 0 --port-file /tmp/api.port   # any free port, written to the file
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import config
from intent_pipeline.cli import run_cli
from intent_pipeline.logging_setup import setup_logging
from intent_pipeline.registry import resolve_model_source


def create_app():
    """uvicorn's app factory (`serve:create_app`): each worker process builds its app from the settings."""
    from intent_pipeline.serving.api import create_app as build

    return build(config.get_settings())


def main(argv: Sequence[str] | None = None) -> int:
    settings = config.get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port; 0 = any free port (default 8000)")
    parser.add_argument("--port-file", type=Path, default=None,
                        help="write the port actually listened on to this file (useful with --port 0)")
    parser.add_argument("--workers", type=int, default=settings.api_workers,
                        help="API worker processes, each loading its own model (default: API_WORKERS = %(default)s)")
    args = parser.parse_args(argv)
    if not 0 <= args.port < 65536:
        parser.error(f"--port must be 0-65535, got {args.port}")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    setup_logging(settings.log_level)
    resolve_model_source(settings)  # fail fast with one clear line instead of a uvicorn startup trace
    from intent_pipeline.serving.server import serve

    serve(settings, args.host, args.port, args.workers, args.port_file)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
