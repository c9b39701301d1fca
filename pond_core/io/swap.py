"""Replace a directory by another in one step where the kernel allows it.

Linux's renameat2(RENAME_EXCHANGE) swaps two paths atomically on local filesystems (ext4,
xfs, btrfs, tmpfs). NFS, Lustre and some FUSE mounts refuse it (EINVAL); then the portable
fallback is two renames, with a window of microseconds in which the target is absent. An
intent file written first lets the next writer finish a swap that a crash interrupted.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
INTENT = "swap-intent.json"

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _renameat2 = getattr(_libc, "renameat2", None)
except OSError:  # pragma: no cover - no libc (not Linux)
    _renameat2 = None


def exchange(a: str, b: str) -> bool:
    """Atomically swap paths `a` and `b`; False when this filesystem or kernel cannot."""
    if _renameat2 is None:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), a, None, b)


def replace_dir(new: str, target: str, trash: str, intent_dir: str | None = None) -> None:
    """Put directory `new` at `target`; the previous `target` (if any) ends up at `trash`."""
    if os.path.lexists(target):
        if exchange(new, target):
            os.rename(new, trash)  # `new` now holds the old contents
            return
        if intent_dir is not None:
            with open(os.path.join(intent_dir, INTENT), "w") as fh:
                json.dump({"new": new, "target": target, "trash": trash}, fh)
        os.rename(target, trash)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.rename(new, target)


def finish_interrupted_swap(staging: str) -> bool:
    """If a crash fell between the two renames, roll forward: the new tree is complete."""
    path = os.path.join(staging, INTENT)
    try:
        with open(path) as fh:
            intent = json.load(fh)
    except (OSError, ValueError):
        return False
    if os.path.lexists(intent["target"]) or not os.path.isdir(intent["new"]):
        return False
    os.rename(intent["new"], intent["target"])
    return True
