"""Model release (MODEL_SOURCE) + HTTP requests -> intent predictions as JSON, logged to the database.

FastAPI app served by uvicorn. `POST /predict` takes {"text": "..."} or {"texts": [...]} (optional
"top_k", 1-100, clipped to the number of labels) and answers, per message, the intent, confidence, top-k, fallback flag and the PII-masked
text; `GET /health`; `GET /model` (version, labels, metrics summary); OpenAPI docs at /docs.

Messages are cleaned and PII-masked (intent_pipeline/masking.py) before the model or the log sees them. Model
calls run on one worker thread (the CPU is small; concurrent model calls would only fight over
cores), and database writes go through a background queue that inserts in batches, so logging
never adds to a request's latency.

    python serve.py --port 8000
"""

# No `from __future__ import annotations`: FastAPI must resolve the body model built in create_app().
import argparse
import asyncio
import logging
import queue
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

import config
from intent_pipeline import db
from intent_pipeline.artifacts import ModelFiles
from intent_pipeline.cli import run_cli
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import read_json
from intent_pipeline.logging_setup import setup_logging
from intent_pipeline.predict import IntentClassifier
from intent_pipeline.registry import resolve_model_source

log = logging.getLogger("serve")

CHANNEL = "api"
LOG_QUEUE_SIZE = 10_000
LOG_BATCH = 256
# top_k above the number of labels is clipped (the answer has every label); beyond this it is a client bug.
MAX_TOP_K = 100


class TopK(BaseModel):
    intent: str
    confidence: float


class PredictionOut(BaseModel):
    text: str = Field(description="the message after cleaning and PII masking")
    intent: str = Field(description="the answer: the top intent, or the fallback label when unsure")
    top_intent: str
    confidence: float
    is_fallback: bool
    top_k: list[TopK]


class PredictResponse(BaseModel):
    model_version: str
    backend: str
    latency_ms: float
    predictions: list[PredictionOut]


def request_model(max_chars: int, max_batch: int) -> type[BaseModel]:
    """The POST /predict body schema, with this deployment's limits baked into validation and docs."""

    class PredictRequest(BaseModel):
        """One message (`text`) or a batch (`texts`), not both."""

        model_config = ConfigDict(extra="forbid")
        text: StrictStr | None = Field(None, description=f"one message, 1-{max_chars} characters")
        texts: list[StrictStr] | None = Field(
            None, min_length=1, max_length=max_batch, description=f"1-{max_batch} messages"
        )
        top_k: StrictInt = Field(3, ge=1, le=MAX_TOP_K, description=(
            f"how many ranked intents to return (1-{MAX_TOP_K}); more than the model has labels gives all of them"))

        @model_validator(mode="after")
        def check_messages(self) -> "PredictRequest":
            if (self.text is None) == (self.texts is None):
                raise ValueError('send exactly one of "text" (a string) or "texts" (a list of strings)')
            for i, message in enumerate([self.text] if self.texts is None else self.texts):
                where = "text" if self.texts is None else f"texts[{i}]"
                if not message.strip():
                    raise ValueError(f"{where} is empty")
                if len(message) > max_chars:
                    raise ValueError(f"{where} is longer than {max_chars} characters ({len(message)})")
            return self

        def messages(self) -> list[str]:
            return [self.text] if self.texts is None else list(self.texts)

    return PredictRequest


class PredictionLogger:
    """Writes prediction rows to the database from a background thread, in batches.

    Requests only enqueue; if the database is down or slow, rows are dropped with a warning rather
    than letting the API stall. `close()` flushes what is queued.
    """

    def __init__(self, engine) -> None:
        self.engine = engine
        self.queue: queue.Queue = queue.Queue(maxsize=LOG_QUEUE_SIZE)
        self.dropped = 0
        self.written = 0
        self.thread = threading.Thread(target=self._run, name="prediction-logger", daemon=True)
        self.thread.start()

    def submit(self, rows: list[dict]) -> None:
        for row in rows:
            try:
                self.queue.put_nowait(row)
            except queue.Full:
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.warning("prediction log queue full: %d rows not logged so far", self.dropped)

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self.queue.get()]
            while len(batch) < LOG_BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(row is None for row in batch)
            rows = [row for row in batch if row is not None]
            if rows:
                self._write(rows)

    def _write(self, rows: list[dict]) -> None:
        try:
            db.log_predictions(self.engine, rows)
            self.written += len(rows)
        except Exception as exc:  # a logging failure must never take the API down
            self.dropped += len(rows)
            log.warning("could not log %d predictions: %s", len(rows), type(exc).__name__)

    def close(self, timeout: float = 10.0) -> None:
        self.queue.put(None)
        self.thread.join(timeout)


