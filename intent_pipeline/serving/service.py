"""The prediction service: the one path from a raw message to an answer and its log row.

Used by the dashboard (app.py) and the API (serve.py): clean, PII-mask (one masker call per batch),
score (one model call per batch), apply the fallback rule, build the database rows. The loaded
release lives in one `LoadedModel` held by `PredictionService.model`; `swap_model()` / `reload()`
replace it atomically, and work already running keeps the model it started with (each call reads
`self.model` once), so a new release can be hot-loaded without dropping requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import config
from intent_pipeline.artifacts import ModelFiles
from intent_pipeline.errors import PipelineError
from intent_pipeline.files import read_json
from intent_pipeline.predict import FallbackRule, IntentClassifier, Prediction
from intent_pipeline.registry import resolve_model_source
from intent_pipeline.text import clean_text

log = logging.getLogger(__name__)

WARM_UP_TEXT = "warm up: where is my order, Jane? jane@example.com"
# Model calls per batch: texts sorted by length, this many at a time. Every text in a call is padded
# to the longest, so one call per 64 mixed-length chat messages wastes more than the extra calls cost
# (int8 graph, 64 mixed messages: 1.9 CPU ms/message in calls of 16, 2.9 in one call of 64).
SCORE_BATCH_SIZE = 16


@dataclass(frozen=True)
class LoadedModel:
    """One loaded release: the classifier on its backend, where it came from, its headline metrics."""

    classifier: IntentClassifier
    folder: Path
    metrics: dict
    loaded_at: str

    @property
    def version(self) -> str:
        return self.classifier.version

    @property
    def backend(self) -> str:
        return self.classifier.backend

    def describe(self) -> dict:
        """What GET /model answers."""
        clf = self.classifier
        return {"version": clf.version, "dataset_fingerprint": clf.fingerprint, "backend": clf.backend,
                "backend_reason": clf.backend_reason, "labels": clf.labels, "loaded_at": self.loaded_at,
                "fallback": {"threshold": clf.fallback.threshold, "margin": clf.fallback.margin,
                             "label": clf.fallback.label},
                # None: a release from before out-of-scope detection (only the confidence rule applies)
                "out_of_scope": None if clf.detector is None else {
                    "threshold": clf.detector.threshold, "known_off_topic_labels": list(clf.detector.oos_labels)},
                "metrics": self.metrics}


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


def load_model(settings: config.Settings, source: str | None = None, num_threads: int | None = None,
               warm_up: bool = True) -> LoadedModel:
    """Resolve and load a release (default: MODEL_SOURCE) on the backend INFERENCE_BACKEND picks."""
    folder = resolve_model_source(settings, source)
    classifier = IntentClassifier.load(folder, fallback_label=settings.fallback_label,
                                       backend=settings.inference_backend, num_threads=num_threads)
    if warm_up:  # the first forward pass is slow; pay it at load, not on a user's message
        classifier.predict([WARM_UP_TEXT])
    log.info("loaded model %s on %s (%s) from %s", classifier.version, classifier.backend,
             classifier.backend_reason, folder)
    return LoadedModel(classifier, folder, metrics_summary(folder),
                       datetime.now(timezone.utc).isoformat(timespec="seconds"))


def load_masker(spacy_model: str) -> Any:
    """The PII masker (spaCy + Presidio), warmed up."""
    from intent_pipeline import masking  # heavy: only imported when something is really masked

    masker = masking.get_masker(spacy_model)
    masker.mask(WARM_UP_TEXT)
    return masker


def mask_texts(masker: Any, texts: Sequence[str], max_chars: int = 0,
               groups: Sequence[Hashable] | None = None) -> list[tuple[str, bool]]:
    """Clean and PII-mask whole texts in one masker call, then cut each to `max_chars` (0: no limit):
    (masked text, was it cut). Masking first: a cut could split a phone number so no recognizer sees it.
    `groups` keeps a name found in one request from being masked in another (see `mask_batch`)."""
    from intent_pipeline import masking

    return masking.mask_then_truncate(masker, texts, max_chars, groups)


@dataclass
class Masked:
    """A batch after cleaning and PII masking, before scoring."""

    model: LoadedModel  # the release serving when the batch started: it scores the batch, even after a swap
    masked: list[str]  # the only form of the texts that goes further
    truncated: list[bool]  # whether each masked text was cut to max_chars
    started: float  # perf_counter() when masking began: latencies count from there


@dataclass
class Scored:
    """A batch of messages as the service answered it."""

    model: LoadedModel  # the release that answered (it may have been swapped since)
    masked: list[str]  # cleaned + PII-masked texts: the only form that is shown or logged
    predictions: list[Prediction]
    latency_ms: float
    log_rows: list[dict] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)  # whether each masked text was cut to max_chars


@dataclass
class Answer:
    """One message as the app answered it: what the model saw, what it said, and how fast."""

    prediction: Prediction
    masked: str
    truncated: bool
    chars: int  # length of the message as typed
    latency_ms: float
    row: dict  # the database row for it


class PredictionService:
    """clean -> mask -> score -> fallback -> log rows, on the current `model` (swappable)."""

    def __init__(self, settings: config.Settings, model: LoadedModel, masker: Any,
                 num_threads: int | None = None) -> None:
        self.settings = settings
        self.masker = masker
        self.num_threads = num_threads
        self._model = model
        self._swap_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # predict_overlapped's scoring thread, made on first use

    @classmethod
    def load(cls, settings: config.Settings, num_threads: int | None = None) -> "PredictionService":
        return cls(settings, load_model(settings, num_threads=num_threads), load_masker(settings.spacy_model),
                   num_threads)

    @property
    def model(self) -> LoadedModel:
        """The release serving now. Read it once per unit of work: it may be replaced at any moment."""
        return self._model

    def swap_model(self, new: LoadedModel) -> LoadedModel:
        """Serve `new` from the next batch on; returns the replaced model (still valid for work in flight)."""
        with self._swap_lock:
            old, self._model = self._model, new
        log.info("now serving model %s on %s (was %s)", new.version, new.backend, old.version)
        return old

    def reload(self, source: str | None = None) -> LoadedModel:
        """Load a release (default: MODEL_SOURCE, e.g. the registry's new LATEST) and swap it in.

        Loading happens outside the lock and before the swap, so serving never pauses and a release
        that fails to load (PipelineError) leaves the current one serving."""
        new = load_model(self.settings, source, self.num_threads)
        self.swap_model(new)
        return new

    def mask(self, texts: Sequence[str], max_chars: int = 0) -> list[str]:
        return [text for text, _ in mask_texts(self.masker, texts, max_chars)]

    def prepare(self, texts: Sequence[str], max_chars: int = 0, groups: Sequence[Hashable] | None = None) -> Masked:
        """The first half of `predict`: clean and PII-mask a batch (one masker call). The API runs it
        for one micro-batch while the model scores the previous one."""
        model = self.model
        started = time.perf_counter()
        pairs = mask_texts(self.masker, texts, max_chars, groups)
        return Masked(model, [text for text, _ in pairs], [cut for _, cut in pairs], started)

    def score(self, batch: Masked, top_k: int = 3, rule: FallbackRule | None = None, channel: str = "api") -> Scored:
        """The second half of `predict`: one model call on masked texts, the fallback rule, the log rows."""
        model = batch.model
        masked = batch.masked
        predictions = model.classifier.predict(masked, top_k=top_k, fallback=rule, batch_size=SCORE_BATCH_SIZE)
        return self._scored(batch, predictions, channel)

    def _scored(self, batch: Masked, predictions: list[Prediction], channel: str) -> Scored:
        """The answered batch with its log rows; latency counts from when masking began."""
        latency_ms = (time.perf_counter() - batch.started) * 1000
        scored = Scored(batch.model, batch.masked, predictions, latency_ms, truncated=batch.truncated)
        per_message = latency_ms / max(1, len(batch.masked))
        scored.log_rows = [log_row(batch.model, p, m, per_message, channel)
                           for p, m in zip(predictions, batch.masked)]
        return scored

    def predict_overlapped(self, texts: Sequence[str], top_k: int = 3, channel: str = "api",
                           groups: Sequence[Hashable] | None = None) -> Scored:
        """`predict` for a request that has the machine to itself: the model scores each cleaned text
        while the masker is still looking for personal data in it, and that score is kept only where
        the masker then changed nothing (the model saw exactly the text it would have seen); texts
        with masked values are scored again, masked. Cuts a lone message's latency by about 40% on two
        cores, since the model releases the GIL. The early scores stay in this call: nothing of an
        unmasked text is returned or logged."""
        model = self.model
        started = time.perf_counter()
        cleaned = [clean_text(text) for text in texts]
        early = self._overlap_pool().submit(model.classifier.predict, cleaned, top_k=top_k,
                                            batch_size=SCORE_BATCH_SIZE)
        pairs = mask_texts(self.masker, texts, 0, groups)
        masked = [text for text, _ in pairs]
        try:
            predictions = early.result()
        except Exception:  # scored again below, masked, where the error (if any) surfaces as usual
            predictions = [None] * len(texts)
        batch = Masked(model, masked, [cut for _, cut in pairs], started)
        redo = [i for i, (m, c, p) in enumerate(zip(masked, cleaned, predictions)) if m != c or p is None]
        if not redo:
            return self._scored(batch, predictions, channel)
        again = model.classifier.predict([masked[i] for i in redo], top_k=top_k, batch_size=SCORE_BATCH_SIZE)
        for i, prediction in zip(redo, again):
            predictions[i] = prediction
        return self._scored(batch, predictions, channel)

    def _overlap_pool(self) -> ThreadPoolExecutor:
        with self._swap_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="early-score")
            return self._pool

    def predict(self, texts: Sequence[str], top_k: int = 3, rule: FallbackRule | None = None,
                channel: str = "api", max_chars: int = 0, groups: Sequence[Hashable] | None = None) -> Scored:
        """Answer a batch of raw messages (one masker call, one model call) and build their log rows;
        each masked text is cut to `max_chars` (0: no limit) after masking. Texts from different
        requests get different `groups` keys, so masking shares nothing between them."""
        return self.score(self.prepare(texts, max_chars, groups), top_k, rule, channel)

    def answer(self, message: str, rule: FallbackRule | None = None, channel: str = "app",
               max_chars: int | None = None) -> Answer:
        """One message typed into the dashboard: masked whole, cut to `max_chars` (MAX_TEXT_CHARS), answered."""
        started = time.perf_counter()
        limit = self.settings.max_text_chars if max_chars is None else max_chars
        scored = self.predict([message], rule=rule, channel=channel, max_chars=limit)
        truncated = scored.truncated[0]
        latency_ms = (time.perf_counter() - started) * 1000
        row = {**scored.log_rows[0], "latency_ms": latency_ms}
        return Answer(scored.predictions[0], scored.masked[0], truncated, len(message), latency_ms, row)


def log_row(model: LoadedModel, prediction: Prediction, masked: str, latency_ms: float, channel: str) -> dict:
    """The `predictions` table row for one answer (masked text only)."""
    return {**prediction.to_dict(), "text": masked, "model_version": model.version,
            "latency_ms": latency_ms, "channel": channel}
