"""Replace a directory by another in one step where the kernel allows it.

Linux's renameat2(RENAME_EXCHANGE) swaps two paths atomically on local filesystems (ext4,
xfs, btrfs, tmpfs). NFS, Lustre and FUSE mounts may refuse it (EINVAL); then the portable
fallback is two renames, with a window of a few microseconds in which the target is absent.
"""

from __future__ import annotations

import ctypes
import errno
import os

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2

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


def replace_dir(new: str, target: str, trash: str) -> None:
    """Put directory `new` at `target`; the previous `target` (if any) ends up at `trash`."""
    if os.path.lexists(target):
        if exchange(new, target):
            os.rename(new, trash)  # `new` now holds the old contents
            return
        os.rename(target, trash)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.rename(new, target)
