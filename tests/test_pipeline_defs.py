"""Pipelines and data the pipeline and CLI tests share (this module holds no tests).

They are importable as `tests.test_pipeline_defs:<function>`, so subprocesses (`pond run`,
`python -c`) address them exactly as users address theirs.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import duckdb
import pyarrow as pa

GATE_TIMEOUT_S = 120
ROWS_PER_PART = 2_500
PARTS = 4


def hundred_stages(sp: Any, ds: str, source_root: str, stages: int = 100) -> Any:
    """A chain of `stages` stages: SQL at every step, a hash exchange between each pair."""
    df = sp.read_parquet(os.path.join(source_root, f"dt={ds}", "*.parquet"))
    for i in range(stages - 1):
        df = df.map(f"a + {i} AS a, b").repartition(4, hash_by="a")
    return df.map("a, b")


class Gate:
    """A map_batches step that records each call and holds part `blocked_part` until a file exists.

    Calls are recorded as files `calls/part<k>-<uuid>`; the held call first writes
    `blocked-part<k>`, then waits for `<gate_dir>/open`. A module-level class pickles by
    reference, so the plan's stage ids do not depend on the process that compiled it.
    """

    def __init__(self, gate_dir: str, blocked_part: int = PARTS - 1) -> None:
        self.gate_dir = gate_dir
        self.blocked_part = blocked_part

    def __call__(self, table: pa.Table) -> pa.Table:
        parts = sorted(set(table.column("part").to_pylist()))
        os.makedirs(os.path.join(self.gate_dir, "calls"), exist_ok=True)
        for part in parts:
            open(os.path.join(self.gate_dir, "calls", f"part{part}-{uuid.uuid4().hex}"), "w").close()
        if self.blocked_part in parts:
            self._hold()
        return table

    def _hold(self) -> None:
        open(os.path.join(self.gate_dir, f"blocked-part{self.blocked_part}"), "w").close()
        deadline = time.monotonic() + GATE_TIMEOUT_S
        while not os.path.exists(os.path.join(self.gate_dir, "open")):
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {self.gate_dir} was never opened")
            time.sleep(0.05)


def gated_totals(sp: Any, source: str, output_root: str, gate_dir: str, ds: str = "2026-11-20", gate_at: str = "middle") -> Any:
    """Rows bucketed by `part` (bucket k holds part k), doubled, then written as partition dt=<ds>.

    gate_at="middle": 3 stages, the gate sits in stage 2 (4 partitions, one part each), whose
    output is hash-exchanged into the sink stage. gate_at="sink": 2 stages, the gate sits in the
    sink stage itself, so partitions are killed half-way through a dataset write.
    """
    by_part = sp.read_parquet(os.path.join(source, "*.parquet")).repartition(PARTS, by="part")
    doubled = sp.partial_sql(f"SELECT DATE '{ds}' AS dt, id, part, amount * 2 AS amount FROM {{0}}", by_part)
    gated = doubled.map_batches(Gate(gate_dir))
    if gate_at == "middle":
        gated = sp.partial_sql("SELECT dt, id, part, amount FROM {0}", gated.repartition(2, hash_by="id"))
    return gated.sink_parquet(output_root, partition_by="dt", mode="overwrite_partitions")


def write_parts(source: str) -> int:
    """PARTS files of ROWS_PER_PART rows: unique ids, `part` = file index, amount = id."""
    os.makedirs(source, exist_ok=True)
    con = duckdb.connect()
    try:
        for part in range(PARTS):
            con.execute(
                f"COPY (SELECT {part} * {ROWS_PER_PART} + i AS id, {part} AS part, ({part} * {ROWS_PER_PART} + i)::BIGINT AS amount "
                f"FROM range({ROWS_PER_PART}) t(i)) TO '{os.path.join(source, f'part-{part}.parquet')}' (FORMAT parquet)"
            )
    finally:
        con.close()
    return PARTS * ROWS_PER_PART


def takes_options(sp: Any, ds: str, limit: int = 10, ratio: float = 0.5, flag: bool = False, tags: list | None = None) -> Any:
    """Parameters of several types, for the CLI's casting; returns a tiny plan."""
    query = f"SELECT '{ds}' AS ds, {limit} AS lim, {ratio} AS ratio, {flag} AS flag, {len(tags or [])} AS ntags"
    return sp.partial_sql(query, sp.read_parquet("/nonexistent/takes_options/*.parquet"))


def raises_while_planning(sp: Any, ds: str) -> Any:
    raise RuntimeError(f"no data configured for {ds}")


def daily_order_count(sp: Any, ds: str, source_root: str) -> Any:
    """A day's order count, kept as the run's files (no sink): backfill skips it by run id."""
    orders = sp.read_parquet(os.path.join(source_root, "orders", f"dt={ds}", "*.parquet"), hive_partitioning=False)
    return sp.partial_sql(f"SELECT DATE '{ds}' AS dt, count(*) AS orders FROM {{0}}", orders.repartition(1))


def make_shop(root: str, days: list[str]) -> str:
    """The example shop, small: 2 000 orders a day, 200 customers."""
    from pond_core.examples import generate_shop

    generate_shop(root, days, orders_per_day=2_000, customers=200)
    return root


def revenue_by_day(shop: str, day: str) -> list[tuple]:
    """What daily_revenue must write for `day`, computed by DuckDB alone."""
    query = f"""
        SELECT c.segment, c.country, sum(o.amount) AS revenue, count(*) AS orders
        FROM read_parquet('{shop}/orders/dt={day}/*.parquet', hive_partitioning=false) o
        JOIN read_parquet('{shop}/customers.parquet') c USING (customer_id)
        GROUP BY ALL ORDER BY ALL"""
    return duckdb.sql(query).fetchall()


def written_revenue(output_root: str, day: str) -> list[tuple]:
    query = f"""
        SELECT segment, country, revenue, orders
        FROM read_parquet('{output_root}/dt={day}/*.parquet', hive_partitioning=false) ORDER BY ALL"""
    return duckdb.sql(query).fetchall()
