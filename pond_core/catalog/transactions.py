"""Short transactions with retries: how several processes share one catalog safely.

Each catalog call is one transaction. A transaction that loses a race (SQLite still busy after
its timeout, a PostgreSQL serialization failure or deadlock) or a connection that drops is
retried with jittered backoff; the calls are idempotent, so a retry never double-counts.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from pond_core.catalog.engine import WRITE_OPTION, mask, scrub_secret
from pond_core.errors import PondConfigError, PondError, PondTransientError

T = TypeVar("T")
CONNECT, RACE = "connect", "race"
RETRIES = {CONNECT: 3, RACE: 30}
RACE_BUDGET_S = 30.0
# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
PG_RETRY_STATES = {"40001", "40P01", "55P03"}


PING_LOCKED_SECONDS = 30.0


class Transactions:
    """Runs functions of a Connection inside one transaction each, retrying lost races."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pid = os.getpid()

    def read(self, work: Callable[[Connection], T]) -> T:
        return self._run(work, write=False)

    def write(self, work: Callable[[Connection], T]) -> T:
        return self._run(work, write=True)

    def ping(self) -> None:
        """Connect once; a SQLite file that another process is switching to WAL mode (its first
        open) answers "database is locked" without waiting, so that is retried for a while."""
        self._after_fork()
        deadline = time.monotonic() + PING_LOCKED_SECONDS
        delay = 0.02
        while True:
            try:
                with self.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except (DBAPIError, OSError) as exc:
                if "database is locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise self.no_answer(exc, PondConfigError) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def no_answer(self, exc: BaseException, kind: type[PondError]) -> PondError:
        return kind(f"catalog at {mask(self.engine.url)} does not answer: {self.cause(exc)}")

    def cause(self, exc: BaseException) -> str:
        orig = getattr(exc, "orig", None) or exc
        lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
        return scrub_secret("; ".join(lines) or type(orig).__name__, self.engine.url)

    def _run(self, work: Callable[[Connection], T], *, write: bool) -> T:
        self._after_fork()
        failures = {CONNECT: 0, RACE: 0}
        started = time.monotonic()
        while True:
            try:
                return self._once(work, write)
            except (_ConnectFailed, DBAPIError) as exc:
                kind = self._transient(exc)
                if kind is None:
                    raise
                failures[kind] += 1
                # SQLite already waited busy_timeout before reporting "locked": do not wait again.
                out_of_time = kind == RACE and time.monotonic() - started > RACE_BUDGET_S
                if failures[kind] >= RETRIES[kind] or out_of_time:
                    raise self._gave_up(kind, exc) from None
                _sleep(sum(failures.values()))

    def _transient(self, exc: BaseException) -> str | None:
        if isinstance(exc, _ConnectFailed):
            return CONNECT
        assert isinstance(exc, DBAPIError)
        if exc.connection_invalidated:
            return CONNECT
        if self.engine.dialect.name == "sqlite":
            message = str(exc.orig).lower()
            return RACE if "locked" in message or "busy" in message else None
        return RACE if getattr(exc.orig, "sqlstate", None) in PG_RETRY_STATES else None

    def _gave_up(self, kind: str, exc: BaseException) -> PondError:
        if kind == CONNECT:
            return self.no_answer(getattr(exc, "error", exc), PondTransientError)
        return PondTransientError(
            f"catalog at {mask(self.engine.url)} stayed busy: {self.cause(exc)}"
        )

    def _once(self, work: Callable[[Connection], T], write: bool) -> T:
        try:
            conn = self.engine.connect()
        except DBAPIError as exc:
            raise _ConnectFailed(exc) from None
        with conn:
            if write:
                conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                return work(conn)

    def _after_fork(self) -> None:
        # Pooled connections must not be shared with a forked child: give it its own pool.
        if os.getpid() != self._pid:
            self.engine.dispose(close=False)
            self._pid = os.getpid()


class _ConnectFailed(Exception):
    def __init__(self, error: DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


def _sleep(failures: int, base: float = 0.02, cap: float = 1.0) -> None:
    time.sleep(random.uniform(0, min(cap, base * 2 ** min(failures, 10))))
