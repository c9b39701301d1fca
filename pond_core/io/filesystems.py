"""`get_filesystem`: the filesystem that serves a path or URL (local, or S3 through pyarrow).

Apart from `fs.py` (the interface and the local implementation) so that the S3 filesystem,
which builds on that interface, is imported only when an s3:// URL is used.
"""

from __future__ import annotations

from pond_core.errors import PondConfigError
from pond_core.io.fs import FileSystem, LocalFileSystem, is_s3
from pond_core.io.options import StorageOptions


def get_filesystem(url_or_path: str, options: StorageOptions | None = None) -> FileSystem:
    """The filesystem that serves `url_or_path`."""
    if is_s3(url_or_path):
        from pond_core.io.s3 import s3_filesystem

        return s3_filesystem(options or StorageOptions.from_env(), url_or_path)
    if "://" in url_or_path and not url_or_path.startswith("file://"):
        raise PondConfigError(f"unsupported storage scheme in {url_or_path!r} (use a local path or s3://)")
    return LocalFileSystem()
