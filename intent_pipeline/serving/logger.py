"""The API's prediction log: rows go to the database from one background thread, in batches.

Answering never waits for the database. Rows gather for up to `flush_interval_s` (or until
`BATCH_ROWS` are waiting) and go in as one multi-row insert in one transaction, so a busy server
writes a few large transactions instead of one commit per answer (a commit per row cost more CPU
than the HTTP layer). `close()` writes everything still waiting at once, without the interval, so
a graceful stop loses no answered request's row.

Rows are not thrown away lightly either: a failed write is retried with backoff, and while it is
retried the queue fills, `submit()` blocks, and the API's own bounded queue then answers 503
(backpressure) instead of answering without logging. Only a write that keeps failing for
`RETRY_FOR_S` is dropped, counted and reported in /health.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from intent_pipeline import db

log = logging.getLogger(__name__)

QUEUE_ROWS = 10_000
BATCH_ROWS = 256
RETRY_FOR_S = 30.0
SUBMIT_WAIT_S = 5.0
# How long a row may wait for others to share its transaction: short enough that /health and the
# dashboard see answers almost at once, long enough that a busy server commits a few times a second.
FLUSH_INTERVAL_S = 0.2


class PredictionLogger:
    """Batched inserts into `predictions` from a daemon thread; `close()` flushes what is queued."""

    def __init__(self, engine: Any, retry_for_s: float = RETRY_FOR_S, flush_interval_s: float = FLUSH_INTERVAL_S,
                 max_rows: int = QUEUE_ROWS, on_drop: Callable[[int], Any] | None = None) -> None:
        self.engine = engine
        self.on_drop = on_drop  # told how many rows were dropped (the API's metrics)
        self.retry_for_s = retry_for_s
        self.flush_interval_s = flush_interval_s
        self.max_rows = max_rows
        self.written = 0
        self.dropped = 0
        self._rows: deque[Mapping[str, Any]] = deque()
        self._writing = 0  # rows taken by the thread and not yet committed
        self._cond = threading.Condition()
        self._stopping = False
        self._closed = False  # the thread has taken its last rows
        self.thread = threading.Thread(target=self._run, name="prediction-logger", daemon=True)
        self.thread.start()

    def submit(self, rows: Sequence[Mapping[str, Any]], wait_s: float = SUBMIT_WAIT_S) -> None:
        """Queue rows; blocks up to `wait_s` while the database is behind, then drops them (counted)."""
        if not rows:
            return
        deadline = time.monotonic() + wait_s
        with self._cond:
            # A request larger than the whole queue still goes in once the queue is empty.
            while self._rows and len(self._rows) + len(rows) > self.max_rows and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._drop(len(rows), "the log queue stayed full")
                    return
                self._cond.wait(left)
            if self._closed:
                self._drop(len(rows), "the logger was already closed")
                return
            was_empty = not self._rows
            self._rows.extend(rows)
            # Wake the writer only when it has something new to decide: the first row starts its
            # interval, a full batch ends it. Waking it per request costs a thread switch each time.
            if was_empty or len(self._rows) >= BATCH_ROWS:
                self._cond.notify_all()

    def pending(self) -> int:
        """Rows accepted and not yet committed."""
        return len(self._rows) + self._writing

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        if self.on_drop is not None:
            self.on_drop(count)
        log.warning("%d prediction rows not logged (%s); %d so far", count, why, self.dropped)

    def _next_rows(self) -> list[Mapping[str, Any]] | None:
        """Up to BATCH_ROWS rows once the oldest has waited `flush_interval_s` (at once when stopping);
        None when stopped with nothing left."""
        with self._cond:
            while not self._rows and not self._stopping:
                self._cond.wait()
            if not self._rows:
                self._closed = True
                return None
            deadline = time.monotonic() + self.flush_interval_s
            while len(self._rows) < BATCH_ROWS and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            rows = [self._rows.popleft() for _ in range(min(BATCH_ROWS, len(self._rows)))]
            self._writing = len(rows)
            self._cond.notify_all()  # room again for a blocked submit()
            return rows

    def _run(self) -> None:
        while (rows := self._next_rows()) is not None:
            self._write(rows)
            with self._cond:
                self._writing = 0

    def _write(self, rows: list) -> None:
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.1
        while True:
            try:
                db.log_predictions(self.engine, rows)
                self.written += len(rows)
                return
            except Exception as exc:  # a logging failure must never take the API down
                reason = type(exc).__name__  # never the message: it can quote the row (masked text or not)
                if time.monotonic() + delay > deadline:
                    self._drop(len(rows), f"the database kept failing: {reason}")
                    return
                log.warning("could not log %d predictions (%s); retrying in %.1f s", len(rows), reason, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued now (no flush interval; waiting up to `timeout` s), then stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.thread.join(timeout)
        if self.thread.is_alive():
            with self._cond:
                left = len(self._rows)
                self._rows.clear()
            if left:
                self._drop(left, "shutdown before the database caught up")
