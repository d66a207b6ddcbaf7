"""intent_pipeline/db_guard.py: one-line database errors for the app, and a cool-down after failures."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from intent_pipeline import db
from intent_pipeline.db_guard import DatabaseGuard, DatabaseUnavailable
from intent_pipeline.errors import PipelineError

SECRET_URL = "mysql+pymysql://root:s3cret@127.0.0.1:1/nowhere"


def assert_safe(message: str) -> None:
    assert "\n" not in message and "s3cret" not in message and "127.0.0.1" not in message
    assert "SELECT" not in message.upper() and "INSERT" not in message.upper() and "nowhere" not in message


def test_a_failed_connection_is_not_retried_during_the_cool_down() -> None:
    now, calls = [100.0], []

    def connect(url: str) -> sa.Engine:
        calls.append(url)
        if len(calls) < 3:
            raise PipelineError(f"cannot connect to database {url}: refused")
        return sa.create_engine("sqlite://")

    guard = DatabaseGuard(SECRET_URL, connect=connect, cooldown_s=30, clock=lambda: now[0])
    with pytest.raises(DatabaseUnavailable) as first:
        guard.engine("log predictions")
    assert_safe(str(first.value)) and "Could not log predictions" in str(first.value)
    now[0] += 10
    with pytest.raises(DatabaseUnavailable, match="next try in 20 s"):
        guard.run("read the feedback", db.read_feedback)
    assert len(calls) == 1 and guard.retry_in_s() == 20
    now[0] += 21
    with pytest.raises(DatabaseUnavailable):
        guard.engine()  # tried again after the cool-down, failed again
    now[0] += 31
    engine = guard.engine()
    assert len(calls) == 3 and guard.engine() is engine and guard.retry_in_s() == 0


def test_real_unreachable_server_gives_one_safe_line(mariadb_server: str) -> None:
    guard = DatabaseGuard(SECRET_URL)
    with pytest.raises(DatabaseUnavailable) as refused:
        guard.run("read the logged predictions", db.read_predictions)
    assert_safe(str(refused.value))
    assert guard.retry_in_s() > 25


def test_query_errors_are_one_safe_line(db_url: str) -> None:
    db.create_schema(db_url)  # stage 2; the guard only checks the schema
    guard = DatabaseGuard(db_url)
    guard.run("save your feedback", db.save_feedback, "masked text", "a", "b")
    with pytest.raises(DatabaseUnavailable, match="non-empty correct label"):
        guard.run("save your feedback", db.save_feedback, "masked text", "a", " ")
    engine = guard.engine()
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE feedback"))
    with pytest.raises(DatabaseUnavailable) as failed:
        guard.run("read the feedback", db.read_feedback)
    message = str(failed.value)
    assert_safe(message) and "feedback" not in message.replace("read the feedback", "")
    assert message.startswith("Could not read the feedback:")
    engine.dispose()


def test_a_database_without_the_schema_names_the_stage_2_command(db_url: str) -> None:
    guard = DatabaseGuard(db_url)
    with pytest.raises(DatabaseUnavailable) as missing:
        guard.run("log predictions", db.log_predictions, [])
    message = str(missing.value)
    assert "\n" not in message and "python load_to_mysql.py --schema-only" in message
    assert "127.0.0.1" not in message and "sqlite" not in message
    with pytest.raises(DatabaseUnavailable, match="load_to_mysql.py --schema-only"):  # in the cool-down too
        guard.engine("log predictions")
    assert not sa.inspect(sa.create_engine(db_url)).get_table_names()  # the app created nothing
    db.create_schema(db_url)
    guard = DatabaseGuard(db_url)
    assert guard.run("log predictions", db.log_predictions, []) == []
