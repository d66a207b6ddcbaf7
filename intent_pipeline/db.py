"""The database: engine creation, the one schema (messages, predictions, feedback) and the reads and
writes that later stages, the app and the API share, so none of them writes SQL itself.

Works on SQLite (the embedded default) and MySQL/MariaDB (utf8mb4). `ensure_schema()` creates what
is missing and adds columns and indexes that a newer schema introduced; only stage 2
(`load_to_mysql.py`, or `load_to_mysql.py --schema-only`) and the batch stages call it through
`connect()`. Servers (the API) use `open_existing()`, which checks the schema and never alters it,
so several server processes can start at once against one database.

SQLite runs in WAL mode with a busy timeout, so the app, the API and a stage can share one file:
readers never block the writer, and a writer waits for another instead of failing at once.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from config import get_settings, mask_url
from intent_pipeline.errors import PipelineError

log = logging.getLogger(__name__)

metadata = sa.MetaData()

# MySQL's TEXT holds 64 KB; masked messages can be longer, so use MEDIUMTEXT there.
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UtcNow = sa.func.current_timestamp()
MYSQL_UNKNOWN_DATABASE = 1049
FEEDBACK_PENDING, FEEDBACK_APPROVED, FEEDBACK_REJECTED = "pending", "approved", "rejected"
FEEDBACK_STATUSES = (FEEDBACK_PENDING, FEEDBACK_APPROVED, FEEDBACK_REJECTED)
HOW_TO_CREATE_SCHEMA = "run `python load_to_mysql.py --schema-only` (stage 2) to create or upgrade it"


class SchemaError(PipelineError):
    """The database is reachable but its schema is missing or older than this code's."""


def utc_now() -> datetime:
    """Naive UTC timestamp, the form every DateTime column stores."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _timestamp(name: str, **kwargs: Any) -> sa.Column:
    # Client-side default as well as server-side: a column added to an existing SQLite table cannot
    # carry a non-constant DEFAULT, so inserts must not rely on the server filling it in. A Python
    # value (not CURRENT_TIMESTAMP inline) keeps executemany a true multi-row INSERT on PyMySQL.
    return sa.Column(name, sa.DateTime, nullable=False, default=utc_now, server_default=UtcNow, **kwargs)


messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("text", LongText, nullable=False),
    sa.Column("label", sa.String(191), nullable=False, index=True),
    sa.Column("text_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("source", sa.String(255), nullable=False, server_default=""),
    _timestamp("created_at"),
    _timestamp("updated_at", onupdate=utc_now),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    _timestamp("created_at", index=True),
    sa.Column("text", LongText, nullable=False),  # always the PII-masked text
    sa.Column("intent", sa.String(191), nullable=False),
    sa.Column("top_intent", sa.String(191), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("is_fallback", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("model_version", sa.String(128), nullable=False, server_default=""),
    sa.Column("latency_ms", sa.Float, nullable=False, server_default="0"),
    sa.Column("channel", sa.String(32), nullable=False, server_default="app"),
    # Why the fallback answered: "unsure" or "out_of_scope" (predict.FALLBACK_REASONS); "" when it did not,
    # and for rows logged before the column existed.
    sa.Column("fallback_reason", sa.String(32), nullable=False, server_default=""),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    _timestamp("created_at"),
    sa.Column("prediction_id", BigId, sa.ForeignKey("predictions.id"), nullable=True),
    sa.Column("text", LongText, nullable=False),  # PII-masked
    sa.Column("predicted_label", sa.String(191), nullable=False),
    sa.Column("correct_label", sa.String(191), nullable=False),
    sa.Column("is_correct", sa.Boolean, nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False, server_default=""),
    # Review: only approved rows reach training. Rows that predate the column become pending, never trusted.
    sa.Column("status", sa.String(16), nullable=False, server_default=FEEDBACK_PENDING, index=True),
    sa.Column("reviewed_at", sa.DateTime, nullable=True),
    sa.Column("reviewed_by", sa.String(191), nullable=False, server_default=""),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)


def _first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _create_mysql_database(url: sa.URL) -> None:
    """Create the database named in `url` (utf8mb4, binary collation) on its server."""
    server = sa.create_engine(url.set(database=""))
    try:
        quoted = server.dialect.identifier_preparer.quote(url.database)
        with server.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    finally:
        server.dispose()


def _create_private_file(path: Path) -> None:
    """Create an empty SQLite file readable by its owner only (it holds customer messages); SQLite
    gives its journal and WAL files the same mode. An existing file keeps the mode its owner chose."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise PipelineError(f"cannot create the SQLite database {path}: {exc.strerror}") from None


