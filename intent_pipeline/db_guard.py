"""The database as a long-running app sees it: one engine per URL, one-line errors and a cool-down.

A dashboard page reruns on every click. Without a guard, an unreachable server costs every rerun a
connect timeout, and a failed query puts SQL, host names or a password into the page. `DatabaseGuard`
connects lazily, remembers a connection failure for `cooldown_s` seconds (calls in that window fail
at once), and turns every database error into a `DatabaseUnavailable` whose message is one safe
line; the details go to the server log with the password masked.

The app never changes the schema (stage 2 owns it): the guard opens the database with
`db.open_existing`, and a database without the current schema is a one-line warning naming
`python load_to_mysql.py --schema-only`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError

from config import mask_url
from intent_pipeline import db
from intent_pipeline.errors import PipelineError

log = logging.getLogger(__name__)

T = TypeVar("T")
COOLDOWN_S = 30.0


class DatabaseUnavailable(Exception):
    """A database call failed; str() is one line for users: no SQL, host or password."""


def _connection_lost(exc: BaseException) -> bool:
    # OperationalError covers refused or dropped connections (and SQLite's unopenable or locked files).
    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


class DatabaseGuard:
    """Lazy engine for `url` with a cool-down after connection failures; safe to share between threads."""

    def __init__(self, url: str, connect: Callable[[str], Engine] = db.open_existing, cooldown_s: float = COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url, self._connect, self.cooldown_s, self.clock = url, connect, cooldown_s, clock
        self._engine: Engine | None = None
        self._failed_at: float | None = None
        self._failure = "the database is unavailable"  # why the last try failed, for users (one safe line)
        self._lock = threading.Lock()

    def retry_in_s(self) -> float:
        """Seconds left in the cool-down (0 when the next call may try the database)."""
        if self._failed_at is None:
            return 0.0
        return max(0.0, self._failed_at + self.cooldown_s - self.clock())

    def _fail(self, what: str, exc: BaseException) -> DatabaseUnavailable:
        self._failed_at = self.clock()
        log.warning("database unavailable while trying to %s (%s): %s", what, mask_url(self.url),
                    str(getattr(exc, "orig", exc)).splitlines()[0] if str(exc) else type(exc).__name__)
        # A missing schema is the user's to fix: name the fix (never the URL or host).
        self._failure = (f"the database has no current schema; {db.HOW_TO_CREATE_SCHEMA}"
                         if isinstance(exc, db.SchemaError) else "the database is unavailable")
        return DatabaseUnavailable(f"Could not {what}: {self._failure} "
                                   f"(next try in {self.cooldown_s:.0f} s; details in the server log).")

    def engine(self, what: str = "reach the database") -> Engine:
        """The engine, connecting (and checking the schema) on first use; raises DatabaseUnavailable in the cool-down."""
        with self._lock:
            wait = self.retry_in_s()
            if wait > 0:
                raise DatabaseUnavailable(f"Could not {what}: {self._failure} (next try in {wait:.0f} s).")
            if self._engine is None:
                try:
                    self._engine = self._connect(self.url)
                except (PipelineError, SQLAlchemyError, OSError, ModuleNotFoundError) as exc:
                    raise self._fail(what, exc) from None
                self._failed_at = None
            return self._engine

    def run(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(engine, *args, **kwargs)`; any database error becomes DatabaseUnavailable (`what` names the action)."""
        engine = self.engine(what)
        try:
            return fn(engine, *args, **kwargs)
        except PipelineError as exc:  # a refusal written for users (e.g. an empty label)
            raise DatabaseUnavailable(f"Could not {what}: {exc}") from None
        except SQLAlchemyError as exc:
            if _connection_lost(exc):
                with self._lock:
                    raise self._fail(what, exc) from None
            log.warning("database error while trying to %s: %s", what, type(exc).__name__)
            raise DatabaseUnavailable(f"Could not {what}: the database reported an error ({type(exc).__name__}; "
                                      "details in the server log).") from None
