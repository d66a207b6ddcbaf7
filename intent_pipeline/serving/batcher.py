"""Dynamic micro-batching: concurrent requests share one mask call and one model call.

Requests (each one or more messages) wait in a bounded queue; one worker thread takes up to
`max_batch` messages at a time and runs them together. Under load it waits up to `max_wait_ms`
(measured from the oldest request's arrival) for more requests to fill the batch; an idle server
never waits: a request arriving after the worker had nothing to do for longer than the window is
run at once. A full queue refuses new work immediately (`QueueFull`, the API's 503), so overload
costs clients a fast retry instead of ever-growing latency and memory; so does a request that,
at the measured cost per message, could not be answered before its deadline anyway.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue has no room for this request: try again shortly."""


class Stopped(Exception):
    """The batcher is shutting down and takes no new work."""


@dataclass
class Job:
    payload: Any
    size: int  # messages in this request
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)
    abandoned: bool = False  # the request timed out or the client left: skip it if not started


# Runs one batch: the jobs' payloads in, one result per payload out (same order).
BatchRunner = Callable[[Sequence[Any]], Sequence[Any]]


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile (timeout, client gone)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@dataclass
class BatcherStats:
    batches: int = 0
    messages: int = 0
    refused: int = 0
    abandoned: int = 0
    largest: int = 0

    def as_dict(self) -> dict:
        mean = self.messages / self.batches if self.batches else 0.0
        return {"batches": self.batches, "messages": self.messages, "mean_batch": round(mean, 2),
                "largest_batch": self.largest, "refused": self.refused, "abandoned": self.abandoned}


class MicroBatcher:
    """A bounded request queue drained by one worker thread running `run_batch` on micro-batches."""

    def __init__(self, run_batch: BatchRunner, max_batch: int, max_wait_ms: float, max_queue: int) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.high_water = max(1, (max_queue * 3) // 4)
        self.stats = BatcherStats()
        self._jobs: deque[Job] = deque()
        self._queued = 0  # messages waiting (not yet taken by the worker)
        self._cond = threading.Condition()
        self._stopping = False
        self._last_busy = 0.0  # when the worker last finished a batch of more than one request
        self._seconds_per_message = 0.0  # moving average of recent batches' cost (0 until measured)
        self._thread = threading.Thread(target=self._work, name="micro-batcher", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._queued

    def below_high_water(self) -> bool:
        return self._queued < self.high_water and not self._stopping

    async def submit(self, payload: Any, size: int, timeout_s: float) -> Any:
        """Queue one request and wait for its result. QueueFull at once when there is no room, or when
        the queue ahead would take longer than `timeout_s` at the recent cost per message;
        asyncio.TimeoutError after `timeout_s` (the job is then skipped if it has not started)."""
        loop = asyncio.get_running_loop()
        job = Job(payload, size, loop, loop.create_future())
        with self._cond:
            if self._stopping:
                raise Stopped()
            expected_wait = (self._queued + size) * self._seconds_per_message
            if self._queued + size > self.max_queue or expected_wait > timeout_s:
                self.stats.refused += 1
                raise QueueFull()
            self._jobs.append(job)
            self._queued += size
            self._cond.notify()
        try:
            return await asyncio.wait_for(job.future, timeout_s)
        except BaseException:  # timeout, or the request task was cancelled (client disconnected)
            job.abandoned = True
            raise

    def _take(self, batch: list[Job], count: int) -> int:
        """Move queued jobs into `batch` while they fit in max_batch messages; returns the new count."""
        while self._jobs and (not batch or count + self._jobs[0].size <= self.max_batch):
            job = self._jobs.popleft()
            self._queued -= job.size
            if job.abandoned:
                self.stats.abandoned += 1
                continue
            batch.append(job)
            count += job.size
        return count

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._jobs and not self._stopping:
                self._cond.wait()
            if not self._jobs:
                return None
            batch: list[Job] = []
            count = self._take(batch, 0)
            # Wait for more only while requests keep coming (the last batches were shared); an idle
            # server answers a lone request at once. The window counts from the oldest request.
            under_load = time.monotonic() - self._last_busy < max(self.max_wait * 4, 0.05)
            if batch and under_load and self.max_wait > 0:
                deadline = batch[0].enqueued + self.max_wait
                while count < self.max_batch and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                    count = self._take(batch, count)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if not batch:
                continue
            results: Sequence[Any] = ()
            error: BaseException | None = None
            started = time.monotonic()
            try:
                results = self.run_batch([job.payload for job in batch])
            except Exception as exc:  # handed to every request of the batch; the worker lives on
                log.exception("a batch of %d requests failed", len(batch))
                error = exc
            size = sum(job.size for job in batch)
            cost = (time.monotonic() - started) / size
            self._seconds_per_message = cost if not self.stats.batches else 0.8 * self._seconds_per_message + 0.2 * cost
            self.stats.batches += 1
            self.stats.messages += size
            self.stats.largest = max(self.stats.largest, size)
            if len(batch) > 1:
                self._last_busy = time.monotonic()
            for i, job in enumerate(batch):
                try:
                    job.loop.call_soon_threadsafe(_settle, job.future, None if error else results[i], error)
                except RuntimeError:  # the request's event loop is closed: nobody is waiting any more
                    pass

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the worker (requests arriving meanwhile get Stopped)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
