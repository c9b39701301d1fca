"""Each attempt's pond log lines, captured in the service and served by offset.

Many attempts run at once in one service process, each on its own thread, and the runner starts
threads of its own (a thread per running stage, the stage heartbeat). A `logging.Handler` on
the `pond` logger gives a record to the attempt whose *thread tree* logged it: a thread started
by an attempt's thread (or by one of its threads) carries the attempt's tag, copied when it
starts (`tag_child_threads`, installed once per process). Threads that serve every attempt (Ray's
callbacks, the warm pool's bookkeeping) belong to none: their lines go to the service's own log.

A buffer keeps the last `max_lines` lines; offsets count every line ever written, so a client
polling with the offset it got back never sees a line twice, and one that fell behind is told
how many it missed. Secrets the service knows (the catalog's password, S3 keys) are masked in
every line.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from collections.abc import Sequence

TAG = "_pond_attempt"  # the attribute a thread's attempt buffer hides in
MAX_LINES = 10_000
MAX_LINES_PER_ANSWER = 2_000
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_install_lock = threading.Lock()
_installed = False


class LogBuffer:
    """The last `max_lines` lines of one attempt, addressed by an offset that only grows."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._end = 0  # offset after the last line
        self._lock = threading.Lock()

    def append(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            self._end += 1

    @property
    def end(self) -> int:
        """The offset after the last line written."""
        with self._lock:
            return self._end

    def read(self, offset: int, limit: int = MAX_LINES_PER_ANSWER) -> tuple[list[str], int]:
        """Lines from `offset` on (at most `limit`) and the offset to ask from next."""
        with self._lock:
            first = self._end - len(self._lines)
            offset = max(0, min(offset, self._end))
            notice = []
            if offset < first:
                notice = [f"[pond service: {first - offset} earlier log lines were dropped]"]
                offset = first
            lines = list(itertools.islice(self._lines, offset - first, offset - first + limit))
            return notice + lines, offset + len(lines)


def current_buffer() -> LogBuffer | None:
    return getattr(threading.current_thread(), TAG, None)


def tag_thread(buffer: LogBuffer | None) -> None:
    """Make this thread (and threads it starts from now on) log into `buffer`."""
    setattr(threading.current_thread(), TAG, buffer)


def tag_child_threads() -> None:
    """Patch `threading.Thread.start` (once per process) so a thread inherits the attempt tag
    of the thread that starts it: what a contextvar would do, had Python 3.11's threads copied
    the context."""
    global _installed
    with _install_lock:
        if _installed:
            return
        original = threading.Thread.start

        def start(self: threading.Thread) -> None:
            buffer = current_buffer()
            if buffer is not None and getattr(self, TAG, None) is None:
                setattr(self, TAG, buffer)
            original(self)

        threading.Thread.start = start  # type: ignore[method-assign]
        _installed = True


class AttemptLogHandler(logging.Handler):
    """Writes each `pond` record into the buffer of the attempt whose thread logged it."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter(FORMAT))
        self._secrets = [s for s in secrets if s]

    def emit(self, record: logging.LogRecord) -> None:
        buffer = current_buffer()
        if buffer is None:
            return
        try:
            text = self.format(record)
        except Exception:  # a bad format argument must not fail the stage
            self.handleError(record)
            return
        for secret in self._secrets:
            text = text.replace(secret, "***")
        for line in text.splitlines() or [""]:
            buffer.append(line)


def install(secrets: Sequence[str] = ()) -> AttemptLogHandler:
    """Capture `pond` log lines per attempt in this process (idempotent per handler)."""
    tag_child_threads()
    handler = AttemptLogHandler(secrets)
    logger = logging.getLogger("pond")
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler
