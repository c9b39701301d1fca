"""Pipelines the service-mode tests compile in the client venv and the pond service runs.

The module is pickled by value (like prefect_pipelines), so the service's Ray workers run its
UDFs without this test folder on their path.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import cloudpickle
from prefect_pipelines import SCHEMA, flaky  # noqa: F401 - `service_pipelines:flaky` runs the in-process tests' pipeline
from prefect_pipelines import customers as _customers

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _crawl(seconds: float, beat_dir: str) -> Any:
    """A batch UDF that takes `seconds`, writing a heartbeat file (named by its pid) meanwhile."""

    def crawl(batch: Any) -> Any:
        beat = os.path.join(beat_dir, f"{os.getpid()}.beat")
        deadline = time.time() + seconds
        while time.time() < deadline:
            with open(beat, "w") as fh:
                fh.write(str(time.time()))
            time.sleep(0.2)
        return batch

    return crawl


def slow(sp: Any, source_root: str, seconds: float, beat_dir: str) -> Any:
    """One stage of two partitions, each `seconds` long, leaving heartbeats."""
    return _customers(sp, source_root).repartition(2, hash_by="customer_id").map_batches(_crawl(seconds, beat_dir))


def fan_in(sp: Any, source_root: str, branches: int, seconds: float, beat_dir: str) -> Any:
    """`branches` independent stages, then one stage that
    counts their rows: the branches wait on the service at the same time (each branch stage
    crawls over its rows for `seconds`, then hash-repartitions them in two)."""
    frames = [
        _customers(sp, source_root)
        .filter(f"customer_id % {branches} = {i}").map_batches(_crawl(seconds, beat_dir))
        .repartition(2, hash_by="customer_id")
        .alias(f"branch_{i}")
        for i in range(branches)
    ]
    union = " UNION ALL ".join(f"SELECT customer_id FROM {{{i}}}" for i in range(branches))
    return sp.partial_sql(f"SELECT count(*) AS n FROM ({union})", *frames)


def broken_midway(sp: Any, source_root: str) -> Any:
    """Repartition (runs), a UDF that raises (a data error), then two more stages that cannot run."""

    def boom(row: dict) -> dict:
        raise ValueError(f"bad customer {row['customer_id']}")

    by_customer = _customers(sp, source_root).repartition(2, hash_by="customer_id")
    broken_rows = by_customer.map(boom, schema=SCHEMA)
    by_segment = broken_rows.repartition(2, hash_by="segment")
    return sp.partial_sql("SELECT segment, count(*) AS n FROM {0} GROUP BY ALL", by_segment)
