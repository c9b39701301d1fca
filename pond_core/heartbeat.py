"""Stage heartbeats: a driver stamps each stage it runs every `POND_HEARTBEAT_SECONDS` (30 s),
and a running stage whose last stamp is older than three intervals is *stale*: the process that
ran it is gone (killed, its machine lost) or stuck. `pond resume RUN_ID` finishes such a run.

The interval is read from the environment each time, by drivers and by readers alike, so set it
the same everywhere if you change it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable

from pond_core.errors import PondConfigError

ENV = "POND_HEARTBEAT_SECONDS"
DEFAULT_SECONDS = 30.0
MISSED_BEATS = 3

log = logging.getLogger("pond.catalog")


def heartbeat_seconds() -> float:
    raw = os.environ.get(ENV)
    if raw is None or raw == "":
        return DEFAULT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise PondConfigError(f"{ENV} must be a positive number of seconds, not {raw!r}")
    return seconds


def stale_before(now: dt.datetime) -> dt.datetime:
    """A running stage last stamped before this moment is stale."""
    return now - dt.timedelta(seconds=MISSED_BEATS * heartbeat_seconds())


def is_stale(status: str, heartbeat_at: dt.datetime | None, cutoff: dt.datetime) -> bool:
    # A stage recorded before heartbeats existed (no stamp) is not called stale: nothing says so.
    return status == "running" and heartbeat_at is not None and heartbeat_at < cutoff


class Heartbeat:
    """Calls `beat` every interval on a daemon thread until `stop()`. A failed beat (the
    catalog briefly unreachable) is logged, never raised: it must not fail the stage."""

    def __init__(self, beat: Callable[[], None], name: str) -> None:
        self._beat = beat
        self._interval = heartbeat_seconds()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pond-heartbeat-{name}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._beat()
            except Exception as exc:
                log.warning("heartbeat %s failed (will try again): %s", self._thread.name, exc)
