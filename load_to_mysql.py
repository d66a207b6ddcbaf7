"""CLEANED_DATA_FILE (CSV: text,label,text_hash[,source]) -> table `messages` of the database at DATABASE_URL.

Stage 2. Idempotent: rows are keyed on `text_hash`; a new hash is inserted, a known hash whose label
(or masked text) changed is updated, the rest is left alone. `--replace` also deletes rows whose hash
is not in the file, so the table mirrors it. The whole load is one transaction: bad input, a database
error or an interrupt midway leave the table exactly as it was. Prints inserted / updated /
unchanged / removed counts; the database URL is only ever shown with its password masked.
`messages.source` comes from `--source` if given, else from the file's own `source` column (per
row; stage 1 keeps the raw file's), else the input file name. Stage 2 owns the schema: it creates
and upgrades the tables (`--schema-only` does only that), and the servers just check it.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from config import get_settings, mask_url
from intent_pipeline.cli import run_cli
from intent_pipeline.db import connect, create_schema, messages, utc_now
from intent_pipeline.errors import PipelineError
from intent_pipeline.logging_setup import setup_logging

log = logging.getLogger("load_to_mysql")

REQUIRED_COLUMNS = ("text", "label", "text_hash")
HASH_PATTERN = re.compile(r"[0-9a-f]{64}")
MAX_LABEL_CHARS = messages.c.label.type.length
MAX_SOURCE_CHARS = messages.c.source.type.length
DEFAULT_BATCH_SIZE = 2000

# Called after each batch of writes with (step, rows written so far in that step); an exception
# raised there aborts the load and rolls it back. Lets tests inject a real failure midway.
BatchHook = Callable[[str, int], None]


@dataclass
class LoadReport:
    inserted: int = 0
    updated: int = 0
    relabelled: int = 0  # the part of `updated` whose label changed
    unchanged: int = 0
    removed: int = 0
    total: int = 0  # rows in the table after the load

    def summary(self) -> str:
        return (
            f"messages: inserted {self.inserted}, updated {self.updated} (relabelled {self.relabelled}), "
            f"unchanged {self.unchanged}, removed {self.removed}; table now holds {self.total} rows"
        )


@dataclass
class LoadPlan:
    inserts: list[dict]
    updates: list[dict]
    remove_ids: list[int]
    unchanged: int
    relabelled: int


def read_cleaned(path: Path) -> pd.DataFrame:
    """Read the stage-1 CSV exactly as written: every cell a string, no NA guessing, no stripping."""
    if not path.is_file():
        raise PipelineError(f"cleaned data file not found at {path}: run `python ingest_clean.py` first (or set CLEANED_DATA_FILE)")
    try:
        with warnings.catch_warnings():
            # pandas only warns (and drops fields, or turns them into an index) when a row is longer
            # than the header; for a data contract that is a malformed file.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # keep_default_na=False: texts such as "NA" or "null" are messages, not missing values.
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", index_col=False)
    except pd.errors.ParserWarning:
        raise PipelineError(f"cleaned data file {path} is not a valid CSV: a row has more fields than the header") from None
    except pd.errors.EmptyDataError:
        raise PipelineError(f"cleaned data file {path} is empty: re-run `python ingest_clean.py`") from None
    except pd.errors.ParserError as exc:
        raise PipelineError(f"cleaned data file {path} is not a valid CSV: {str(exc).strip().splitlines()[0]}") from None
    except UnicodeDecodeError as exc:
        raise PipelineError(f"cleaned data file {path} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return frame


def _bad_rows(mask: pd.Series) -> str:
    lines = [str(i + 2) for i in mask[mask].index[:5]]  # +2: header line, 1-based numbering
    more = f" and {int(mask.sum()) - len(lines)} more" if mask.sum() > len(lines) else ""
    return ", ".join(lines) + more


def validate_cleaned(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Check the stage-1 contract and drop exact duplicate hashes; raise PipelineError naming the lines."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise PipelineError(
            f"cleaned data file {path} lacks column(s) {', '.join(missing)} (has: {', '.join(map(str, frame.columns))})"
        )
    frame = frame[[*REQUIRED_COLUMNS, *(["source"] if "source" in frame.columns else [])]]
    if frame.empty:
        raise PipelineError(f"cleaned data file {path} has no rows: re-run `python ingest_clean.py`")
    checks = {
        "an empty text": frame["text"].str.strip() == "",
        "an empty label": frame["label"].str.strip() == "",
        f"a label longer than {MAX_LABEL_CHARS} characters": frame["label"].str.len() > MAX_LABEL_CHARS,
        "a text_hash that is not 64 lower-case hex digits (SHA-256)": ~frame["text_hash"].str.fullmatch(HASH_PATTERN),
    }
    for problem, mask in checks.items():
        if mask.any():
            raise PipelineError(f"cleaned data file {path} has {problem} on line(s) {_bad_rows(mask)}")
    conflicting = frame.groupby("text_hash")["label"].nunique() > 1
    if conflicting.any():
        clash = frame["text_hash"].isin(conflicting[conflicting].index)
        raise PipelineError(f"cleaned data file {path} gives one text_hash different labels on line(s) {_bad_rows(clash)}")
    duplicated = frame["text_hash"].duplicated()
    if duplicated.any():
        log.info("dropping %d repeated rows (same text_hash and label)", int(duplicated.sum()))
    return frame[~duplicated].reset_index(drop=True)


def read_existing(conn: Connection) -> dict[str, tuple[int, str, str]]:
    """{text_hash: (id, label, text)} of the rows already in `messages`."""
    query = sa.select(messages.c.text_hash, messages.c.id, messages.c.label, messages.c.text)
    return {h: (i, label, text) for h, i, label, text in conn.execute(query)}


def with_sources(frame: pd.DataFrame, source: str | None, default: str) -> pd.DataFrame:
    """A `source` per row: `source` if given, else the row's own (blank ones get `default`)."""
    if source is not None:
        sources = pd.Series(source, index=frame.index, dtype=object)
    elif "source" in frame.columns:
        sources = frame["source"].fillna("").str.strip().replace("", default)
    else:
        sources = pd.Series(default, index=frame.index, dtype=object)
    too_long = sources.str.len() > MAX_SOURCE_CHARS
    if too_long.any():
        raise PipelineError(f"a source tag is longer than {MAX_SOURCE_CHARS} characters (line(s) {_bad_rows(too_long)})")
    return frame.assign(source=sources)


