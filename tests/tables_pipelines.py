"""Pipelines (module:function) that write a daily Iceberg table, with checks: used by the
engine tests and by the Airflow and Prefect tests of tables."""

from __future__ import annotations

from pond_core.checks import accepted_values, expression, not_null, row_count, unique


def daily_events(sp, ds: str, catalog_uri: str, warehouse: str, version: str = "v1", bad: bool = False):
    """One day of events into db.events (partitioned by dt); `bad` makes the day break a check."""
    amount = "CASE WHEN i % 5 = 0 THEN -1 ELSE i END" if bad else "i"
    day = sp.sql(
        f"SELECT i AS id, DATE '{ds}' AS dt, '{version}-' || i AS name, {amount} AS amount, "
        "CASE WHEN i % 2 = 0 THEN 'web' ELSE 'app' END AS channel FROM range(10) t(i)"
    )
    checks = [
        row_count(min=1, max=1000),
        not_null("id", "dt"),
        unique("dt", "id"),
        accepted_values("channel", ["web", "app"]),
        expression("amount >= 0", name="amount is not negative"),
    ]
    props = {"uri": catalog_uri, "warehouse": warehouse}
    return day.sink_iceberg("db.events", mode="overwrite_partitions", partition_by="dt", catalog=props, checks=checks)
