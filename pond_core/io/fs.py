"""One filesystem interface over local POSIX paths and s3:// URLs.

Paths are strings: absolute local paths, or full `s3://bucket/key` URLs. Every method takes
and returns that form, so callers never branch on the backend.
"""

from __future__ import annotations

import errno
import glob as globlib
import os
import posixpath
import shutil
import stat
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pond_core.errors import PondConfigError, PondError, PondStorageError
from pond_core.io import threefs

GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class FileInfo:
    """A listed file. Size and modification time are its identity for reuse (execute/input_key.py):
    listing already returns them, so knowing whether a file changed costs no extra request."""

    path: str
    size: int
    mtime_ns: int | None = None  # local: st_mtime_ns; S3: LastModified (one-second resolution)


class FileSystem(ABC):
    """The storage operations pond needs; see docs/storage.md for each backend's guarantees."""

    scheme: str

    def glob(self, pattern: str) -> list[str]:
        """Sorted paths of the files matching `pattern` (`*`, `?`, `[..]`, `**` across dirs)."""
        return [f.path for f in self.glob_files(pattern)]

    @abstractmethod
    def glob_files(self, pattern: str) -> list[FileInfo]:
        """The files matching `pattern`, sorted by path, with their sizes and times."""

    @abstractmethod
    def list_files(self, prefix: str, recursive: bool = True) -> list[FileInfo]:
        """Files under the directory `prefix` (or the file itself), sorted by path."""

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def isdir(self, path: str) -> bool: ...

    @abstractmethod
    def makedirs(self, path: str) -> None: ...

    @abstractmethod
    def read_bytes(self, path: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, path: str, data: bytes, durable: bool = True) -> None:
        """Write a whole file; a reader sees the old content or the new, never a part.
        `durable=False` skips the fsyncs: the file survives a killed process but maybe not a
        power cut (for records whose loss only costs work done again)."""

    @abstractmethod
    def rename(self, src: str, dst: str) -> None:
        """Move a file or directory. Atomic on POSIX; copy-then-delete on S3."""

    @abstractmethod
    def link_or_copy(self, src: str, dst: str) -> None:
        """Make `dst` a copy of the file or tree `src` as cheaply as the backend allows."""

    @abstractmethod
    def delete(self, path: str, recursive: bool = False) -> None:
        """Remove a file or (with recursive) a tree; a missing path is not an error."""


def is_s3(path: str) -> bool:
    return path.startswith(("s3://", "s3a://"))


def has_glob(path: str) -> bool:
    return any(c in GLOB_CHARS for c in path)


S3_MAX_KEY = 1024  # bytes of UTF-8, S3's limit on an object key


def check_path_length(path: str, what: str, room: int = 0, error: type[PondError] = PondConfigError) -> None:
    """Raise `error` when `path`, with `room` more bytes that pond adds below it (staging,
    file names), is longer than its storage allows: on a local filesystem a name over NAME_MAX
    or the whole over PATH_MAX, on S3 a key over 1024 bytes. Called before anything is created,
    so an over-long path leaves no folders behind. `what` names the path in the message."""
    label = f"{what} {shorten(path)}"
    more = f" (and pond adds up to {room} below it)" if room else ""
    if is_s3(path):
        key = len(path.split("://", 1)[1].partition("/")[2].encode())
        if key + room > S3_MAX_KEY:
            raise error(f"{label} is too long for S3: a key of {key} bytes{more}; S3 allows {S3_MAX_KEY}. Use a shorter path")
        return
    local = normalize_path(path)
    name_max, path_max = _name_limits(local)
    for name in local.split("/"):
        if len(os.fsencode(name)) > name_max:
            raise error(
                f"{label} has a folder or file name of {len(os.fsencode(name))} bytes; this filesystem allows "
                f"{name_max} (NAME_MAX). Use shorter names"
            )
    size = len(os.fsencode(local))
    if size + room > path_max:
        raise error(f"{label} is too long: {size} bytes{more}; this filesystem allows {path_max} (PATH_MAX). Use a shorter path")


def shorten(path: str, keep: int = 80) -> str:
    """A path cut for a message: its start, and how long it is when cut."""
    return path if len(path) <= keep else f"{path[:keep]}... ({len(path)} characters)"


def _name_limits(path: str) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX of the filesystem holding `path` (of its nearest existing folder)."""
    folder = path
    while folder != "/" and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def normalize_path(path: str) -> str:
    """Absolute local path or canonical s3:// URL."""
    if is_s3(path):
        return "s3://" + path.split("://", 1)[1]
    if path.startswith("file://"):
        path = path[len("file://"):]
    return os.path.abspath(os.path.expanduser(path))


def join_path(base: str, *parts: str) -> str:
    """Join URL or path parts with '/'; a part may not climb out of `base` with '..'."""
    out = base.rstrip("/") or "/"
    for part in parts:
        for piece in str(part).split("/"):
            if piece in ("", "."):
                continue
            if piece == "..":
                raise PondConfigError(f"path part {part!r} would escape {base!r}")
            out = out + piece if out.endswith("/") else f"{out}/{piece}"
    return out


