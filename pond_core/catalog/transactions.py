"""Short transactions with retries: how several processes share one catalog safely.

Each catalog call is one transaction. A transaction that loses a race (SQLite still busy after
its timeout, a PostgreSQL serialization failure or deadlock) or a connection that drops is
retried with jittered backoff; the calls are idempotent, so a retry never double-counts.

Any other database failure is a `PondStorageError` naming the catalog and what to do (a full
disk above all), never a driver's exception. A SQLite file deleted or replaced while it is open
would let writes go on into the unlinked file and vanish: each transaction first checks that the
file is still the one opened, and fails the call when it is not.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from pond_core.catalog.engine import WRITE_OPTION, mask, scrub_secret
from pond_core.errors import PondConfigError, PondError, PondStorageError, PondTransientError

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
        self._file = _sqlite_file(engine)
        self._opened: _FileIdentity | None = None  # the SQLite file as the first ping found it

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
                if self._file is not None and self._opened is None:
                    self._opened = _FileIdentity.of(self._file)
                return
            except (DBAPIError, OSError) as exc:
                if self.disk_full(exc):
                    raise self.failed(exc) from None
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
        self._check_file()
        failures = {CONNECT: 0, RACE: 0}
        started = time.monotonic()
        while True:
            try:
                return self._once(work, write)
            except (_ConnectFailed, DBAPIError) as exc:
                kind = self._transient(exc)
                if kind is None:
                    raise self.failed(exc) from None
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

    def _check_file(self) -> None:
        if self._file is None or self._opened is None:
            return
        now = _FileIdentity.of(self._file)
        if now != self._opened:
            what = "deleted" if now is None else "replaced by another file"
            raise PondStorageError(
                f"catalog at {mask(self.engine.url)}: its file {self._file} was {what} while pond used it, so "
                "nothing more can be recorded there. Restore the file (and do not delete a catalog while pond "
                "runs), then run the command again; committed stages are kept and not run again"
            )

    def failed(self, exc: BaseException) -> PondError:
        """A database failure that a retry cannot cure, as a pond error saying what to do."""
        cause = self.cause(exc)
        if self.disk_full(exc):
            where = f" ({os.path.dirname(self._file)})" if self._file else ""
            return PondStorageError(
                f"catalog at {mask(self.engine.url)}: the disk holding it is full{where}: {cause}. Free space "
                "there (or point catalog_url at a disk with room), then resume the run"
            )
        return PondStorageError(f"catalog at {mask(self.engine.url)} failed: {cause}")

    def disk_full(self, exc: BaseException) -> bool:
        """SQLite says "database or disk is full", or only "disk I/O error" when it could not even
        create its WAL files: then the file system's free space tells."""
        cause = self.cause(exc).lower()
        if "disk is full" in cause or "no space left" in cause:
            return True
        if self._file is None:
            return False
        try:
            return os.statvfs(os.path.dirname(self._file)).f_bavail == 0
        except OSError:
            return False

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


@dataclasses.dataclass(frozen=True)
class _FileIdentity:
    device: int
    inode: int

    @staticmethod
    def of(path: str) -> _FileIdentity | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return _FileIdentity(st.st_dev, st.st_ino)


def _sqlite_file(engine: Engine) -> str | None:
    """The absolute path of a file-backed SQLite catalog, else None."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or str(url.database).startswith("file:"):
        return None
    return os.path.abspath(str(url.database))


class _ConnectFailed(Exception):
    def __init__(self, error: DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


def _sleep(failures: int, base: float = 0.02, cap: float = 1.0) -> None:
    time.sleep(random.uniform(0, min(cap, base * 2 ** min(failures, 10))))
