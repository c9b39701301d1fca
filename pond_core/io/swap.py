"""Replace a directory by another in one step where the kernel allows it.

Linux's renameat2(RENAME_EXCHANGE) swaps two paths atomically on local filesystems (ext4,
xfs, btrfs, tmpfs). NFS, Lustre and some FUSE mounts refuse it (EINVAL); then the portable
fallback is two renames, with a window of microseconds in which the target is absent. An
intent file written first lets the next writer finish a swap that a crash interrupted.

`ATOMIC_EXCHANGE = False` selects the fallback even where the kernel could exchange, so tests
cover both paths on one machine.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os

from pond_core.io import crashpoints

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
INTENT = "swap-intent.json"
ATOMIC_EXCHANGE = True  # False: always the two-rename fallback (as on NFS or Lustre)

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _renameat2 = getattr(_libc, "renameat2", None)
except OSError:  # pragma: no cover - no libc (not Linux)
    _renameat2 = None


def exchange(a: str, b: str) -> bool:
    """Atomically swap paths `a` and `b`; False when this filesystem or kernel cannot."""
    if _renameat2 is None or not ATOMIC_EXCHANGE:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), a, None, b)


def replace_dir(new: str, target: str, trash: str, intent_dir: str | None = None) -> None:
    """Put directory `new` at `target`; the previous `target` (if any) ends up at `trash`.

    With `intent_dir`, a crash between the fallback's two renames is finished by the next
    writer (`finish_interrupted_swap`); the intent is removed once the swap is done.
    """
    intent = os.path.join(intent_dir, INTENT) if intent_dir is not None else None
    if os.path.lexists(target):
        if exchange(new, target):
            crashpoints.reached("exchanged")
            os.rename(new, trash)  # `new` now holds the old contents
            crashpoints.reached("old contents to trash")
            return
        if intent is not None:
            with open(intent + ".tmp", "w") as fh:
                json.dump({"new": new, "target": target, "trash": trash}, fh)
            os.replace(intent + ".tmp", intent)
            crashpoints.reached("swap intent written")
        os.rename(target, trash)
        crashpoints.reached("old contents to trash, target absent")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.rename(new, target)
    crashpoints.reached("new contents in place")
    if intent is not None and os.path.lexists(intent):
        os.unlink(intent)


def finish_interrupted_swap(staging: str) -> bool:
    """If a crash fell between the two renames, roll forward: the new tree is complete."""
    path = os.path.join(staging, INTENT)
    try:
        with open(path) as fh:
            intent = json.load(fh)
    except (OSError, ValueError):
        return False
    if os.path.lexists(intent["target"]) or not os.path.isdir(intent["new"]):
        os.unlink(path)  # the swap finished (or never started): nothing to do, ever
        return False
    os.makedirs(os.path.dirname(intent["target"]), exist_ok=True)
    os.rename(intent["new"], intent["target"])
    os.unlink(path)
    return True


def exchange_supported(folder: str) -> bool:
    """Whether directories in `folder` can be swapped atomically (ignores ATOMIC_EXCHANGE)."""
    import tempfile

    if _renameat2 is None:
        return False
    a, b = tempfile.mkdtemp(dir=folder), tempfile.mkdtemp(dir=folder)
    try:
        rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        return rc == 0
    finally:
        os.rmdir(a)
        os.rmdir(b)
