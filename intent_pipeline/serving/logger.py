"""The API's prediction log: rows go to the database from one background thread, in batches.

Answering never waits for the database, but rows are not thrown away lightly either: a failed
write is retried with backoff, and while it is retried the queue fills, `submit()` blocks, and the
API's own bounded queue then answers 503 (backpressure) instead of answering without logging.
Only a write that keeps failing for `RETRY_FOR_S` is dropped, counted and reported in /health.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from intent_pipeline import db

log = logging.getLogger(__name__)

QUEUE_ROWS = 10_000
BATCH_ROWS = 256
RETRY_FOR_S = 30.0
SUBMIT_WAIT_S = 5.0
_STOP = object()


class PredictionLogger:
    """Batched inserts into `predictions` from a daemon thread; `close()` flushes what is queued."""

    def __init__(self, engine: Any, retry_for_s: float = RETRY_FOR_S) -> None:
        self.engine = engine
        self.retry_for_s = retry_for_s
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_ROWS)
        self.written = 0
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, name="prediction-logger", daemon=True)
        self.thread.start()

    def submit(self, rows: Sequence[Mapping[str, Any]], wait_s: float = SUBMIT_WAIT_S) -> None:
        """Queue rows; blocks up to `wait_s` in all while the database is behind, then drops (counted)."""
        deadline = time.monotonic() + wait_s
        for i, row in enumerate(rows):
            try:
                self.queue.put(row, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                self._drop(len(rows) - i, "the log queue stayed full")
                return

    def pending(self) -> int:
        return self.queue.qsize()

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        log.warning("%d prediction rows not logged (%s); %d so far", count, why, self.dropped)

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self.queue.get()]
            while len(batch) < BATCH_ROWS:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(row is _STOP for row in batch)
            rows = [row for row in batch if row is not _STOP]
            if rows:
                self._write(rows)

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
        """Write what is queued (waiting up to `timeout` s), then stop the thread."""
        try:
            self.queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("prediction log queue still full at shutdown")
        self.thread.join(timeout)
        left = self.queue.qsize()
        if self.thread.is_alive() or left:
            self._drop(left, "shutdown before the database caught up")