class LocalFileSystem(FileSystem):
    """POSIX paths, including shared mounts (NFS, Lustre, 3FS FUSE).

    Only what POSIX promises within one mount is assumed: rename(2) is atomic within a
    filesystem and fails with EXDEV across them; hard links work only within one device.
    """

    scheme = "file"

    def __init__(self, mounts_path: str = threefs.PROC_MOUNTS) -> None:
        self.mounts_path = mounts_path

    def glob_files(self, pattern: str) -> list[FileInfo]:
        found = globlib.glob(normalize_path(pattern), recursive=True)
        return sorted(_regular_files(found), key=lambda f: f.path)

    def list_files(self, prefix: str, recursive: bool = True) -> list[FileInfo]:
        root = normalize_path(prefix)
        try:
            st = os.stat(root)
        except OSError:  # missing, or not reachable: nothing to list (as os.path.isfile/isdir say)
            return []
        if stat.S_ISREG(st.st_mode):
            return [FileInfo(root, st.st_size, st.st_mtime_ns)]
        if not stat.S_ISDIR(st.st_mode):
            return []
        if not recursive:
            return sorted(_regular_files(os.path.join(root, n) for n in os.listdir(root)), key=lambda f: f.path)
        out: list[FileInfo] = []
        for dirpath, _dirs, files in os.walk(root):
            out.extend(_regular_files(os.path.join(dirpath, f) for f in files))
        return sorted(out, key=lambda f: f.path)

    def exists(self, path: str) -> bool:
        return os.path.exists(normalize_path(path))

    def isdir(self, path: str) -> bool:
        return os.path.isdir(normalize_path(path))

    def makedirs(self, path: str) -> None:
        os.makedirs(normalize_path(path), exist_ok=True)

    def read_bytes(self, path: str) -> bytes:
        with open(normalize_path(path), "rb") as fh:
            return fh.read()

    def write_bytes(self, path: str, data: bytes, durable: bool = True) -> None:
        path = normalize_path(path)
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        if durable:
            fsync_dir(parent)

    def rename(self, src: str, dst: str) -> None:
        src, dst = normalize_path(src), normalize_path(dst)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        try:
            os.rename(src, dst)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise PondStorageError(
                    f"cannot rename {src} to {dst} atomically: they are on different mounts"
                ) from None
            raise

    def link_or_copy(self, src: str, dst: str) -> None:
        src, dst = normalize_path(src), normalize_path(dst)
        if os.path.isdir(src):
            for info in self.list_files(src):
                self.link_or_copy(info.path, os.path.join(dst, os.path.relpath(info.path, src)))
            return
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if same_device(src, os.path.dirname(dst)):
            try:
                os.link(src, dst)
                return
            except OSError as exc:
                # Some FUSE and network filesystems refuse hard links; copying still works.
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
        tmp = os.path.join(os.path.dirname(dst), f".{os.path.basename(dst)}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def delete(self, path: str, recursive: bool = False) -> None:
        path = normalize_path(path)
        if os.path.islink(path) or os.path.isfile(path):
            _unlink_quietly(path)
        elif os.path.isdir(path):
            if recursive:
                try:
                    threefs.remove_tree(path, self.mounts_path)
                except FileNotFoundError:
                    pass  # someone else removed it first: the result is the same
            else:
                try:
                    os.rmdir(path)
                except OSError as exc:
                    if exc.errno == errno.ENOTEMPTY:
                        raise PondStorageError(f"cannot delete {path}: directory not empty") from None
                    if exc.errno != errno.ENOENT:
                        raise


def same_device(a: str, b: str) -> bool:
    """True when `a` and `b` (existing paths) live on one device, so rename/link can work."""
    return os.stat(a).st_dev == os.stat(b).st_dev


def fsync_dir(path: str) -> None:
    """Persist a directory's entries (a rename is durable only after this)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some network filesystems refuse fsync on directories; rename is still atomic
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def parent_of(path: str) -> str:
    if is_s3(path):
        return posixpath.dirname(path.rstrip("/"))
    return os.path.dirname(normalize_path(path).rstrip("/")) or "/"


def basename_of(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def is_hidden_part(name: str) -> bool:
    """Names that Hive, Spark and pond treat as metadata or scratch: `_x` and `.x`."""
    return name.startswith(("_", "."))


def visible(path: str, root: str) -> bool:
    """True unless a path component below `root` is hidden (staging, logs, manifests, ...)."""
    rel = path[len(root.rstrip("/")):].strip("/")
    return not any(is_hidden_part(part) for part in rel.split("/") if part)


def _regular_files(paths: Iterable[str]) -> Iterator[FileInfo]:
    """The regular files among `paths`, sized. A file another writer removed between the directory
    listing and its stat (a manifest's temp file, say) was not there: it is skipped, not an error."""
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            yield FileInfo(p, st.st_size, st.st_mtime_ns)
