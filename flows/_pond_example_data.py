"""Example data and settings shared by the example flows (a helper module, not a flow).

The flows read the example shop and write their outputs under POND_EXAMPLES_ROOT (default
~/.pond/examples, as the example DAGs), pond's storage and catalog under POND_DATA_ROOT
(default <examples root>/pond). Each run makes sure its day of the shop exists, publishing it
with a rename so concurrent runs (a backfill) never see half-written files.
"""

from __future__ import annotations

import datetime as dt
import os

ROOT = os.path.abspath(os.path.expanduser(os.environ.get("POND_EXAMPLES_ROOT", "~/.pond/examples")))
SHOP = os.path.join(ROOT, "shop")
OUTPUT = os.path.join(ROOT, "prefect")


def pond_config(block: str | None = None):  # -> PondConfig
    """The saved PondConfig block `block`, else one rooted at POND_DATA_ROOT or the examples root."""
    from pond_prefect import PondConfig

    if block:
        return PondConfig.load(block)
    return PondConfig(data_root=os.environ.get("POND_DATA_ROOT") or os.path.join(ROOT, "pond"))


def run_day(ds: str | None) -> str:
    """`ds`, else the day before the run's scheduled start (a run at 01:00 processes yesterday)."""
    if ds:
        dt.date.fromisoformat(ds)
        return ds
    from prefect.runtime import flow_run

    start = flow_run.scheduled_start_time or dt.datetime.now(dt.timezone.utc)
    return (start - dt.timedelta(days=1)).date().isoformat()


def ensure_shop_day(ds: str, root: str = SHOP) -> str:
    """Write the shop's customers and the orders of day `ds` unless they exist; return the day's folder."""
    from pond_core.examples import ensure_shop_day as ensure

    return ensure(ds, root)
