"""Pipelines used only by the Airflow tests (imported by DAGs, tasks and detached workers)."""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any

import cloudpickle
import pyarrow as pa

from pond_core.errors import PondTransientError

# Ray workers of the session's shared cluster cannot import this tests-only module: ship its
# functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def fail_once(marker: str, table: pa.Table) -> pa.Table:
    """A transient failure on the first call, as a lost worker would cause."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("failed once")
        raise PondTransientError("injected: the worker running this partition was lost")
    return table


def reject_all(table: pa.Table) -> pa.Table:
    raise ValueError("amount must not be negative (injected data error)")


def sleep_then(seconds: float, table: pa.Table) -> pa.Table:
    time.sleep(seconds)
    return table


def beat_then_sleep(beat_dir: str, seconds: float, table: pa.Table) -> pa.Table:
    """Leave `<pid>.beat` in beat_dir (so a test knows which process runs it), then sleep."""
    with open(os.path.join(beat_dir, f"{os.getpid()}.beat"), "w") as f:
        f.write("running")
    time.sleep(seconds)
    return table


def _orders(sp: Any, source_root: str, ds: str) -> Any:
    return sp.read_parquet(os.path.join(source_root, "orders", f"dt={ds}", "*.parquet"), hive_partitioning=False)


def _totals(sp: Any, frame: Any, ds: str) -> Any:
    return sp.partial_sql(
        f"SELECT DATE '{ds}' AS dt, customer_id, sum(amount) AS total, count(*) AS orders FROM {{0}} GROUP BY ALL", frame
    )


def flaky_totals(sp: Any, ds: str, source_root: str, output_root: str, marker: str) -> Any:
    """Per-customer totals of one day; the second stage fails once with a transient error."""
    by_customer = _orders(sp, source_root, ds).repartition(2, hash_by="customer_id")
    checked = by_customer.map_batches(functools.partial(fail_once, marker))
    return _totals(sp, checked, ds).sink_parquet(output_root, partition_by="dt", mode="overwrite_partitions")


def bad_totals(sp: Any, ds: str, source_root: str, output_root: str) -> Any:
    """Per-customer totals whose second stage meets data it must reject."""
    by_customer = _orders(sp, source_root, ds).repartition(2, hash_by="customer_id")
    return _totals(sp, by_customer.map_batches(reject_all), ds).sink_parquet(output_root, partition_by="dt", mode="overwrite_partitions")


def slow_copy(sp: Any, source_root: str, seconds: float, beat_dir: str | None = None) -> Any:
    """A stage that sleeps per partition: long enough to be killed."""
    step = functools.partial(beat_then_sleep, beat_dir, seconds) if beat_dir else functools.partial(sleep_then, seconds)
    return sp.read_parquet(os.path.join(source_root, "customers.parquet")).map_batches(step)


def checked_totals(sp: Any, ds: str, source_root: str, output_root: str, strict: bool = False) -> Any:
    """Per-customer totals of one day with checks before publish: a row count that passes and
    "few orders per customer", which the example data breaks (a warning unless `strict`)."""
    from pond_core.checks import expression, row_count

    checks = [row_count(min=1), expression("orders < 3", warn=not strict, name="few orders per customer")]
    totals = _totals(sp, _orders(sp, source_root, ds), ds)
    return totals.sink_parquet(output_root, partition_by="dt", mode="overwrite_partitions", checks=checks)

