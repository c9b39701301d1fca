"""The pipeline the scale-out tests run on the multi-node rig (Ray workers import it by name).

`probed` sums a table by key after a hash repartition, then passes each partition through a
`Probe`: a Python step that records where it ran (node, pid) in marker files and can be told to
be slow, to straggle once, or to hold a lot of memory, so a test can cause a fault at a known
moment and count what happened.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import duckdb

FILES = 8
ROWS_PER_FILE = 5_000
KEYS = 1_000


def write_source(path: str) -> int:
    """FILES Parquet files: unique ids, `key` = id % KEYS, amount = id * 3."""
    os.makedirs(path, exist_ok=True)
    con = duckdb.connect()
    try:
        for f in range(FILES):
            con.execute(
                f"COPY (SELECT {f * ROWS_PER_FILE} + i AS id, ({f * ROWS_PER_FILE} + i) % {KEYS} AS key, "
                f"(({f * ROWS_PER_FILE} + i) * 3)::BIGINT AS amount FROM range({ROWS_PER_FILE}) t(i)) "
                f"TO '{os.path.join(path, f'part-{f}.parquet')}' (FORMAT parquet)"
            )
    finally:
        con.close()
    return FILES * ROWS_PER_FILE


class Probe:
    """A pass-through `map_batches` step that leaves `started-*`/`finished-*` markers."""

    def __init__(self, marker_dir: str, seconds: float, straggle_key: int, straggle_seconds: float, hog_mb: int, hog_key: int) -> None:
        self.marker_dir = marker_dir
        self.seconds = seconds
        self.straggle_key = straggle_key
        self.straggle_seconds = straggle_seconds
        self.hog_mb = hog_mb
        self.hog_key = hog_key

    def __call__(self, batch: Any) -> Any:
        keys = set(batch.column("key").to_pylist())
        token = uuid.uuid4().hex
        mark = {"node": _node_id(), "pid": os.getpid(), "keys": min(keys, default=-1), "straggler": False}
        if self.straggle_key in keys and _claim(os.path.join(self.marker_dir, "straggler-claimed")):
            mark["straggler"] = True
        self._write(f"started-{token}.json", mark)
        if self.hog_mb and (self.hog_key < 0 or self.hog_key in keys):
            _hold_memory(self.hog_mb << 20, seconds=2.0)
        time.sleep(self.straggle_seconds if mark["straggler"] else self.seconds)
        self._write(f"finished-{token}.json", mark)
        return batch

    def _write(self, name: str, data: dict[str, Any]) -> None:
        os.makedirs(self.marker_dir, exist_ok=True)
        partial = os.path.join(self.marker_dir, f".{name}")
        with open(partial, "w") as f:
            json.dump(data, f)
        os.rename(partial, os.path.join(self.marker_dir, name))  # readers never see half a marker


def probed(
    sp: Any,
    source: str,
    output_root: str,
    marker_dir: str,
    partitions: int = 8,
    seconds: float = 0.0,
    straggle_key: int = -1,
    straggle_seconds: float = 0.0,
    hog_mb: int = 0,
    hog_key: int = -1,
) -> Any:
    by_key = sp.read_parquet(os.path.join(source, "*.parquet")).repartition(partitions, hash_by="key")
    summed = sp.partial_sql("SELECT key, count(*) AS n, sum(amount) AS total, min(id) AS first_id FROM {0} GROUP BY key", by_key)
    probe = Probe(marker_dir, seconds, straggle_key, straggle_seconds, hog_mb, hog_key)
    return summed.map_batches(probe, batch_size=KEYS).sink_parquet(output_root)


def markers(marker_dir: str, kind: str) -> list[dict[str, Any]]:
    """The `started` or `finished` markers left so far."""
    if not os.path.isdir(marker_dir):
        return []
    found = []
    for name in sorted(os.listdir(marker_dir)):
        if name.startswith(f"{kind}-"):
            with open(os.path.join(marker_dir, name)) as f:
                found.append({**json.load(f), "token": name.split("-", 1)[1]})
    return found


def _node_id() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:
        pass
    return "local"


def _claim(path: str) -> bool:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def _hold_memory(nbytes: int, seconds: float) -> None:
    block = bytearray(nbytes)
    block[:: 1 << 12] = b"\x01" * len(range(0, nbytes, 1 << 12))  # touch every page: make it resident
    time.sleep(seconds)
    del block


SPILL_QUERY = "SELECT i % 3000000 AS k, count(*) AS n, any_value(repeat('x', 40)) AS pad FROM range(6000000) t(i) GROUP BY k"


def spilling(sp: Any) -> Any:
    """One partition whose aggregation and write need more than a 300 MiB task limit unless it spills."""
    return sp.partial_sql(SPILL_QUERY)


STATE_QUERY = (
    "SELECT key, (SELECT count(*) FROM duckdb_secrets()) AS secrets, "
    "(SELECT count(*) FROM duckdb_functions() WHERE function_name = 'plus_one') AS udfs, "
    "current_setting('memory_limit') AS memory_limit, current_setting('threads')::INT AS threads FROM {0}"
)


def worker_state(sp: Any, output_root: str, marker_dir: str, with_udf: bool = False) -> Any:
    """Four partitions that report the DuckDB state their task sees (secrets, a UDF of an
    earlier task, memory limit, threads) and leave a Probe marker naming the worker's pid."""
    from pond_core.udfs import udf

    keys = sp.from_items([{"key": i} for i in range(16)]).repartition(4, hash_by="key")
    if with_udf:
        plus_one = udf(["BIGINT"], "BIGINT", name="plus_one")(lambda v: v + 1)
        keys = sp.partial_sql("SELECT plus_one(key) - 1 AS key FROM {0}", keys, udfs=[plus_one])
    state = sp.partial_sql(STATE_QUERY, keys)
    return state.map_batches(Probe(marker_dir, 0.0, -1, 0.0, 0, -1), batch_size=KEYS).sink_parquet(output_root)
