"""intent_pipeline/serving/logger.py: the API's batched prediction log on real databases (SQLite, MariaDB).

Rows gather for a flush interval and go in as one transaction; a stop writes whatever is still
waiting at once, so every answered request keeps its row.
"""

from __future__ import annotations

import threading
import time

import pytest

from intent_pipeline import db
from intent_pipeline.serving.logger import BATCH_ROWS, PredictionLogger


def row(i: int) -> dict:
    return {"text": f"masked message {i}", "intent": "refund", "confidence": 0.9, "model_version": "v1",
            "latency_ms": 1.0, "channel": "api"}


def logged_texts(engine) -> list[str]:
    return sorted(db.read_predictions(engine)["text"])


def test_concurrent_requests_lose_no_rows_when_the_logger_stops(db_url: str) -> None:
    db.create_schema(db_url)
    engine = db.open_existing(db_url)
    # A long interval: without close() flushing at once, most rows would still be waiting.
    logger = PredictionLogger(engine, flush_interval_s=30)
    submitters = [threading.Thread(target=lambda k=k: [logger.submit([row(k * 100 + i)]) for i in range(50)])
                  for k in range(4)]
    for thread in submitters:
        thread.start()
    for thread in submitters:
        thread.join()
    started = time.monotonic()
    logger.close()
    assert time.monotonic() - started < 20  # the stop did not sit out the interval
    assert logged_texts(engine) == sorted(row(k * 100 + i)["text"] for k in range(4) for i in range(50))
    assert logger.written == 200 and logger.dropped == 0 and logger.pending() == 0
    engine.dispose()


def test_rows_are_written_in_batches_without_waiting_for_the_stop(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db.create_schema(db_url)
    engine = db.open_existing(db_url)
    writes: list[int] = []
    real = db.log_predictions

    logger = PredictionLogger(engine, flush_interval_s=0.3)
    try:
        def counting(engine_, rows):  # the real insert, counting transactions
            writes.append(len(rows))
            return real(engine_, rows)

        monkeypatch.setattr(db, "log_predictions", counting)
        for i in range(BATCH_ROWS + 10):  # one per request, as the API submits them
            logger.submit([row(i)])
        deadline = time.monotonic() + 20
        while logger.written < BATCH_ROWS + 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert logger.written == BATCH_ROWS + 10 and logger.pending() == 0  # written while running
        assert len(writes) <= 3 and max(writes) == BATCH_ROWS  # a few transactions, not one per row
    finally:
        logger.close()
    assert len(logged_texts(engine)) == BATCH_ROWS + 10
    engine.dispose()


def test_rows_submitted_after_the_stop_are_counted_as_dropped(db_url: str) -> None:
    db.create_schema(db_url)
    engine = db.open_existing(db_url)
    told: list[int] = []
    logger = PredictionLogger(engine, on_drop=told.append)
    logger.submit([row(1)])
    logger.close()
    logger.submit([row(2)])
    assert logger.written == 1 and logger.dropped == 1 and told == [1]  # the API's metrics hear of it
    assert logged_texts(engine) == [row(1)["text"]]
    engine.dispose()
