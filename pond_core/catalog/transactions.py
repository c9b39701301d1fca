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
LOCK_RETRIES = 30
CONNECT_RETRIES = 3
# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
PG_RETRY_STATES = {"40001", "40P01", "55P03"}


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
        self._after_fork()
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (DBAPIError, OSError) as exc:
            raise self.no_answer(exc, PondConfigError) from None

    def no_answer(self, exc: BaseException, kind: type[PondError]) -> PondError:
        return kind(f"catalog at {mask(self.engine.url)} does not answer: {self.cause(exc)}")

    def cause(self, exc: BaseException) -> str:
        orig = getattr(exc, "orig", None) or exc
        lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
        return scrub_secret("; ".join(lines) or type(orig).__name__, self.engine.url)

    def _run(self, work: Callable[[Connection], T], *, write: bool) -> T:
        self._after_fork()
        lock_failures = connect_failures = 0
        while True:
            try:
                return self._once(work, write)
            except _ConnectFailed as failed:
                connect_failures += 1
                if connect_failures >= CONNECT_RETRIES:
                    raise self.no_answer(failed.error, PondTransientError) from None
                _sleep(connect_failures)
            except DBAPIError as exc:
                if exc.connection_invalidated and connect_failures + 1 < CONNECT_RETRIES:
                    connect_failures += 1
                elif self._lost_race(exc) and lock_failures + 1 < LOCK_RETRIES:
                    lock_failures += 1
                elif self._lost_race(exc) or exc.connection_invalidated:
                    raise PondTransientError(
                        f"catalog at {mask(self.engine.url)} stayed busy: {self.cause(exc)}"
                    ) from None
                else:
                    raise
                _sleep(lock_failures + connect_failures)

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

    def _lost_race(self, exc: DBAPIError) -> bool:
        if self.engine.dialect.name == "sqlite":
            message = str(exc.orig).lower()
            return "locked" in message or "busy" in message
        return getattr(exc.orig, "sqlstate", None) in PG_RETRY_STATES

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
