"""intent_pipeline.db on SQLite and MariaDB: schema creation, automatic migration of an older schema,
the shared read/write helpers, connection errors, and the CI script's MariaDB start logic."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from config import mask_url
from intent_pipeline import db
from intent_pipeline.errors import PipelineError

from conftest import MARIADB_SERVER_URL, PROJECT_ROOT


@pytest.fixture
def engine(db_url: str):
    engine = db.connect(db_url)
    yield engine
    engine.dispose()


def test_schema_is_created_with_expected_columns(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    assert {"messages", "predictions", "feedback"} <= set(inspector.get_table_names())
    columns = {c["name"] for c in inspector.get_columns("messages")}
    assert columns == {"id", "text", "label", "text_hash", "source", "created_at", "updated_at"}
    unique = [u["column_names"] for u in inspector.get_unique_constraints("messages")]
    unique += [i["column_names"] for i in inspector.get_indexes("messages") if i.get("unique")]
    assert ["text_hash"] in unique
    db.ensure_schema(engine)  # a second run is a no-op, not an error


OLD_SCHEMA = [
    # An earlier release: messages without source/updated_at, predictions without latency/channel.
    "CREATE TABLE messages (id {id}, text TEXT NOT NULL, label VARCHAR(191) NOT NULL, "
    "text_hash VARCHAR(64) NOT NULL UNIQUE, created_at DATETIME NOT NULL)",
    "CREATE TABLE predictions (id {id}, created_at DATETIME NOT NULL, text TEXT NOT NULL, "
    "intent VARCHAR(191) NOT NULL, top_intent VARCHAR(191) NOT NULL, confidence FLOAT NOT NULL)",
    "INSERT INTO messages (id, text, label, text_hash, created_at) VALUES (1, 'old row', 'other', '" + "a" * 64 + "', '2024-01-02 03:04:05')",
    "INSERT INTO predictions (id, created_at, text, intent, top_intent, confidence) VALUES (7, '2024-01-02 03:04:05', 'hi', 'other', 'other', 0.5)",
]


def test_older_schema_is_upgraded_without_losing_rows(db_url: str) -> None:
    engine = db.make_engine(db_url)
    try:
        with engine.begin() as conn:
            id_type = "INTEGER PRIMARY KEY" if engine.dialect.name == "sqlite" else "BIGINT AUTO_INCREMENT PRIMARY KEY"
            for statement in OLD_SCHEMA:
                conn.execute(sa.text(statement.replace("{id}", id_type)))
        db.ensure_schema(engine)
        inspector = sa.inspect(engine)
        assert {"source", "updated_at"} <= {c["name"] for c in inspector.get_columns("messages")}
        assert {"is_fallback", "model_version", "latency_ms", "channel"} <= {c["name"] for c in inspector.get_columns("predictions")}
        assert "ix_messages_label" in {i["name"] for i in inspector.get_indexes("messages")}
        old = db.read_messages(engine).iloc[0]
        assert (old["text"], old["label"], old["source"]) == ("old row", "other", "")
        assert old["updated_at"] is not None  # back-filled, even where the column came in bare (SQLite)
        # New code writes into the upgraded tables as into fresh ones.
        ids = db.log_predictions(engine, [{"text": "new", "intent": "refund", "confidence": 0.9}])
        logged = db.read_predictions(engine)
        assert ids[0] > 7 and list(logged["channel"]) == ["app", "app"] and list(logged["latency_ms"]) == [0.0, 0.0]
        db.ensure_schema(engine)
    finally:
        engine.dispose()


def test_prediction_and_feedback_round_trip(engine: sa.Engine) -> None:
    rows = [
        {"text": "where is my <PERSON> order 🍕", "intent": "check_order", "confidence": 0.91, "top_k": [("x", 1.0)],
         "model_version": "v3", "latency_ms": 12.5, "channel": "api"},
        {"text": "meh", "intent": "unknown", "top_intent": "other", "confidence": 0.2, "is_fallback": True},
        {"text": "third", "intent": "refund", "confidence": 0.6},
    ]
    ids = db.log_predictions(engine, rows)
    assert len(ids) == 3 and ids == sorted(ids) and len(set(ids)) == 3
    logged = db.read_predictions(engine).set_index("id")
    assert list(db.read_predictions(engine, limit=2)["id"]) == [ids[2], ids[1]]  # newest first
    assert logged.loc[ids[0], "text"] == rows[0]["text"] and logged.loc[ids[0], "channel"] == "api"
    assert logged.loc[ids[0], "top_intent"] == "check_order"  # defaults to the intent
    assert bool(logged.loc[ids[1], "is_fallback"]) and logged.loc[ids[1], "top_intent"] == "other"
    assert db.log_predictions(engine, []) == []
    with pytest.raises(PipelineError, match="lacks confidence"):
        db.log_predictions(engine, [{"text": "x", "intent": "y"}])

    first = db.save_feedback(engine, "meh", "unknown", "other", prediction_id=ids[1], model_version="v3")
    second = db.save_feedback(engine, "third", "refund", "refund")
    feedback = db.read_feedback(engine)
    assert list(feedback["id"]) == [first, second]
    assert list(feedback["is_correct"]) == [False, True]
    assert feedback.iloc[0]["prediction_id"] == ids[1] and feedback.iloc[0]["correct_label"] == "other"
    with pytest.raises(PipelineError):
        db.save_feedback(engine, "x", "a", "  ")


def test_empty_tables_read_as_empty_frames_with_columns(engine: sa.Engine) -> None:
    assert db.read_messages(engine).empty and "text_hash" in db.read_messages(engine).columns
    assert db.read_feedback(engine).empty and "correct_label" in db.read_feedback(engine).columns
    assert db.read_predictions(engine).empty


def test_missing_mariadb_database_is_created_utf8mb4_binary(mariadb_server: str) -> None:
    name = f"ip_test_auto_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(mariadb_server + "/")
    try:
        engine = db.connect(f"{mariadb_server}/{name}")
        assert engine.url.query.get("charset") == "utf8mb4"
        with engine.connect() as conn:
            collation = conn.execute(sa.text(
                "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'messages'"
            )).scalar_one()
            text_type = conn.execute(sa.text(
                "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME = 'messages' AND COLUMN_NAME = 'text'"
            )).scalar_one()
            database_collation = conn.execute(sa.text("SELECT @@collation_database")).scalar_one()
        engine.dispose()
        # Binary collation: texts differing only by case or trailing spaces stay distinct.
        assert collation == "utf8mb4_bin" and database_collation == "utf8mb4_bin" and text_type.lower() == "mediumtext"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "not a valid database URL"),
        ("mysql+pymysql://app:Hush-123@127.0.0.1:1/x", "cannot connect to database mysql+pymysql://app:***@127.0.0.1:1/x"),
        ("nosuchdriver://u:Hush-123@h/x", "cannot connect to database nosuchdriver://u:***@h/x"),
    ],
)
def test_bad_urls_raise_one_masked_line(url: str, expected: str) -> None:
    start = time.monotonic()
    with pytest.raises(PipelineError) as caught:
        db.make_engine(url)
    message = str(caught.value)
    assert expected in message and "Hush-123" not in message and "\n" not in message
    assert time.monotonic() - start < 15


def test_wrong_mariadb_password_is_a_clear_error(mariadb_server: str) -> None:
    url = mariadb_server.replace("://root@", "://root:Wr0ng-pass@") + "/mysql"
    with pytest.raises(PipelineError) as caught:
        db.make_engine(url)
    assert "Access denied" in str(caught.value) and "Wr0ng-pass" not in str(caught.value)
    assert mask_url(url) in str(caught.value)


def test_ci_script_starts_mariadb_when_down_and_then_requires_it() -> None:
    """Reads .ci/run: ping the server the tests use, start it only if the ping fails, wait for it,
    and run the suite with CI=true so that a server that never came up fails the database tests."""
    script = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert "set -euo pipefail" in lines
    host = re.search(r"mysql\+pymysql://[^@]+@([\d.]+):(\d+)", MARIADB_SERVER_URL)
    ping = f"mysqladmin --protocol=tcp -h {host.group(1)} -P {host.group(2)} -u root ping"
    guard = next(i for i, line in enumerate(lines) if line.startswith("if ! " + ping))
    start = next(i for i, line in enumerate(lines) if "start-stop-daemon --start" in line)
    wait = next(i for i, line in enumerate(lines) if line.startswith("for _ in $(seq"))
    retry = next(i for i, line in enumerate(lines) if line.startswith(ping) and "break" in line)
    end_if = next(i for i, line in enumerate(lines) if line == "fi" and i > retry)
    run_tests = lines.index("make test")
    assert guard < start < wait < retry < end_if < run_tests  # start only when down, then wait
    assert "--background" in lines[start] and "--oknodo" in lines[start]  # never blocks, never double-starts
    assert lines.index("export CI=true") < run_tests  # a server that stays down fails, not skips
    daemon = Path(re.search(r"--exec (\S+)", lines[start]).group(1))
    if not Path("/usr/sbin/mariadbd").exists():
        return  # MariaDB is not installed on this machine: the order above is all that can be checked
    assert daemon.is_file() and os.access(daemon, os.X_OK)
    assert shutil.which("mysqladmin") and (shutil.which("start-stop-daemon") or Path("/sbin/start-stop-daemon").exists())
    # The script starts the daemon directly, not through an init script, so the server's own config
    # must provide what an init script would: a non-root user to switch to and an existing socket folder.
    options = subprocess.run(["my_print_defaults", "mysqld", "mariadb", "server"], capture_output=True, text=True).stdout
    found = dict(line[2:].split("=", 1) for line in options.splitlines() if "=" in line)
    assert os.geteuid() != 0 or found.get("user") not in (None, "root"), "mariadbd refuses to run as root without user="
    socket_dir = Path(found.get("socket", "/run/mysqld/mysqld.sock")).parent
    assert socket_dir.is_dir() or "/run/mysqld" in script, f"{socket_dir} missing and .ci/run does not create it"
    assert f"--port={host.group(2)}" in options.splitlines() or "port" not in found
