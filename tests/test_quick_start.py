"""The README's quick start runs as written (its paths pointed at a generated shop), and says
what it computes: sp.sql over whole datasets, partial_sql per partition."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import pond_core
from pond_core.errors import PondConfigError
from pond_core.examples import generate_shop

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start() -> str:
    text = README.read_text()
    section = text[text.index("## Quick start"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_quick_start_runs_and_gives_whole_dataset_results(tmp_path):
    shop = tmp_path / "shop"
    generate_shop(str(shop), ["2026-11-19", "2026-11-20"], orders_per_day=2_000, customers=200)
    code = (
        quick_start()
        .replace("s3://shop/orders/dt=2026-11-*/*.parquet", f"{shop}/orders/dt=2026-11-*/*.parquet")
        .replace("/data/customers.parquet", f"{shop}/customers.parquet")
        .replace("/data/pond", str(tmp_path / "pond"))
        .replace("/data/revenue", str(tmp_path / "revenue"))
    )
    scope: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README quick start", "exec"), scope)
    try:
        assert scope["revenue"].count() == 8  # 4 segments x 2 days: one row per group
        segments = scope["by_segment"].to_pandas()
        assert sorted(segments["segment"]) == ["consumer", "corporate", "home_office", "small_business"]
        assert scope["partial"].count() > 4  # per-partition partial sums: several rows per segment
        assert printed.getvalue().count("== physical plan ==") == 1  # explain() printed once
    finally:
        scope["session"].shutdown()


def test_module_level_sql_needs_init_first(tmp_path):
    pond_core.session._latest = None
    with pytest.raises(PondConfigError, match=r"call pond_core.init\(data_root=...\) first"):
        pond_core.sql("SELECT 1")
    with pond_core.init(data_root=str(tmp_path / "pond"), executor="local"):
        assert pond_core.sql("SELECT 41 + 1 AS x").take_all() == [{"x": 42}]
    with pytest.raises(PondConfigError, match="the last one was shut down"):
        pond_core.sql("SELECT 1")