@dataclass
class Service:
    """Everything loaded once at startup."""

    settings: config.Settings
    folder: Path
    classifier: IntentClassifier
    masker: Any
    logger: PredictionLogger | None
    executor: ThreadPoolExecutor
    metrics: dict

    def mask(self, texts: list[str]) -> list[str]:
        from intent_pipeline import masking

        cleaned = [masking.clean_text(t) for t in texts]
        if len(cleaned) == 1:
            return [self.masker.mask(cleaned[0]).text]
        return [result.text for result in self.masker.mask_batch(cleaned)]

    def predict(self, texts: list[str], top_k: int) -> dict:
        """Mask, classify and queue the log rows; runs on the single model thread."""
        started = time.perf_counter()
        masked = self.mask(texts)
        preds = self.classifier.predict(masked, top_k=top_k)
        latency_ms = (time.perf_counter() - started) * 1000
        out = []
        for pred, text in zip(preds, masked):
            out.append({**pred.to_dict(), "text": text})
        if self.logger is not None:
            per_message = latency_ms / len(texts)
            self.logger.submit([{**row, "model_version": self.classifier.version, "latency_ms": per_message,
                                 "channel": CHANNEL} for row in out])
        return {"model_version": self.classifier.version, "backend": self.classifier.backend,
                "latency_ms": latency_ms, "predictions": out}


def metrics_summary(folder: Path) -> dict:
    """Headline numbers of a release's metrics.json (scalars, one level deep), or {} if absent."""
    path = ModelFiles(folder).metrics
    if not path.is_file():
        return {}
    try:
        metrics = read_json(path, "metrics", "re-run export_bert_metrics.py")
    except PipelineError as exc:
        log.warning("%s", exc)
        return {}
    summary: dict = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float, str, bool)):
            summary[key] = value
        elif isinstance(value, dict):
            scalars = {k: v for k, v in value.items() if isinstance(v, (int, float, str, bool))}
            if scalars:
                summary[key] = scalars
    return summary


def load_service(settings: config.Settings) -> Service:
    from intent_pipeline import masking

    folder = resolve_model_source(settings)
    classifier = IntentClassifier.load(folder, fallback_label=settings.fallback_label,
                                       backend=settings.inference_backend)
    masker = masking.get_masker(settings.spacy_model)
    logger = None
    try:
        logger = PredictionLogger(db.connect(settings.database_url))
    except PipelineError as exc:
        log.warning("predictions will not be logged: %s", exc)
    except Exception as exc:  # e.g. OSError for an unwritable SQLite folder: answering matters more than logging
        log.warning("predictions will not be logged: the database %s cannot be opened (%s)",
                    config.mask_url(settings.database_url), type(exc).__name__)
    log.info("serving model %s (%s backend) from %s", classifier.version, classifier.backend, folder)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
    return Service(settings, folder, classifier, masker, logger, executor, metrics_summary(folder))


def validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with FastAPI's detail list plus one readable line ('body.texts: ...')."""
    errors = exc.errors()
    lines = []
    for err in errors:
        where = ".".join(str(part) for part in err.get("loc", ()) if part != "body") or "body"
        lines.append(f"{where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return JSONResponse(status_code=422, content={"error": "; ".join(lines), "detail": jsonable_encoder(errors)})


def create_app(settings: config.Settings | None = None) -> FastAPI:
    """The API; the model, masker and database are loaded once, when the app starts."""
    settings = settings or config.get_settings()
    state: dict[str, Service] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["service"] = load_service(settings)
        yield
        service = state.pop("service")
        service.executor.shutdown(wait=True)
        if service.logger is not None:
            service.logger.close()

    app = FastAPI(title="Intent classifier API", version="1.0", lifespan=lifespan,
                  description=__doc__.split("\n\n")[1])
    app.add_exception_handler(RequestValidationError, validation_handler)
    PredictRequest = request_model(settings.max_text_chars, settings.max_batch)

    @app.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> dict:  # type: ignore[valid-type]
        service = state["service"]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(service.executor, service.predict, body.messages(), body.top_k)

    @app.get("/health")
    async def health() -> dict:
        service = state.get("service")
        logger = service.logger if service else None
        return {"status": "ok" if service else "starting",
                "model_version": service.classifier.version if service else None,
                "backend": service.classifier.backend if service else None,
                "db_logging": logger is not None,
                "log_queue": logger.queue.qsize() if logger else 0}

    @app.get("/model")
    async def model_info() -> dict:
        service = state["service"]
        clf = service.classifier
        return {"version": clf.version, "dataset_fingerprint": clf.fingerprint, "backend": clf.backend,
                "labels": clf.labels, "fallback": {"threshold": clf.fallback.threshold,
                                                   "margin": clf.fallback.margin, "label": clf.fallback.label},
                "max_text_chars": settings.max_text_chars, "max_batch": settings.max_batch,
                "metrics": service.metrics}

    return app


def main(argv: Sequence[str] | None = None) -> int:
    settings = config.get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn worker processes, each loading its own model (default 1)")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1-65535, got {args.port}")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    setup_logging(settings.log_level)
    resolve_model_source(settings)  # fail fast with one clear line instead of a uvicorn startup trace
    import uvicorn

    uvicorn.run("serve:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=settings.log_level.lower(), app_dir=str(Path(__file__).resolve().parent))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
