"""Storage: local and S3 filesystems, DuckDB's S3 setup, path resolution, hive layouts, sinks."""

from pond_core.io.duckdb_setup import configure_duckdb
from pond_core.io.fs import FileInfo, FileSystem, get_filesystem, join_path
from pond_core.io.options import StorageOptions
from pond_core.io.paths import resolve_paths

__all__ = [
    "FileInfo",
    "FileSystem",
    "StorageOptions",
    "configure_duckdb",
    "get_filesystem",
    "join_path",
    "resolve_paths",
]