def plan_load(existing: dict[str, tuple[int, str, str]], frame: pd.DataFrame, replace: bool) -> LoadPlan:
    """Diff the file (with its per-row `source`) against the table: what to insert, update and delete."""
    inserts: list[dict] = []
    updates: list[dict] = []
    unchanged = relabelled = 0
    # Plain lists: iterating Arrow-backed string columns element by element is several times slower.
    columns = [frame[c].tolist() for c in ("text", "label", "text_hash", "source")]
    for text, label, text_hash, source in zip(*columns):
        row = {"text": text, "label": label, "text_hash": text_hash, "source": source}
        known = existing.get(text_hash)
        if known is None:
            inserts.append(row)
        elif known[1] != label or known[2] != text:
            relabelled += known[1] != label
            updates.append({**row, "row_id": known[0]})
        else:
            unchanged += 1
    remove_ids: list[int] = []
    if replace:
        in_file = set(frame["text_hash"])
        remove_ids = sorted(row_id for h, (row_id, _, _) in existing.items() if h not in in_file)
    return LoadPlan(inserts, updates, remove_ids, unchanged, relabelled)


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _update_statement(conn: Connection):
    if conn.dialect.name in {"mysql", "mariadb"}:
        # One multi-row INSERT .. ON DUPLICATE KEY UPDATE per batch instead of a round trip per row.
        stmt = mysql_insert(messages)
        return stmt.on_duplicate_key_update(
            text=stmt.inserted.text, label=stmt.inserted.label, source=stmt.inserted.source,
            updated_at=stmt.inserted.updated_at,
        )
    return (
        messages.update()
        .where(messages.c.id == sa.bindparam("row_id"))
        .values(text=sa.bindparam("text"), label=sa.bindparam("label"), source=sa.bindparam("source"),
                updated_at=sa.bindparam("updated_at"))
    )


