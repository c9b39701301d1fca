"""A full disk as a pond error: which disk, which path, and what the stage left behind.

A write that runs out of space surfaces as an `OSError` (ENOSPC, EDQUOT) from pond's own file
operations, or as a DuckDB error "No space left on device" from a task. Neither says what a
user needs: that the disk is full (not that pond has a bug), which disk, and whether the
output changed. A stage publishes its output in one commit at its end, so a stage that failed
before that commit published nothing: the dataset keeps its previous contents.
"""

from __future__ import annotations

import errno
import os

from pond_core.errors import PondStorageError

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXTS = ("no space left on device", "disk quota exceeded")  # as DuckDB words ENOSPC, EDQUOT


def is_disk_full(exc: BaseException) -> bool:
    """True when `exc`, or an exception it was raised from, is a full disk."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain of causes, bounded
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in _FULL_ERRNOS:
            return True
        if any(text in str(seen).lower() for text in _FULL_TEXTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def disk_full_error(stage: str, output: str, exc: BaseException, published: bool) -> PondStorageError:
    """The error a stage that ran out of disk space raises instead of `exc`."""
    written = _failed_path(exc) or output
    where = f"the disk mounted at {mount_point(written)}" if "://" not in written else written
    outcome = (
        f"nothing was published: {output} keeps its previous contents"
        if not published
        else f"{output} was published before the disk filled; only the run's own records are incomplete"
    )
    return PondStorageError(
        f"stage {stage}: no space left on {where} (writing {written}); {outcome}. Free space there, or give the "
        f"output (or data_root) a disk with room, then resume the run. ({type(exc).__name__}: {_first_line(exc)})"
    )


def mount_point(path: str) -> str:
    """The mount point of the file system holding `path` (or the nearest folder that exists)."""
    folder = os.path.abspath(path)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    while not os.path.ismount(folder):
        folder = os.path.dirname(folder)
    return folder


def _failed_path(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.filename:
            return str(seen.filename)
        seen = seen.__cause__ or seen.__context__
    return None


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
