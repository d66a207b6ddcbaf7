"""Dynamic micro-batching: concurrent requests share one mask call and one model call.

Requests (each one or more messages) wait in a bounded queue; one worker thread takes up to
`max_batch` messages at a time and runs them together. Under load it waits up to `max_wait_ms`
(measured from the oldest request's arrival) for more requests to fill the batch; an idle server
never waits: a request arriving after the worker had nothing to do for longer than the window is
run at once. A full queue refuses new work immediately (`QueueFull`, the API's 503), so overload
costs clients a fast retry instead of ever-growing latency and memory; so does a request that,
at the measured cost per message, could not be answered before its deadline anyway.

With a second stage (`finish`), batches flow through two threads like an assembly line: the first
runs `run_batch` (the API: PII masking, Python-bound) on batch N+1 while the second runs `finish`
(the API: the model, which releases the GIL) on batch N, so both cores stay busy. The first thread
takes a new batch only once the second has picked up the last one, so at most two batches are in
flight and requests that arrive meanwhile join the next batch instead of waiting behind a third.
When the second stage is idle, the first takes only half of what is queued, so the two stages
overlap even when all the work arrived at once (closed-loop clients answered together return together).
A lone request that finds the second stage idle has nothing to overlap with across batches; with
`alone` set, it runs that instead (the API: masking and scoring of the one request overlapped).
"""

from __future__ import annotations

import asyncio
import logging
import queue
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


# Runs one batch: the jobs' payloads in, one result per payload out (same order); with a second
# stage, whatever that stage takes.
BatchRunner = Callable[[Sequence[Any]], Any]
# The optional second stage: the first stage's output in, one result per payload out (same order).
BatchFinisher = Callable[[Any], Sequence[Any]]


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

    def __init__(self, run_batch: BatchRunner, max_batch: int, max_wait_ms: float, max_queue: int,
                 high_water: float = 0.75, finish: BatchFinisher | None = None,
                 alone: BatchRunner | None = None) -> None:
        self.run_batch = run_batch
        self.finish = finish
        # Runs a lone request while the second stage is idle (both stages at once, overlapped inside);
        # the same contract as run_batch without a second stage: one result per payload.
        self.alone = alone
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        # /ready turns false at this many queued messages (READY_HIGH_WATER of max_queue), before 503s start.
        self.high_water = max(1, int(max_queue * high_water))
        self.stats = BatcherStats()
        self._jobs: deque[Job] = deque()
        self._queued = 0  # messages waiting (not yet taken by the worker)
        self._cond = threading.Condition()
        self._stopping = False
        self._last_busy = 0.0  # when the worker last finished a batch of more than one request
        self._seconds_per_message = 0.0  # moving average of recent batches' cost (0 until measured)
        self._stats_lock = threading.Lock()
        # The second stage's input (a batch the first stage finished) and the first stage's permit to
        # start another batch, given back when the second stage picks one up.
        self._handoff: queue.SimpleQueue = queue.SimpleQueue()
        self._slot = threading.Semaphore(1)
        self._finishing = False  # the second stage is running a batch
        self._threads = [threading.Thread(target=self._work, name="micro-batcher", daemon=True)]
        if finish is not None:
            self._threads.append(threading.Thread(target=self._finish_work, name="micro-batcher-finish", daemon=True))
        for thread in self._threads:
            thread.start()

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

    def _take(self, batch: list[Job], count: int, limit: int = 0) -> int:
        """Move queued jobs into `batch` while they fit in `limit` (default max_batch) messages; returns
        the new count."""
        limit = limit or self.max_batch
        while self._jobs and (not batch or count + self._jobs[0].size <= limit):
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
            if self.finish is not None and not self._finishing and self._queued > 1:
                # The second stage is idle, so nothing overlaps this batch's masking: take half of
                # the queue and start at once. The model then scores that half while the rest is
                # masked. Clients answered together come back together, so without this a wave of
                # 32 went through mask-all-then-score-all with one stage always idle (32 clients:
                # every batch held all 32 requests).
                self._take(batch, 0, limit=min(self.max_batch, (self._queued + 1) // 2))
                return batch
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
            if self.finish is not None:
                self._slot.acquire()  # the second stage has picked up the previous batch
            batch = self._next_batch()
            if batch is None:
                break
            if not batch:
                self._release_slot()
                continue
            if self.alone is not None and self._is_lone(batch):
                self._run_last(batch, self.alone, [batch[0].payload])
                self._release_slot()
                continue
            started = time.monotonic()
            try:
                out = self.run_batch([job.payload for job in batch])
            except Exception as exc:  # handed to every request of the batch; the worker lives on
                log.exception("a batch of %d requests failed", len(batch))
                self._deliver(batch, time.monotonic() - started, (), exc)
                self._release_slot()
                continue
            if self.finish is None:
                self._deliver(batch, time.monotonic() - started, out, None)
            elif self._is_lone(batch):
                # Nothing to overlap with, so this thread finishes it and the request saves a
                # thread hand-off (sequential clients).
                self._run_finish(batch, time.monotonic() - started, out)
                self._release_slot()
            else:
                self._handoff.put((batch, time.monotonic() - started, out))
        if self.finish is not None:
            self._handoff.put(None)

    def _is_lone(self, batch: list[Job]) -> bool:
        """One request, the second stage idle and nothing else queued: no other work to overlap."""
        return len(batch) == 1 and not self._finishing and not self._jobs

    def _release_slot(self) -> None:
        if self.finish is not None:
            self._slot.release()

    def _finish_work(self) -> None:
        assert self.finish is not None
        while (item := self._handoff.get()) is not None:
            self._finishing = True  # set before the first stage may take another batch
            self._slot.release()  # the first stage may start the next batch while this one runs
            try:
                self._run_finish(*item)
            finally:
                self._finishing = False

    def _run_finish(self, batch: list[Job], first_stage_s: float, prepared: Any) -> None:
        assert self.finish is not None
        self._run_last(batch, self.finish, prepared, first_stage_s)

    def _run_last(self, batch: list[Job], step: Callable[[Any], Sequence[Any]], data: Any,
                  earlier_s: float = 0.0) -> None:
        """Run the step that yields the answers (`finish`, or `alone`) and hand each request its own."""
        started = time.monotonic()
        results: Sequence[Any] = ()
        error: BaseException | None = None
        try:
            results = step(data)
        except Exception as exc:  # handed to every request of the batch; the worker lives on
            log.exception("a batch of %d requests failed", len(batch))
            error = exc
        self._deliver(batch, earlier_s + time.monotonic() - started, results, error)

    def _deliver(self, batch: list[Job], busy_s: float, results: Sequence[Any], error: BaseException | None) -> None:
        """Record the batch's cost and hand each request its result (or the batch's error)."""
        size = sum(job.size for job in batch)
        cost = busy_s / size
        with self._stats_lock:
            first = not self.stats.batches
            self._seconds_per_message = cost if first else 0.8 * self._seconds_per_message + 0.2 * cost
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
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