def apply_plan(conn: Connection, plan: LoadPlan, batch_size: int, after_batch: BatchHook | None) -> None:
    """Run the plan's writes in batches on `conn` (inside the caller's transaction)."""
    hook = after_batch or (lambda step, done: None)
    done = 0
    for batch in _chunks(plan.remove_ids, batch_size):
        conn.execute(messages.delete().where(messages.c.id.in_(batch)))
        done += len(batch)
        hook("remove", done)
    update = _update_statement(conn)
    is_upsert = conn.dialect.name in {"mysql", "mariadb"}
    now = utc_now()
    done = 0
    for batch in _chunks(plan.updates, batch_size):
        rows = [{**r, "updated_at": now} for r in batch]
        if is_upsert:
            rows = [{k: v for k, v in r.items() if k != "row_id"} for r in rows]
        conn.execute(update, rows)
        done += len(batch)
        hook("update", done)
    done = 0
    for batch in _chunks(plan.inserts, batch_size):
        # Explicit timestamps spare SQLAlchemy evaluating the column defaults row by row.
        conn.execute(messages.insert(), [{**r, "created_at": now, "updated_at": now} for r in batch])
        done += len(batch)
        hook("insert", done)


def load_messages(
    engine: Engine,
    frame: pd.DataFrame,
    source: str | None,
    replace: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    after_batch: BatchHook | None = None,
    dry_run: bool = False,
    default_source: str = "unknown",
) -> LoadReport:
    """Load validated rows (text, label, text_hash[, source]) into `messages` in one transaction.

    `source` tags every row; None keeps each row's `source` column (blank or absent: `default_source`).

    `after_batch(step, rows_done)` runs after every batch; if it (or the database) raises, the
    transaction is rolled back and the table is left as before. `dry_run` plans but writes nothing.
    """
    if source is not None and len(source) > MAX_SOURCE_CHARS:
        raise PipelineError(f"--source is longer than {MAX_SOURCE_CHARS} characters")
    frame = with_sources(frame, source, default_source)
    try:
        with engine.begin() as conn:
            plan = plan_load(read_existing(conn), frame, replace)
            if not dry_run:
                apply_plan(conn, plan, max(1, batch_size), after_batch)
            total = conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise PipelineError(f"loading into {mask_url(str(engine.url))} failed, nothing was changed: {reason}") from None
    if dry_run:
        total += len(plan.inserts) - len(plan.remove_ids)
    return LoadReport(len(plan.inserts), len(plan.updates), plan.relabelled, plan.unchanged, len(plan.remove_ids), total)


def load_file(
    path: Path,
    database_url: str,
    source: str | None = None,
    replace: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    after_batch: BatchHook | None = None,
    dry_run: bool = False,
) -> LoadReport:
    """Validate the cleaned CSV at `path`, then load it; the file is checked before the database is touched."""
    frame = validate_cleaned(read_cleaned(path), path)
    engine = connect(database_url)
    try:
        return load_messages(engine, frame, source or None, replace, batch_size, after_batch, dry_run, path.name)
    finally:
        engine.dispose()


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=settings.cleaned_data_file,
                        help="cleaned CSV with columns text,label,text_hash (default: CLEANED_DATA_FILE = %(default)s)")
    parser.add_argument("--source", default=None,
                        help="tag stored in messages.source for inserted/updated rows, overriding the file's source column "
                             "(default: that column per row, else the input file name)")
    parser.add_argument("--replace", action="store_true",
                        help="make the table mirror the file: also delete rows whose text_hash is not in the file")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="rows per bulk statement (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="report what would change without writing anything")
    parser.add_argument("--schema-only", action="store_true",
                        help="only create or upgrade the database schema (what the API needs before it starts), load nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    settings = get_settings()
    args = build_parser().parse_args(argv)
    setup_logging(settings.log_level)
    if args.batch_size < 1:
        raise PipelineError("--batch-size must be at least 1")
    if args.schema_only:
        create_schema(settings.database_url)
        print(f"schema is current in {mask_url(settings.database_url)}")
        return 0
    log.info("loading %s into %s%s", args.input, mask_url(settings.database_url), " (replace)" if args.replace else "")
    report = load_file(args.input, settings.database_url, args.source, args.replace, args.batch_size, dry_run=args.dry_run)
    print(("dry run, nothing written: " if args.dry_run else "") + report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
