"""The prediction API (FastAPI): routes, validation, micro-batched scoring, backpressure, logging.

POST /predict {"text": ...} or {"texts": [...]} (+ "top_k") -> per message the intent, confidence,
top-k, fallback flag and reason ("unsure" / "out_of_scope"), out-of-scope score and the PII-masked
text. Requests are queued and scored in micro-batches by
one worker thread (`batcher.MicroBatcher`); a full queue answers 503 + Retry-After at once, a
request that waits longer than REQUEST_TIMEOUT_S answers 504. GET /health: the process is alive;
GET /ready: the model is loaded and the queue is below its high-water mark (503 otherwise);
GET /model: which release and backend serve, and why; GET /metrics: Prometheus metrics (requests,
latency, batch sizes, answers by intent and outcome, queue depth). With API_TOKEN set, every route but
/health needs `Authorization: Bearer <API_TOKEN>`; bodies over MAX_BODY_BYTES get 413 before parsing.
"""

# No `from __future__ import annotations`: FastAPI must resolve the body model built in create_app().
import asyncio
import functools
import gc
import json
import logging
import os
import time
import traceback
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

import config
from intent_pipeline import db
from intent_pipeline.errors import PipelineError
from intent_pipeline.reload import ReleasePoller
from intent_pipeline.serving.batcher import MicroBatcher, QueueFull, Stopped
from intent_pipeline.serving.limits import RequestLimits
from intent_pipeline.serving.logger import PredictionLogger
from intent_pipeline.serving.metrics import ApiMetrics, RequestMetrics
from intent_pipeline.serving.service import Masked, PredictionService, Scored, load_model
from intent_pipeline.text import is_blank

log = logging.getLogger(__name__)

CHANNEL = "api"
# top_k above the number of labels is clipped (the answer has every label); beyond this it is a client bug.
MAX_TOP_K = 100
RETRY_AFTER_S = "1"
# Parts of a pydantic error that can quote the submitted body; never sent back.
ECHOING_ERROR_KEYS = ("input", "ctx", "url")


class TopK(BaseModel):
    intent: str
    confidence: float


class PredictionOut(BaseModel):
    text: str = Field(description="the message after cleaning and PII masking")
    intent: str = Field(description="the answer: the top intent, or the fallback label when unsure")
    top_intent: str
    confidence: float
    is_fallback: bool
    fallback_reason: str | None = Field(None, description=(
        'why the fallback label answered: "unsure" (low confidence, or the top two intents too close) or '
        '"out_of_scope" (off-topic for this model); null when the intent is answered'))
    oos_score: float | None = Field(None, description=(
        "out-of-scope score (distance from every intent; higher is more off-topic); null for models without "
        "an out-of-scope detector"))
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
                if is_blank(message):
                    raise ValueError(f"{where} is empty")
                if len(message) > max_chars:
                    raise ValueError(f"{where} is longer than {max_chars} characters ({len(message)})")
            return self

        def messages(self) -> list[str]:
            return [self.text] if self.texts is None else list(self.texts)

    return PredictRequest


def validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with one readable line ('body.texts: ...') and FastAPI's detail list minus anything echoing input."""
    errors = [{k: v for k, v in err.items() if k not in ECHOING_ERROR_KEYS} for err in exc.errors()]
    lines = []
    for err in errors:
        where = ".".join(str(part) for part in err.get("loc", ()) if part != "body") or "body"
        lines.append(f"{where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return JSONResponse(status_code=422, content={"error": "; ".join(lines), "detail": jsonable_encoder(errors)})


def error_handler(request: Request, exc: Exception) -> JSONResponse:
    # The message may quote a message's text: log where it failed, never what it said.
    log.error("unhandled %s in %s %s\n%s", type(exc).__name__, request.method, request.url.path,
              "".join(traceback.format_tb(exc.__traceback__)))
    return JSONResponse(status_code=500, content={"error": "internal error"})


def busy(reason: str, status: int = 503) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": reason}, headers={"Retry-After": RETRY_AFTER_S})


@dataclass(frozen=True)
class Sinks:
    """Where an answered micro-batch goes besides its clients: the prediction log (None: not logging)
    and the metrics."""

    logger: PredictionLogger | None
    metrics: ApiMetrics


@dataclass
class Runtime:
    """What the lifespan loads: the service, its batcher, where answers are recorded, and the poller
    that hot-reloads a new serving release into the service."""

    service: PredictionService
    batcher: MicroBatcher
    sinks: Sinks
    poller: ReleasePoller

    @property
    def logger(self) -> PredictionLogger | None:
        return self.sinks.logger


Payload = tuple[list[str], int]  # one request: its messages and its top_k


@dataclass
class MaskedRequests:
    """A micro-batch between the two stages: the requests and their masked texts."""

    payloads: Sequence[Payload]
    masked: Masked


def mask_requests(service: PredictionService, payloads: Sequence[Payload]) -> MaskedRequests:
    """Stage 1: clean and mask every message of a micro-batch in one masker call (one group per request)."""
    texts = [text for messages, _ in payloads for text in messages]
    requests = [i for i, (messages, _) in enumerate(payloads) for _ in messages]
    return MaskedRequests(payloads, service.prepare(texts, groups=requests))


def answer_requests(service: PredictionService, sinks: Sinks, batch: MaskedRequests) -> list[dict]:
    """Stage 2: score the masked micro-batch in one model call, queue its log rows, one body per request."""
    payloads = batch.payloads
    scored = service.score(batch.masked, top_k=max(top_k for _, top_k in payloads), channel=CHANNEL)
    return respond(sinks, payloads, scored)


def answer_alone(service: PredictionService, sinks: Sinks, payloads: Sequence[Payload]) -> list[dict]:
    """Both stages for a lone request on an idle server, overlapped (`PredictionService.predict_overlapped`)."""
    (messages, top_k), = payloads
    return respond(sinks, payloads, service.predict_overlapped(messages, top_k=top_k, channel=CHANNEL,
                                                               groups=[0] * len(messages)))


def respond(sinks: Sinks, payloads: Sequence[Payload], scored: Scored) -> list[dict]:
    """Queue the log rows of a scored micro-batch and count its answers; one response body per request."""
    if sinks.logger is not None:
        sinks.logger.submit(scored.log_rows)
    sinks.metrics.observe_batch(scored.predictions)
    out, start = [], 0
    for messages, top_k in payloads:
        end = start + len(messages)
        predictions = []
        for pred, masked in zip(scored.predictions[start:end], scored.masked[start:end]):
            predictions.append({**pred.to_dict(top_k), "text": masked})
        start = end
        out.append({"model_version": scored.model.version, "backend": scored.model.backend,
                    "predictions": predictions})
    return out


def run_batch(service: PredictionService, sinks: Sinks, payloads: Sequence[Payload]) -> list[dict]:
    """Both stages in one call: score every request of a micro-batch; one response body per request."""
    return answer_requests(service, sinks, mask_requests(service, payloads))


def open_logger(settings: config.Settings, metrics: ApiMetrics) -> PredictionLogger | None:
    """The database logger; None (with a warning) when the database cannot be reached.

    A reachable database without the current schema is a deployment error: SchemaError propagates."""
    try:
        return PredictionLogger(db.open_existing(settings.database_url), on_drop=metrics.log_rows_dropped.inc)
    except db.SchemaError:
        raise
    except PipelineError as exc:
        log.warning("predictions will not be logged: %s", exc)
    except Exception as exc:  # e.g. OSError for an unwritable SQLite folder: answering matters more than logging
        log.warning("predictions will not be logged: the database %s cannot be opened (%s)",
                    config.mask_url(settings.database_url), type(exc).__name__)
    return None


def freeze_loaded_objects() -> None:
    """Take everything loaded so far (model, masker, spaCy's vocabulary: millions of long-lived objects)
    out of the cyclic garbage collector's sight. Each full collection otherwise walked them all while
    holding the GIL and stalled every request for up to 300 ms: the 32-client p99 of
    benchmarks/loadtest_api.py went from 344 ms to 112 ms with this alone."""
    gc.collect()
    gc.freeze()


def swap_release(settings: config.Settings, service: PredictionService, folder: Path,
                 metrics: ApiMetrics | None = None) -> None:
    """The hot reload: load `folder`, serve it, then let the collector free the old release's cycles
    (one full collection, off the request path) before freezing what is loaded again."""
    new = load_model(settings, source=str(folder), num_threads=service.num_threads)
    service.swap_model(new)
    if metrics is not None:
        metrics.serving(new.version, new.backend)
    gc.unfreeze()
    freeze_loaded_objects()


def start_runtime(settings: config.Settings, metrics: ApiMetrics) -> Runtime:
    sinks = Sinks(open_logger(settings, metrics), metrics)
    service = PredictionService.load(settings, num_threads=settings.inference_threads or None)
    # Two stages: masking (Python, holds the GIL) of one batch overlaps the model scoring the previous one.
    batcher = MicroBatcher(functools.partial(mask_requests, service), settings.max_batch, settings.batch_wait_ms,
                           settings.max_queue, settings.ready_high_water,
                           finish=functools.partial(answer_requests, service, sinks),
                           alone=functools.partial(answer_alone, service, sinks))
    poller = ReleasePoller(settings, lambda: service.model.folder,
                           functools.partial(swap_release, settings, service, metrics=metrics)).start()
    freeze_loaded_objects()
    model = service.model
    metrics.serving(model.version, model.backend)
    log.info("API ready (pid %d): model %s on %s (%s)", os.getpid(), model.version, model.backend,
             model.classifier.backend_reason)
    return Runtime(service, batcher, sinks, poller)


def create_app(settings: config.Settings | None = None) -> FastAPI:
    """The API; the model, masker and database are loaded once, when the app starts."""
    settings = settings or config.get_settings()
    state: dict[str, Any] = {}
    metrics = ApiMetrics(settings.metrics_multiproc_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["runtime"] = start_runtime(settings, metrics)
        yield
        runtime: Runtime = state.pop("runtime")
        state["stopping"] = True
        runtime.poller.stop()
        runtime.batcher.close()
        if runtime.logger is not None:
            runtime.logger.close()
        metrics.process_exiting(os.getpid())

    app = FastAPI(title="Intent classifier API", version="1.1", lifespan=lifespan,
                  description=__doc__.split("\n\n")[1])
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(Exception, error_handler)
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_body_bytes, api_token=settings.api_token)
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: it counts the 401s and 413s too
    PredictRequest = request_model(settings.max_text_chars, settings.max_batch)
    app.state.runtime_state = state  # for hooks such as a hot reload: state["runtime"].service.reload()

    @app.post("/predict", response_model=PredictResponse,
              responses={503: {"description": "queue full or not ready: retry after Retry-After seconds"},
                         504: {"description": "no answer within REQUEST_TIMEOUT_S"},
                         413: {"description": "body larger than MAX_BODY_BYTES"}})
    async def predict(body: PredictRequest) -> Any:  # type: ignore[valid-type]
        runtime: Runtime | None = state.get("runtime")
        if runtime is None:
            return busy("not ready: the model is not loaded")
        messages = body.messages()
        started = time.perf_counter()
        try:
            result = await runtime.batcher.submit((messages, body.top_k), len(messages), settings.request_timeout_s)
        except QueueFull:
            return busy("server busy: the request queue is full, retry shortly")
        except Stopped:
            return busy("server shutting down")
        except asyncio.TimeoutError:
            return busy(f"no answer within {settings.request_timeout_s:g} s (REQUEST_TIMEOUT_S)", status=504)
        finally:
            metrics.queued.set(runtime.batcher.queued)
        body = {**result, "latency_ms": (time.perf_counter() - started) * 1000}
        # Serialised here rather than through response_model (still the documented schema): the body
        # is built by answer_requests in that shape, and validating it again cost CPU per request.
        return Response(json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8"),
                        media_type="application/json")

    @app.get("/health")
    async def health() -> dict:
        runtime: Runtime | None = state.get("runtime")
        logger = runtime.logger if runtime else None
        return {"status": "ok", "pid": os.getpid(),
                "model_version": runtime.service.model.version if runtime else None,
                "db_logging": logger is not None,
                "log_queue": logger.pending() if logger else 0,
                "log_written": logger.written if logger else 0,
                "log_dropped": logger.dropped if logger else 0}

    @app.get("/ready")
    async def ready() -> Any:
        runtime: Runtime | None = state.get("runtime")
        if runtime is None:
            return JSONResponse(status_code=503, content={"ready": False, "reason": "model not loaded"},
                                headers={"Retry-After": RETRY_AFTER_S})
        batcher = runtime.batcher
        body = {"ready": batcher.below_high_water(), "queued": batcher.queued, "high_water": batcher.high_water,
                "max_queue": batcher.max_queue, "batches": batcher.stats.as_dict()}
        if not body["ready"]:
            body["reason"] = "queue above its high-water mark"
            return JSONResponse(status_code=503, content=body, headers={"Retry-After": RETRY_AFTER_S})
        return body

    @app.get("/model")
    async def model_info() -> dict:
        runtime: Runtime = state["runtime"]
        model = runtime.service.model  # once: every field describes the same release, even across a swap
        serving = {"release": model.folder.name, "folder": str(model.folder), "loaded_at": model.loaded_at,
                   "reloads": runtime.poller.swaps, "reload_interval_s": runtime.poller.interval_s}
        return {**model.describe(), "serving": serving, "mlflow": model.classifier.info.get("mlflow") or {},
                "max_text_chars": settings.max_text_chars,
                "max_batch": settings.max_batch, "batch_wait_ms": settings.batch_wait_ms,
                "max_queue": settings.max_queue, "request_timeout_s": settings.request_timeout_s}

    @app.get("/metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def prometheus_metrics() -> Response:
        runtime: Runtime | None = state.get("runtime")
        if runtime is not None:
            metrics.queued.set(runtime.batcher.queued)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    metrics.routes = frozenset(route.path for route in app.routes)
    return app
