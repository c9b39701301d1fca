"""Pipelines the Prefect tests run, addressed as `prefect_pipelines:<name>`.

Functions here are pickled by value, so Ray workers run them without this test folder on
their path.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import cloudpickle

from pond_core.errors import PondTransientError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

SCHEMA = {"customer_id": "BIGINT", "segment": "VARCHAR", "country": "VARCHAR"}


def customers(sp: Any, source_root: str) -> Any:
    return sp.read_parquet(os.path.join(source_root, "customers.parquet"))


def flaky(sp: Any, source_root: str, marker: str) -> Any:
    """Fails once with a transient error (until `marker` exists), then succeeds."""

    def once(row: dict) -> dict:
        if not os.path.exists(marker):
            with open(marker, "w") as fh:
                fh.write("failed once")
            raise PondTransientError("flaky service: try again")
        return row

    return customers(sp, source_root).map(once, schema=SCHEMA)


def broken(sp: Any, source_root: str) -> Any:
    """A UDF that raises: a data error, never retried."""

    def boom(row: dict) -> dict:
        raise ValueError(f"bad customer {row['customer_id']}")

    return customers(sp, source_root).map(boom, schema=SCHEMA)


def chatty(sp: Any, source_root: str, npartitions: int = 2) -> Any:
    """Logs one line per partition from inside the partition task."""

    def speak(batch: Any) -> Any:
        logging.getLogger("pond.udf").info("hello from pid %d, %d rows", os.getpid(), batch.num_rows)
        return batch

    return customers(sp, source_root).repartition(npartitions, hash_by="customer_id").map_batches(speak)


def slow(sp: Any, source_root: str, seconds: float, beat_dir: str) -> Any:
    """Each partition sleeps `seconds`, writing a heartbeat file named by its pid."""

    def crawl(batch: Any) -> Any:
        beat = os.path.join(beat_dir, f"{os.getpid()}.beat")
        deadline = time.time() + seconds
        while time.time() < deadline:
            with open(beat, "w") as fh:
                fh.write(str(time.time()))
            time.sleep(0.2)
        return batch

    return customers(sp, source_root).repartition(2, hash_by="customer_id").map_batches(crawl)


def broken_midway(sp: Any, source_root: str) -> Any:
    """Repartition (runs), a UDF that raises (a data error), then two more stages that cannot run."""

    def boom(row: dict) -> dict:
        raise ValueError(f"bad customer {row['customer_id']}")

    by_customer = customers(sp, source_root).repartition(2, hash_by="customer_id")
    broken_rows = by_customer.map(boom, schema=SCHEMA)
    by_segment = broken_rows.repartition(2, hash_by="segment")
    return sp.partial_sql("SELECT segment, count(*) AS n FROM {0} GROUP BY ALL", by_segment)
