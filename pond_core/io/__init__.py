"""Storage: local and S3 filesystems, DuckDB's S3 setup, path resolution, hive layouts, sinks.

See docs/storage.md for the guarantees each backend gives and why.
"""

from pond_core.io.duckdb_setup import configure_duckdb, duckdb_connect_config
from pond_core.io.filesystems import get_filesystem
from pond_core.io.fs import FileInfo, FileSystem, join_path
from pond_core.io.hive import (
    detect_hive_partitioning,
    hive_read_options,
    infer_hive_types,
    prune_files,
    validate_partition_value,
)
from pond_core.io.manifest import MANIFEST_NAME, read_dataset_files
from pond_core.io.options import StorageOptions
from pond_core.io.paths import resolve_paths
from pond_core.io.sink import SinkWriter
from pond_core.specs.sink import SinkSpec

__all__ = [
    "MANIFEST_NAME",
    "FileInfo",
    "FileSystem",
    "SinkSpec",
    "SinkWriter",
    "StorageOptions",
    "configure_duckdb",
    "duckdb_connect_config",
    "detect_hive_partitioning",
    "get_filesystem",
    "hive_read_options",
    "infer_hive_types",
    "join_path",
    "prune_files",
    "read_dataset_files",
    "resolve_paths",
    "validate_partition_value",
]