def make_engine(url: str, sqlite_busy_timeout_s: float | None = None) -> Engine:
    """Create an engine for `url`; SQLite's folder and a missing MySQL database are created.

    A SQLite writer waits up to `sqlite_busy_timeout_s` (default: SQLITE_BUSY_TIMEOUT_S) for another
    one (the app, the API and a stage share the file) before failing.
    Raises PipelineError (password masked) if the URL is malformed or the database unreachable.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise PipelineError(f"DATABASE_URL is not a valid database URL: {mask_url(url)}") from None
    kwargs: dict = {}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _create_private_file(Path(parsed.database))
        if sqlite_busy_timeout_s is None:
            sqlite_busy_timeout_s = get_settings().sqlite_busy_timeout_s
        kwargs.update(connect_args={"timeout": sqlite_busy_timeout_s})
    elif backend in {"mysql", "mariadb"}:
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        kwargs.update(pool_pre_ping=True, pool_recycle=3600, connect_args={"connect_timeout": 10})
    try:
        engine = sa.create_engine(parsed, **kwargs)
        if backend == "sqlite":
            sa.event.listen(engine, "connect", functools.partial(_sqlite_pragmas, sqlite_busy_timeout_s))
        try:
            _ping(engine)
        except OperationalError as exc:
            code = getattr(exc.orig, "args", [None])[0]
            if backend not in {"mysql", "mariadb"} or code != MYSQL_UNKNOWN_DATABASE or not parsed.database:
                raise
            log.info("creating database %s", parsed.database)
            _create_mysql_database(parsed)
            _ping(engine)
    except (SQLAlchemyError, ModuleNotFoundError) as exc:
        raise PipelineError(f"cannot connect to database {mask_url(url)}: {_first_line(exc)}") from None
    return engine


def describe_url(url: str) -> str:
    """Backend and database name only (`sqlite: intent_pipeline.db`, `mysql: shop`): no host, user or password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "invalid DATABASE_URL"
    name = Path(parsed.database).name if parsed.get_backend_name() == "sqlite" and parsed.database else parsed.database
    return f"{parsed.get_backend_name()}: {name or '(default)'}"


