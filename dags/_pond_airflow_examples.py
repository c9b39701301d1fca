"""Where the pond example DAGs keep their data (a helper module, not a DAG).

The DAGs read and write under POND_EXAMPLES_ROOT (default ~/.pond/examples). Each run makes
sure its day of the example shop exists (pond_core.examples.ensure_shop_day publishes a day
with a rename, so concurrent backfill runs never see half-written files).
"""

from __future__ import annotations

import os

ROOT = os.path.abspath(os.path.expanduser(os.environ.get("POND_EXAMPLES_ROOT", "~/.pond/examples")))
SHOP = os.path.join(ROOT, "shop")


def ensure_shop_day(ds: str, root: str = SHOP) -> str:
    from pond_core.examples import ensure_shop_day as ensure

    return ensure(ds, root)
