"""The micro-batcher on its own: batching under load, no wait when idle, bounded queue, deadlines.

The batch runner here is a plain function with a known cost (sleep) so batch sizes and timings are
deterministic; the batcher's threads, queue and asyncio hand-off are the real ones.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from intent_pipeline.serving.batcher import MicroBatcher, QueueFull, Stopped


class Runner:
    """Doubles every payload; records batch sizes; can be held until released."""

    def __init__(self, cost_s: float = 0.0) -> None:
        self.cost_s = cost_s
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def __call__(self, payloads):
        self.started.set()
        self.gate.wait(10)
        time.sleep(self.cost_s)
        self.batches.append(list(payloads))
        return [p * 2 for p in payloads]


async def _submit_all(batcher: MicroBatcher, payloads, timeout_s: float = 10.0):
    return await asyncio.gather(*(batcher.submit(p, 1, timeout_s) for p in payloads), return_exceptions=True)


def test_an_idle_request_does_not_wait_for_the_window() -> None:
    batcher = MicroBatcher(Runner(), max_batch=8, max_wait_ms=2000, max_queue=16)
    try:
        async def one() -> float:
            started = time.perf_counter()
            assert await batcher.submit(21, 1, 10) == 42
            return time.perf_counter() - started

        assert asyncio.run(one()) < 0.5  # a 2 s window would show
        assert asyncio.run(one()) < 0.5  # and again after the first batch
    finally:
        batcher.close()


def test_concurrent_requests_share_batches_up_to_max_batch() -> None:
    runner = Runner(cost_s=0.05)
    batcher = MicroBatcher(runner, max_batch=4, max_wait_ms=20, max_queue=64)
    try:
        results = asyncio.run(_submit_all(batcher, list(range(12))))
    finally:
        batcher.close()
    assert results == [p * 2 for p in range(12)]  # every request gets its own answer
    sizes = [len(b) for b in runner.batches]
    assert sum(sizes) == 12 and max(sizes) == 4 and len(sizes) <= 4
    assert batcher.stats.as_dict()["largest_batch"] == 4


def test_under_load_the_window_fills_batches() -> None:
    """Once requests overlap, requests trickling in 5 ms apart are gathered for up to the window."""
    runner = Runner(cost_s=0.001)
    batcher = MicroBatcher(runner, max_batch=64, max_wait_ms=40, max_queue=64)

    async def burst_then_trickle() -> list:
        answers = await asyncio.gather(*(batcher.submit(p, 1, 10) for p in range(5)))  # overlapping: load
        tasks = []
        for p in range(100, 110):
            tasks.append(asyncio.create_task(batcher.submit(p, 1, 10)))
            await asyncio.sleep(0.005)
        return answers + await asyncio.gather(*tasks)

    try:
        assert asyncio.run(burst_then_trickle()) == [p * 2 for p in [*range(5), *range(100, 110)]]
    finally:
        batcher.close()
    trickled = [b for b in runner.batches if b[0] >= 100]
    # Without the window each would run alone (scoring takes 1 ms, arrivals are 5 ms apart).
    assert len(trickled) <= 4, runner.batches


def test_full_queue_refuses_at_once() -> None:
    runner = Runner()
    runner.gate.clear()  # the worker holds its first batch until released
    batcher = MicroBatcher(runner, max_batch=1, max_wait_ms=0, max_queue=2)

    async def overload():
        first = asyncio.create_task(batcher.submit(0, 1, 10))
        await asyncio.sleep(0)
        assert await asyncio.to_thread(runner.started.wait, 5)  # the worker is busy with request 0
        queued = [asyncio.create_task(batcher.submit(p, 1, 10)) for p in (1, 2)]
        await asyncio.sleep(0.01)
        assert not batcher.below_high_water()
        started = time.perf_counter()
        with pytest.raises(QueueFull):
            await batcher.submit(3, 1, 10)
        refused_in = time.perf_counter() - started
        with pytest.raises(QueueFull):
            await batcher.submit(4, 2, 10)  # a 2-message request does not fit either
        runner.gate.set()
        return refused_in, await asyncio.gather(first, *queued)

    try:
        refused_in, answers = asyncio.run(overload())
    finally:
        runner.gate.set()
        batcher.close()
    assert refused_in < 0.05 and answers == [0, 2, 4]
    assert batcher.stats.refused == 2


def test_a_request_that_could_not_meet_its_deadline_is_refused_at_once() -> None:
    runner = Runner(cost_s=0.1)  # 100 ms per single-message batch
    batcher = MicroBatcher(runner, max_batch=1, max_wait_ms=0, max_queue=64)

    async def run():
        assert await batcher.submit(1, 1, 10) == 2  # measures the cost per message
        started = time.perf_counter()
        with pytest.raises(QueueFull):
            await batcher.submit(2, 5, 0.3)  # 5 messages x 100 ms > 300 ms deadline
        refused_in = time.perf_counter() - started
        return refused_in, await batcher.submit(3, 1, 1.0)  # 100 ms fits in 1 s

    try:
        refused_in, answer = asyncio.run(run())
    finally:
        batcher.close()
    assert refused_in < 0.05 and answer == 6


def test_a_request_past_its_deadline_times_out_and_is_skipped() -> None:
    runner = Runner()
    runner.gate.clear()
    batcher = MicroBatcher(runner, max_batch=1, max_wait_ms=0, max_queue=8)

    async def late():
        first = asyncio.create_task(batcher.submit(0, 1, 10))
        assert await asyncio.to_thread(runner.started.wait, 5)
        with pytest.raises(asyncio.TimeoutError):
            await batcher.submit(1, 1, 0.05)  # waits behind the held batch
        runner.gate.set()
        return await first

    try:
        assert asyncio.run(late()) == 0
        assert asyncio.run(_submit_all(batcher, [5])) == [10]
    finally:
        runner.gate.set()
        batcher.close()
    assert [1] not in runner.batches  # the abandoned request was never scored
    assert batcher.stats.abandoned == 1


def test_a_failing_batch_fails_its_requests_and_the_worker_carries_on() -> None:
    calls = []

    def flaky(payloads):
        calls.append(list(payloads))
        if len(calls) == 1:
            raise RuntimeError("model exploded")
        return [p * 2 for p in payloads]

    batcher = MicroBatcher(flaky, max_batch=4, max_wait_ms=0, max_queue=8)
    try:
        (error,) = asyncio.run(_submit_all(batcher, [1]))
        assert isinstance(error, RuntimeError)
        assert asyncio.run(_submit_all(batcher, [3])) == [6]
    finally:
        batcher.close()


def test_close_finishes_queued_work_then_refuses() -> None:
    runner = Runner(cost_s=0.01)
    batcher = MicroBatcher(runner, max_batch=2, max_wait_ms=0, max_queue=16)

    async def run():
        tasks = [asyncio.create_task(batcher.submit(p, 1, 10)) for p in range(6)]
        await asyncio.sleep(0)
        await asyncio.to_thread(batcher.close)
        with pytest.raises(Stopped):
            await batcher.submit(9, 1, 10)
        return await asyncio.gather(*tasks)

    assert asyncio.run(run()) == [p * 2 for p in range(6)]


class TwoStages:
    """Stage 1 tags payloads, stage 2 doubles them; both record when they ran, to show the overlap."""

    def __init__(self, cost_s: float, fail_finish_once: bool = False) -> None:
        self.cost_s = cost_s
        self.fail_finish_once = fail_finish_once
        self.spans: list[tuple[str, float, float, int]] = []  # (stage, start, end, batch size)
        self.in_flight = 0  # batches taken by stage 1 and not yet finished by stage 2
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def prepare(self, payloads):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        start = time.monotonic()
        time.sleep(self.cost_s)
        self.spans.append(("prepare", start, time.monotonic(), len(payloads)))
        return list(payloads)

    def finish(self, payloads):
        start = time.monotonic()
        time.sleep(self.cost_s)
        self.spans.append(("finish", start, time.monotonic(), len(payloads)))
        with self.lock:
            self.in_flight -= 1
        if self.fail_finish_once:
            self.fail_finish_once = False
            raise RuntimeError("model exploded")
        return [p * 2 for p in payloads]


def test_two_stages_overlap_with_at_most_two_batches_in_flight() -> None:
    stages = TwoStages(cost_s=0.05)
    batcher = MicroBatcher(stages.prepare, max_batch=2, max_wait_ms=0, max_queue=64, finish=stages.finish)
    try:
        results = asyncio.run(_submit_all(batcher, list(range(12))))
    finally:
        batcher.close()
    assert results == [p * 2 for p in range(12)]  # every request its own answer, through both stages
    prepares = [s for s in stages.spans if s[0] == "prepare"]
    finishes = [s for s in stages.spans if s[0] == "finish"]
    assert sum(s[3] for s in finishes) == 12 and len(prepares) == len(finishes)
    # Stage 1 of a later batch ran while stage 2 scored an earlier one.
    assert any(p[1] < f[2] and f[1] < p[2] for p in prepares for f in finishes)
    assert stages.most_in_flight == 2
    assert batcher.stats.messages == 12


def test_a_failing_second_stage_fails_only_its_batch() -> None:
    stages = TwoStages(cost_s=0.0, fail_finish_once=True)
    batcher = MicroBatcher(stages.prepare, max_batch=4, max_wait_ms=0, max_queue=8, finish=stages.finish)
    try:
        (error,) = asyncio.run(_submit_all(batcher, [1]))
        assert isinstance(error, RuntimeError)
        assert asyncio.run(_submit_all(batcher, [3, 4])) == [6, 8]
    finally:
        batcher.close()


def test_two_stage_close_finishes_queued_work() -> None:
    stages = TwoStages(cost_s=0.01)
    batcher = MicroBatcher(stages.prepare, max_batch=2, max_wait_ms=0, max_queue=16, finish=stages.finish)

    async def run():
        tasks = [asyncio.create_task(batcher.submit(p, 1, 10)) for p in range(7)]
        await asyncio.sleep(0)
        await asyncio.to_thread(batcher.close)
        return await asyncio.gather(*tasks)

    assert asyncio.run(run()) == [p * 2 for p in range(7)]


def test_ready_high_water_is_a_share_of_the_queue() -> None:
    batcher = MicroBatcher(Runner(), max_batch=1, max_wait_ms=0, max_queue=40, high_water=0.25)
    try:
        assert batcher.high_water == 10 and batcher.below_high_water()
    finally:
        batcher.close()


def test_a_lone_request_skips_the_hand_off_between_stages() -> None:
    threads: list[str] = []

    def finish(payloads):
        threads.append(threading.current_thread().name)
        return [p * 2 for p in payloads]

    batcher = MicroBatcher(list, max_batch=4, max_wait_ms=0, max_queue=8, finish=finish)
    try:
        assert asyncio.run(_submit_all(batcher, [5])) == [10]
    finally:
        batcher.close()
    assert threads == ["micro-batcher"]  # the first stage's thread finished it


def test_a_lone_request_on_an_idle_server_runs_alone_and_concurrent_ones_do_not() -> None:
    stages = TwoStages(cost_s=0.05)
    alone: list[list[int]] = []

    def run_alone(payloads):
        alone.append(list(payloads))
        return [p * 3 for p in payloads]

    batcher = MicroBatcher(stages.prepare, max_batch=2, max_wait_ms=0, max_queue=64, finish=stages.finish,
                           alone=run_alone)
    try:
        assert asyncio.run(_submit_all(batcher, [5])) == [15]
        assert alone == [[5]] and not stages.spans  # neither stage ran for it
        results = asyncio.run(_submit_all(batcher, list(range(12))))
    finally:
        batcher.close()
    # Under load, batches of two flow through both stages; at most the odd lone batch ran alone.
    assert [r in (2 * p, 3 * p) for p, r in zip(range(12), results)] == [True] * 12
    assert sum(s[3] for s in stages.spans if s[0] == "finish") >= 8


def test_a_wave_on_an_idle_two_stage_batcher_is_split_so_the_stages_overlap() -> None:
    """Closed-loop clients come back together: 8 requests at once, room for all 8 in one batch. Taking
    all 8 would leave the model idle while they are masked; half of them start at once instead."""
    stages = TwoStages(cost_s=0.05)
    batcher = MicroBatcher(stages.prepare, max_batch=64, max_wait_ms=10, max_queue=64, finish=stages.finish)

    async def wave():
        tasks = [asyncio.create_task(batcher.submit(p, 1, 10)) for p in range(8)]
        return await asyncio.gather(*tasks)

    try:
        assert asyncio.run(wave()) == [p * 2 for p in range(8)]
    finally:
        batcher.close()
    prepares = [s for s in stages.spans if s[0] == "prepare"]
    finishes = [s for s in stages.spans if s[0] == "finish"]
    assert prepares[0][3] <= 4 and sum(s[3] for s in finishes) == 8
    assert any(p[1] < f[2] and f[1] < p[2] for p in prepares for f in finishes)  # the stages overlapped


def test_two_requests_at_once_are_not_run_one_after_the_other_on_one_thread() -> None:
    """Half of a queue of two is one request; it is still handed to the second stage (it is not lone:
    another waits), so the first stage masks the other one meanwhile."""
    stages = TwoStages(cost_s=0.05)
    batcher = MicroBatcher(stages.prepare, max_batch=64, max_wait_ms=10, max_queue=64, finish=stages.finish)

    async def pair():
        tasks = [asyncio.create_task(batcher.submit(p, 1, 10)) for p in (1, 2)]
        return await asyncio.gather(*tasks)

    try:
        assert asyncio.run(pair()) == [2, 4]
    finally:
        batcher.close()
    prepares = [s for s in stages.spans if s[0] == "prepare"]
    finishes = [s for s in stages.spans if s[0] == "finish"]
    assert len(prepares) == 2 and len(finishes) == 2
    assert any(p[1] < f[2] and f[1] < p[2] for p in prepares for f in finishes)  # the stages overlapped
