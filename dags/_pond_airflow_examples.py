"""Example data for the pond example DAGs (a helper module, not a DAG).

The DAGs read and write under POND_EXAMPLES_ROOT (default ~/.pond/examples). Each run makes
sure its day of the example shop exists, publishing it with a rename so concurrent runs
(a backfill) never see half-written files.
"""

from __future__ import annotations

import os
import shutil
import tempfile

ROOT = os.path.abspath(os.path.expanduser(os.environ.get("POND_EXAMPLES_ROOT", "~/.pond/examples")))
SHOP = os.path.join(ROOT, "shop")


def ensure_shop_day(ds: str, root: str = SHOP) -> str:
    """Write the shop's customers and the orders of day `ds` unless they exist; return the day's folder."""
    from pond_core.examples import generate_shop

    day = os.path.join(root, "orders", f"dt={ds}")
    customers = os.path.join(root, "customers.parquet")
    if os.path.isdir(day) and os.path.exists(customers):
        return day
    os.makedirs(os.path.join(root, "orders"), exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".generate-", dir=root)
    try:
        generate_shop(scratch, [ds])
        try:
            os.link(os.path.join(scratch, "customers.parquet"), customers)
        except FileExistsError:
            pass
        try:
            os.rename(os.path.join(scratch, "orders", f"dt={ds}"), day)
        except OSError:
            if not os.path.isdir(day):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return day
