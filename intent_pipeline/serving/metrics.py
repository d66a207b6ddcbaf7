"""Prometheus metrics for the API: what GET /metrics answers, in the text exposition format.

What a model server's operators scrape (Triton, TorchServe and BentoML all serve /metrics): requests
by route and status code, their latency, messages per micro-batch, answers by intent and outcome (a
shift in the intent mix or in the fallback rate shows drift at a glance), the queue depth, prediction
log rows that could not be written, and which release serves. Labels are routes, status codes, intent
labels and outcomes only: no message text, masked or not, ever reaches a metric.

With several worker processes (`serve.py --workers N`) each process writes its values to files in
one folder (prometheus_client's multiprocess mode: server.py sets PROMETHEUS_MULTIPROC_DIR for the
workers), so whichever worker answers a scrape reports the totals of all of them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

from intent_pipeline.predict import Prediction
from intent_pipeline.serving.limits import ASGIApp, Message, Receive, Scope, Send

PREFIX = "intent_api"
# Paths outside the API's own routes share one label, so a scanner probing random URLs cannot grow
# the number of series without bound.
OTHER_ROUTE = "other"
ANSWERED = "intent"  # the outcome of an answer the fallback rule left alone
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ApiMetrics:
    """The API's metrics in a registry of their own (one per app, so apps in one process stay apart)."""

    def __init__(self, multiprocess_dir: str = "") -> None:
        self.routes: frozenset[str] = frozenset()  # the app's own paths, set once its routes are defined
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(f"{PREFIX}_requests", "HTTP requests answered, by route and status code",
                                ["route", "code"], registry=r)
        self.latency = Histogram(f"{PREFIX}_request_duration_seconds", "Time from request to the end of the answer",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.messages = Counter(f"{PREFIX}_messages", "Messages answered (a request may carry several)", registry=r)
        self.batch_size = Histogram(f"{PREFIX}_batch_messages", "Messages per micro-batch (one mask and one model call)",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.answers = Counter(f"{PREFIX}_answers", "Answers by the model's top intent and outcome "
                               f"({ANSWERED!r}, or the fallback reason: 'unsure', 'out_of_scope')",
                               ["intent", "outcome"], registry=r)
        self.queued = Gauge(f"{PREFIX}_queued_messages", "Messages waiting for the micro-batcher",
                            multiprocess_mode="livesum", registry=r)
        self.log_rows_dropped = Counter(f"{PREFIX}_log_rows_dropped", "Prediction log rows that could not be written",
                                        registry=r)
        self.model = Gauge(f"{PREFIX}_model_info", "The release serving (1), by version and backend",
                           ["version", "backend"], multiprocess_mode="liveall", registry=r)
        self._serving: tuple[str, str] | None = None

    def route(self, path: str) -> str:
        return path if path in self.routes else OTHER_ROUTE

    def observe_batch(self, predictions: Sequence[Prediction]) -> None:
        """One answered micro-batch: its size, and each answer's intent and outcome."""
        self.messages.inc(len(predictions))
        self.batch_size.observe(len(predictions))
        for prediction in predictions:
            self.answers.labels(prediction.top_intent, prediction.fallback_reason or ANSWERED).inc()

    def serving(self, version: str, backend: str) -> None:
        """Record the release now serving (at start and after each hot reload)."""
        if self._serving is not None:
            # 0 first: in multiprocess mode the workers' files keep a removed series, at its last value.
            self.model.labels(*self._serving).set(0)
            self.model.remove(*self._serving)
        self._serving = (version, backend)
        self.model.labels(version, backend).set(1)

    def exposition(self) -> tuple[bytes, str]:
        """The scrape body and its content type: this process's registry, or every worker's values."""
        if not self.multiprocess_dir:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=self.multiprocess_dir)
        return generate_latest(merged), CONTENT_TYPE_LATEST

    def process_exiting(self, pid: int) -> None:
        """Drop this worker's live gauges (queue depth, model) from the shared folder as it stops."""
        if self.multiprocess_dir:
            multiprocess.mark_process_dead(pid, self.multiprocess_dir)


class RequestMetrics:
    """ASGI middleware counting every HTTP answer (401s and 413s from the limits behind it included)
    by route and status code, and timing it until its last body chunk is sent."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it starts an answer

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            route = self.metrics.route(scope.get("path", ""))
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
