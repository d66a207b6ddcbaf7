"""The database: engine creation and the one schema (messages, predictions, feedback) for every stage.

Works on SQLite (the embedded default) and MySQL/MariaDB (utf8mb4). `ensure_schema()` creates what
is missing and adds columns that a newer schema introduced, so upgrades need no manual step.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from config import mask_url
from intent_pipeline.io import PipelineError

log = logging.getLogger(__name__)

metadata = sa.MetaData()

# MySQL's TEXT holds 64 KB; masked messages can be longer, so use MEDIUMTEXT there.
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UtcNow = sa.func.current_timestamp()

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("text", LongText, nullable=False),
    sa.Column("label", sa.String(191), nullable=False, index=True),
    sa.Column("text_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("source", sa.String(255), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime, nullable=False, server_default=UtcNow),
    sa.Column("updated_at", sa.DateTime, nullable=False, server_default=UtcNow),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime, nullable=False, server_default=UtcNow, index=True),
    sa.Column("text", LongText, nullable=False),  # always the PII-masked text
    sa.Column("intent", sa.String(191), nullable=False),
    sa.Column("top_intent", sa.String(191), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("is_fallback", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("model_version", sa.String(128), nullable=False, server_default=""),
    sa.Column("latency_ms", sa.Float, nullable=False, server_default="0"),
    sa.Column("channel", sa.String(32), nullable=False, server_default="app"),
    mysql_charset="utf8mb4",
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime, nullable=False, server_default=UtcNow),
    sa.Column("prediction_id", BigId, sa.ForeignKey("predictions.id"), nullable=True),
    sa.Column("text", LongText, nullable=False),  # PII-masked
    sa.Column("predicted_label", sa.String(191), nullable=False),
    sa.Column("correct_label", sa.String(191), nullable=False),
    sa.Column("is_correct", sa.Boolean, nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False, server_default=""),
    mysql_charset="utf8mb4",
)


def make_engine(url: str) -> Engine:
    """Create an engine for `url`; SQLite's folder is created, MySQL gets utf8mb4.

    Raises PipelineError (password masked) if the URL is malformed or the database unreachable.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise PipelineError(f"DATABASE_URL is not a valid database URL: {mask_url(url)}") from None
    kwargs: dict = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    elif parsed.get_backend_name() in {"mysql", "mariadb"}:
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        kwargs.update(pool_pre_ping=True, pool_recycle=3600)
    try:
        engine = sa.create_engine(parsed, **kwargs)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (OperationalError, SQLAlchemyError, ModuleNotFoundError) as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise PipelineError(f"cannot connect to database {mask_url(url)}: {reason}") from None
    return engine


def ensure_schema(engine: Engine) -> None:
    """Create missing tables and add columns that this version of the schema has and the DB lacks."""
    metadata.create_all(engine)
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        existing = {col["name"] for col in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing:
                continue
            ddl_type = column.type.compile(dialect=engine.dialect)
            default = ""
            if column.server_default is not None:
                default = " DEFAULT " + str(column.server_default.arg.compile(dialect=engine.dialect))
            null = "" if column.nullable or default else " NULL"
            log.info("schema upgrade: adding %s.%s", table.name, column.name)
            with engine.begin() as conn:
                conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {ddl_type}{default}{null}"))


def connect(url: str) -> Engine:
    """Engine with the schema in place: what every stage and the app call."""
    engine = make_engine(url)
    ensure_schema(engine)
    return engine
