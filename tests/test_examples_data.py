"""The example shop: each day's orders follow from its date, so days differ and a day made alone
(as the example DAGs and flows do) equals the same day made with others."""

from __future__ import annotations

import duckdb

from pond_core.examples import ensure_shop_day, generate_shop


def revenue(root: str, day: str) -> list[tuple]:
    return duckdb.sql(
        f"SELECT c.segment, sum(o.amount) FROM read_parquet('{root}/orders/dt={day}/*.parquet') o "
        f"JOIN read_parquet('{root}/customers.parquet') c USING (customer_id) GROUP BY ALL ORDER BY ALL"
    ).fetchall()


def test_days_differ_and_do_not_depend_on_what_else_was_generated(tmp_path):
    together, alone = str(tmp_path / "together"), str(tmp_path / "alone")
    generate_shop(together, ["2026-11-20", "2026-11-21"], orders_per_day=1_000, customers=100)
    ensure_shop_day("2026-11-21", alone)
    assert revenue(together, "2026-11-20") != revenue(together, "2026-11-21")
    full = str(tmp_path / "full")
    generate_shop(full, ["2026-11-21"])
    assert revenue(alone, "2026-11-21") == revenue(full, "2026-11-21")
    ids = duckdb.sql(f"SELECT count(DISTINCT order_id), count(*) FROM read_parquet('{together}/orders/*/*.parquet')").fetchone()
    assert ids == (2_000, 2_000)  # order ids stay unique across days
