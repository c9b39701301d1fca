"""The exceptions pond raises, split by what a caller should do about them.

Orchestrators decide retries from the class alone: a `PondTransientError` is worth retrying
(a worker died, memory ran out, a network call timed out); every other `PondError` is a fact
about the input, the SQL or the configuration and fails at once.

`user_call` marks the public calls of the Python API (DataFrame actions, a session's reads
and SQL): a pond error inside one is raised again from that call, with pond's own frames (the
scheduler, futures, retries) cut, so a user reads one short traceback ending in the cause. The
full chain goes to the `pond` logger at DEBUG.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

_Call = TypeVar("_Call", bound=Callable[..., Any])
log = logging.getLogger("pond")


class PondError(Exception):
    """Base class of every error pond raises on purpose."""


class PondConfigError(PondError, ValueError):
    """A setting, argument or connection is wrong: fix the call, do not retry."""


class PondInputError(PondError):
    """An input cannot be read: a missing path, an empty glob, a corrupt or mistyped file."""


class PondSqlError(PondError):
    """A SQL statement failed to bind or run; the message carries the SQL text."""


class PondDataError(PondError):
    """The data broke a rule at run time: a partition key out of range, a UDF that raised."""


class PondSerializationError(PondError):
    """A plan or a Python function cannot be serialised for another process."""


class PondTransientError(PondError):
    """A failure that a retry may cure: a lost worker, memory exhaustion, a flaky network."""


class PondRunBusyError(PondConfigError, PondTransientError):
    """Another live driver runs this stage of this run (it holds the stage's lease): nothing
    ran here. Retryable, so an orchestrator's retry that met its zombie predecessor tries again
    later; the CLI reports it as a refused call (exit 2)."""


class PondNodeLostError(PondTransientError):
    """The machine (Ray node) running a task died; the task runs again on another node."""


class PondOutOfMemoryError(PondTransientError):
    """A task ran out of memory: DuckDB could not stay within its limit, or the task's worker was
    killed (by Ray's memory monitor or the kernel's OOM killer). Retried with more memory."""


class PondResourceError(PondError):
    """A task failed for lack of memory even with the most memory a task may have: retrying the
    same work cannot help; give tasks more memory or split the work into more partitions."""


class PondInterruptedError(PondError):
    """The run was interrupted (Ctrl-C on the driver) while this stage ran: its tasks were
    stopped and nothing of it was committed. Resume the run to finish it."""


class PondStorageError(PondError):
    """Storage refused an operation: no credentials, a wrong endpoint, a missing bucket, access denied."""


class PondInternalError(PondError):
    """An unexpected failure inside pond (a bug, a cancelled task); the message says where."""


def is_retryable(error: BaseException) -> bool:
    """True when `error` is worth another attempt."""
    return isinstance(error, PondTransientError)


def user_call(func: _Call) -> _Call:
    """Raise a PondError met inside `func` from `func`'s caller's view: same exception (kind,
    message, `is_retryable`), without the internal frames and the chained DuckDB/futures errors
    that repeat its message. Other exceptions (pond's bugs) keep their full traceback."""

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PondError as error:
            if error.__traceback__ is not None and error.__traceback__.tb_next is not None:
                log.debug("pond error in %s", func.__qualname__, exc_info=error)
            raise error.with_traceback(None) from None

    return cast(_Call, call)
