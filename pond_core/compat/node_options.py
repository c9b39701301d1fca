"""The per-operation options smallpond's DataFrame methods pass to its nodes (`**kwargs`).

smallpond hands every method's `**kwargs` to the logical node it builds (`SqlEngineNode`,
`ArrowBatchNode`, the partition nodes). pond accepts each of those options so a smallpond program
runs unchanged, honours those that mean something here, and rejects any other keyword by name
(a typo must not pass silently). docs/smallpond.md lists them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pond_core.errors import PondConfigError

# Honoured: the stage's per-task DuckDB threads and memory, its name, and the SQL's UDFs.
HONOURED = ("cpu_limit", "memory_limit", "output_name", "udfs")

# Accepted and ignored, each with the reason docs/smallpond.md gives.
IGNORED = {
    "gpu_limit": "pond schedules no GPUs",
    "output_path": "intermediate results live under the job's data root; write_parquet writes datasets",
    "cpu_overcommit_ratio": "threads are cpu_limit exactly",
    "memory_overcommit_ratio": "memory is memory_limit exactly",
    "per_thread_output": "pond chooses its intermediate files",
    "materialize_output": "every stage's result is materialized (that is how a rerun resumes)",
    "materialize_in_memory": "DuckDB streams the result to Parquet",
    "relax_memory_if_oom": "pond retries a task that ran out of memory with twice the memory",
    "batched_processing": "DuckDB spills instead of batching",
    "enable_temp_directory": "every task has a spill directory",
    "extension_paths": "load extensions with udfs=[...] or a set-up statement",
    "udf_module_paths": "register Python UDFs with udfs=[...]",
    "parquet_row_group_size": "intermediate Parquet uses DuckDB's defaults",
    "parquet_dictionary_encoding": "intermediate Parquet uses DuckDB's defaults",
    "parquet_compression": "intermediate Parquet is Snappy",
    "parquet_compression_level": "intermediate Parquet is Snappy",
    "background_io_thread": "DuckDB reads ahead itself",
    "streaming_batch_size": "use map_batches(batch_size=...)",
    "secs_checkpoint_interval": "a task is the unit of resume",
    "use_duckdb_reader": "DuckDB always reads",
    "engine_type": "DuckDB runs every step",
    "dimension": "pond numbers partitions itself ({__data_partition__})",
    "nested": "pond numbers partitions itself",
    "shuffle_only": "a repartition writes every column",
    "drop_partition_column": "repartition(by=...) keeps its columns",
    "use_parquet_writer": "exchanges are written by DuckDB",
    "hive_partitioning": "read hive layouts with read_parquet(hive_partitioning=True)",
}

ACCEPTED = frozenset(HONOURED) | frozenset(IGNORED)


class UnknownOptionError(PondConfigError, TypeError):
    """A keyword no smallpond node takes: a TypeError, as in smallpond, and a pond config error."""


@dataclasses.dataclass(frozen=True)
class NodeOptions:
    """What pond takes from one operation's smallpond options."""

    cpu_limit: int | None = None
    memory_limit: int | None = None
    output_name: str | None = None
    udfs: tuple[Any, ...] | None = None

    @classmethod
    def parse(cls, method: str, kwargs: Mapping[str, Any]) -> NodeOptions:
        unknown = sorted(set(kwargs) - ACCEPTED)
        if unknown:
            import difflib

            names = ", ".join(repr(k) for k in unknown)
            close = difflib.get_close_matches(unknown[0], sorted(ACCEPTED), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownOptionError(
                f"{method}() got unexpected keyword argument(s) {names}{hint}; smallpond's node options accepted here: "
                f"{', '.join(sorted(ACCEPTED))}"
            )
        cpu = kwargs.get("cpu_limit")
        if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 1):
            raise PondConfigError(f"{method}(cpu_limit=...) takes an integer >= 1, got {cpu!r}")
        memory = kwargs.get("memory_limit")
        if memory is not None:
            from pond_core.settings import parse_bytes

            memory = parse_bytes(memory)
        udfs = kwargs.get("udfs")
        return cls(cpu, memory, kwargs.get("output_name"), tuple(udfs) if udfs else None)
