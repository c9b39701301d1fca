"""Where the pond example DAGs keep their data, and the checked pipeline (a helper module, not a DAG).

The DAGs read and write under POND_EXAMPLES_ROOT (default ~/.pond/examples). Each run makes
sure its day of the example shop exists (pond_core.examples.ensure_shop_day publishes a day
with a rename, so concurrent backfill runs never see half-written files).
"""

from __future__ import annotations

import os
from typing import Any

ROOT = os.path.abspath(os.path.expanduser(os.environ.get("POND_EXAMPLES_ROOT", "~/.pond/examples")))
SHOP = os.path.join(ROOT, "shop")


def ensure_shop_day(ds: str, root: str = SHOP) -> str:
    from pond_core.examples import ensure_shop_day as ensure

    return ensure(ds, root)


def checked_revenue(sp: Any, ds: str, source_root: str, output_root: str, min_orders: int | str = 1) -> Any:
    """pond_core.examples:daily_revenue with checks before publish: at least one row, no NULL
    segment or country, at least `min_orders` orders per segment and country (raise it in a
    run's conf to see a check fail and nothing published) and, as a warning only, no
    segment/country pair above 450,000 revenue (the example data has such pairs: a warning)."""
    from pond_core.checks import expression, not_null, row_count
    from pond_core.examples import daily_revenue_frame

    orders = sp.read_parquet(os.path.join(source_root, "orders", f"dt={ds}", "*.parquet"), hive_partitioning=False)
    customers = sp.read_parquet(os.path.join(source_root, "customers.parquet"))
    checks = [
        row_count(min=1),
        not_null("segment", "country"),
        expression(f"orders >= {int(min_orders)}", name="enough orders per segment and country"),
        expression("revenue < 450000", warn=True, name="no unusually large revenue"),
    ]
    revenue = daily_revenue_frame(sp, orders, customers, ds, 4)
    return revenue.sink_parquet(output_root, partition_by="dt", mode="overwrite_partitions", checks=checks)