def _sqlite_pragmas(busy_timeout_s: float, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL is a property of the file (kept once set); in-memory databases answer "memory" and carry on.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    finally:
        cursor.close()


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def _default_sql(column: sa.Column, engine: Engine) -> str | None:
    """The column's server default as SQL text, or None if it has none."""
    if column.server_default is None:
        return None
    arg = column.server_default.arg
    if isinstance(arg, str):
        return "'" + arg.replace("'", "''") + "'"
    return str(arg.compile(dialect=engine.dialect))


def _add_column_sql(table: sa.Table, column: sa.Column, engine: Engine) -> tuple[str, str | None]:
    """ALTER TABLE statement adding `column`, plus an UPDATE that back-fills it where needed."""
    quote = engine.dialect.identifier_preparer.quote
    ddl = f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {column.type.compile(dialect=engine.dialect)}"
    default = _default_sql(column, engine)
    if default is None:
        return ddl + " NULL", None  # existing rows have no value to give a NOT NULL column
    if engine.dialect.name == "sqlite" and isinstance(column.server_default.arg, sa.sql.functions.FunctionElement):
        # SQLite rejects a non-constant DEFAULT in ADD COLUMN: add it bare, then fill existing rows.
        return ddl + " NULL", f"UPDATE {quote(table.name)} SET {quote(column.name)} = {default}"
    null = " NOT NULL" if not column.nullable else ""
    return f"{ddl} DEFAULT {default}{null}", None


def ensure_schema(engine: Engine) -> None:
    """Create missing tables; add columns and indexes that this schema has and the database lacks."""
    metadata.create_all(engine)
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        existing = {col["name"] for col in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing:
                continue
            log.info("schema upgrade: adding %s.%s", table.name, column.name)
            ddl, backfill = _add_column_sql(table, column, engine)
            with engine.begin() as conn:
                conn.execute(sa.text(ddl))
                if backfill:
                    conn.execute(sa.text(backfill))
        index_names = {ix["name"] for ix in inspector.get_indexes(table.name)}
        index_names |= {uc["name"] for uc in inspector.get_unique_constraints(table.name)}
        for index in table.indexes:
            if index.name not in index_names:
                log.info("schema upgrade: adding index %s", index.name)
                index.create(engine)


def schema_problems(engine: Engine) -> list[str]:
    """What the database lacks of this code's schema (tables, columns, indexes); empty when current."""
    inspector = sa.inspect(engine)
    present = set(inspector.get_table_names())
    problems = []
    for table in metadata.sorted_tables:
        if table.name not in present:
            problems.append(f"table {table.name} is missing")
            continue
        columns = {col["name"] for col in inspector.get_columns(table.name)}
        missing = [column.name for column in table.columns if column.name not in columns]
        index_names = {ix["name"] for ix in inspector.get_indexes(table.name)}
        index_names |= {uc["name"] for uc in inspector.get_unique_constraints(table.name)}
        missing += [f"index {index.name}" for index in table.indexes if index.name not in index_names]
        if missing:
            problems.append(f"{table.name} lacks {', '.join(missing)}")
    return problems


def open_existing(url: str) -> Engine:
    """Engine for a server: the schema must be current already (stage 2 creates it); never alters it.

    Raises PipelineError when the database is unreachable, SchemaError when its schema is missing or old.
    """
    engine = make_engine(url)
    try:
        problems = schema_problems(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise PipelineError(f"cannot read the schema of {mask_url(url)}: {_first_line(exc)}") from None
    if problems:
        engine.dispose()
        raise SchemaError(f"the database {mask_url(url)} has no current schema ({'; '.join(problems)}): "
                          f"{HOW_TO_CREATE_SCHEMA}")
    return engine


def connect(url: str) -> Engine:
    """Engine with the schema created or upgraded: what stage 2 and the batch stages call."""
    engine = make_engine(url)
    try:
        ensure_schema(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise PipelineError(f"cannot create or upgrade the schema in {mask_url(url)}: {_first_line(exc)}") from None
    return engine


def create_schema(url: str) -> None:
    """Stage 2's schema step (`load_to_mysql.py --schema-only`): create or upgrade the tables, load nothing."""
    connect(url).dispose()


def _frame(engine: Engine, query: sa.Select, columns: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=columns)


def read_messages(engine: Engine) -> pd.DataFrame:
    """All rows of `messages` ordered by id.

    Columns: id, text, label, text_hash, source, created_at, updated_at. Empty (with those columns)
    when nothing was loaded yet; the caller decides whether that is an error.
    """
    columns = [c.name for c in messages.columns]
    return _frame(engine, sa.select(messages).order_by(messages.c.id), columns)


PREDICTION_FIELDS = ("text", "intent", "top_intent", "confidence", "is_fallback", "model_version", "latency_ms", "channel",
                     "fallback_reason")


def _prediction_row(row: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in ("text", "intent", "confidence") if key not in row]
    if missing:
        raise PipelineError(f"prediction to log lacks {', '.join(missing)}")
    values = {key: row[key] for key in PREDICTION_FIELDS if key in row and row[key] is not None}
    values["text"] = str(values["text"])
    values.setdefault("top_intent", values["intent"])
    values["confidence"] = float(values["confidence"])
    values["is_fallback"] = bool(values.get("is_fallback", False))
    values["latency_ms"] = float(values.get("latency_ms", 0.0))
    values.setdefault("model_version", "")
    values.setdefault("channel", "app")
    values["fallback_reason"] = str(values.get("fallback_reason") or "")
    return values


def log_predictions(engine: Engine, rows: Iterable[Mapping[str, Any]]) -> list[int]:
    """Store predictions in one transaction and return their new ids, in the order given.

    Each row is a mapping with `text` (PII-masked!), `intent`, `confidence` and optionally
    `top_intent` (default: intent), `is_fallback` (False), `model_version` (""), `latency_ms` (0),
    `channel` ("app"), `fallback_reason` ("" or None: answered); other keys (e.g. `top_k` from `Prediction.to_dict()`) are ignored.
    """
    values = [_prediction_row(row) for row in rows]
    if not values:
        return []
    with engine.begin() as conn:
        if engine.dialect.insert_executemany_returning_sort_by_parameter_order:  # SQLite, MariaDB >= 10.5
            stmt = predictions.insert().returning(predictions.c.id, sort_by_parameter_order=True)
            return [int(row_id) for row_id in conn.execute(stmt, values).scalars()]
        # MySQL has no INSERT .. RETURNING: one statement per row is the portable way to get the ids.
        return [int(conn.execute(predictions.insert().values(**row)).inserted_primary_key[0]) for row in values]


def read_predictions(engine: Engine, limit: int | None = None) -> pd.DataFrame:
    """Logged predictions, newest first (`limit` rows at most); columns as in the `predictions` table."""
    query = sa.select(predictions).order_by(predictions.c.id.desc())
    if limit is not None:
        query = query.limit(int(limit))
    return _frame(engine, query, [c.name for c in predictions.columns])


def save_feedback(
    engine: Engine,
    text: str,
    predicted_label: str,
    correct_label: str,
    *,
    prediction_id: int | None = None,
    model_version: str = "",
) -> int:
    """Record a user's verdict on a prediction, pending review, and return the feedback id.

    `text` must be the PII-masked text; `is_correct` is derived (predicted == correct). Nothing
    reaches training until a reviewer approves it (`review_feedback`).
    `prediction_id` (optional) links to `predictions.id` as returned by `log_predictions`.
    """
    if not str(correct_label).strip():
        raise PipelineError("feedback needs a non-empty correct label")
    row = {
        "text": str(text),
        "predicted_label": str(predicted_label),
        "correct_label": str(correct_label),
        "is_correct": str(predicted_label) == str(correct_label),
        "prediction_id": prediction_id,
        "model_version": model_version or "",
    }
    with engine.begin() as conn:
        return int(conn.execute(feedback.insert().values(**row)).inserted_primary_key[0])


FEEDBACK_COLUMNS = [c.name for c in feedback.columns]


def read_feedback(engine: Engine, status: str | None = None, *, reviewed_since: datetime | None = None,
                  limit: int | None = None, newest_first: bool = False) -> pd.DataFrame:
    """Feedback rows ordered by id (oldest first unless `newest_first`), optionally only one `status`
    and only those reviewed at or after `reviewed_since` (naive UTC). Columns: id, created_at,
    prediction_id, text, predicted_label, correct_label, is_correct (bool), model_version, status,
    reviewed_at, reviewed_by."""
    query = sa.select(feedback).order_by(feedback.c.id.desc() if newest_first else feedback.c.id)
    if status is not None:
        if status not in FEEDBACK_STATUSES:
            raise PipelineError(f"unknown feedback status {status!r}; use one of {', '.join(FEEDBACK_STATUSES)}")
        query = query.where(feedback.c.status == status)
    if reviewed_since is not None:
        query = query.where(feedback.c.reviewed_at >= reviewed_since)
    if limit is not None:
        query = query.limit(int(limit))
    frame = _frame(engine, query, FEEDBACK_COLUMNS)
    frame["is_correct"] = frame["is_correct"].astype(bool)
    return frame


def count_feedback(engine: Engine) -> dict[str, int]:
    """Number of feedback rows per status (every status present, 0 when none)."""
    query = sa.select(feedback.c.status, sa.func.count()).group_by(feedback.c.status)
    with engine.connect() as conn:
        counts = {str(status): int(n) for status, n in conn.execute(query).all()}
    return {status: counts.get(status, 0) for status in FEEDBACK_STATUSES}


def review_feedback(engine: Engine, ids: Iterable[int], status: str, reviewer: str = "") -> int:
    """Mark pending feedback rows approved or rejected; returns how many changed.

    Only rows still pending change, so two reviewers deciding the same row cannot overwrite each
    other, and a decision is final (a rejected row is never approved later by a stale page).
    """
    if status not in (FEEDBACK_APPROVED, FEEDBACK_REJECTED):
        raise PipelineError(f"a review decides {FEEDBACK_APPROVED} or {FEEDBACK_REJECTED}, not {status!r}")
    ids = sorted({int(i) for i in ids})
    if not ids:
        return 0
    stmt = (feedback.update()
            .where(feedback.c.id.in_(ids), feedback.c.status == FEEDBACK_PENDING)
            .values(status=status, reviewed_at=utc_now(), reviewed_by=str(reviewer)[:191]))
    with engine.begin() as conn:
        return int(conn.execute(stmt).rowcount)


def curated_labels(engine: Engine, texts: Iterable[str]) -> dict[str, str]:
    """{text: label} of the `messages` rows whose text is identical to one of `texts` (looked up by text_hash)."""
    by_hash = {hashlib.sha256(str(t).encode("utf-8")).hexdigest(): str(t) for t in texts}
    found: dict[str, str] = {}
    hashes = list(by_hash)
    with engine.connect() as conn:
        for start in range(0, len(hashes), 500):  # keep each IN (...) list well below driver limits
            query = sa.select(messages.c.text_hash, messages.c.label).where(
                messages.c.text_hash.in_(hashes[start:start + 500]))
            found.update({by_hash[h]: str(label) for h, label in conn.execute(query).all()})
    return found
