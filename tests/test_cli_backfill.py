"""`pond backfill` end to end as a real process: one run per day, committed days skipped,
`--force`, repeat idempotence, and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pond_core.catalog import Catalog
from pond_core.cli import pond
from tests.test_pipeline_defs import make_shop, revenue_by_day, written_revenue

REPO = Path(__file__).resolve().parents[1]
POND = str(Path(sys.executable).with_name("pond"))
REVENUE = "pond_core.examples:daily_revenue"
DAYS = ["2026-11-20", "2026-11-21", "2026-11-22"]


def pond_process(*args: str, root: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POND_", "SP_"))}
    env.update(PYTHONPATH=str(REPO), POND_DATA_ROOT=str(root))  # settings from the environment
    return subprocess.run([POND, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def days_by_status(report: dict) -> dict[str, str]:
    return {d["day"]: d["status"] for d in report["days"]}


@pytest.fixture
def shop(tmp_path: Path) -> str:
    return make_shop(str(tmp_path / "shop"), DAYS)


def test_three_day_backfill_skips_the_committed_day_and_force_reruns_it(shop: str, tmp_path: Path) -> None:
    root, out = tmp_path / "root", tmp_path / "revenue"
    params = ["-p", f"source_root={shop}", "-p", f"output_root={out}"]

    # The middle day is already committed by an ordinary run.
    single = pond_process("run", REVENUE, "-p", f"ds={DAYS[1]}", *params, "--run-id", "manual", "--json", root=root)
    assert single.returncode == 0, single.stderr
    middle_files = sorted(p.name for p in (out / f"dt={DAYS[1]}").iterdir())

    backfill = pond_process("backfill", REVENUE, "--from", DAYS[0], "--to", DAYS[2], *params, "--json", root=root)
    assert backfill.returncode == 0, backfill.stderr
    report = json.loads(backfill.stdout)
    assert days_by_status(report) == {DAYS[0]: "success", DAYS[1]: "skipped", DAYS[2]: "success"}
    assert (report["success"], report["skipped"], report["failed"]) == (2, 1, 0)
    assert report["days"][1]["run_id"] == "manual"  # who committed the skipped day
    run_ids = [d["run_id"] for d in report["days"] if d["status"] == "success"]
    assert run_ids[0].startswith(f"daily_revenue-{DAYS[0]}-") and run_ids[1].startswith(f"daily_revenue-{DAYS[2]}-")
    for day in DAYS:
        assert written_revenue(str(out), day) == revenue_by_day(shop, day)
    assert sorted(p.name for p in (out / f"dt={DAYS[1]}").iterdir()) == middle_files

    with Catalog(Catalog.default_url(str(root))) as catalog:
        parts = {p["key"]: p["run_id"] for p in catalog.list_partitions(str(out))}
        assert parts == {f"dt={DAYS[0]}": run_ids[0], f"dt={DAYS[1]}": "manual", f"dt={DAYS[2]}": run_ids[1]}
        runs_before = {r["run_id"] for r in catalog.list_runs(limit=100)}
    assert runs_before == {"manual", *run_ids}

    # A repeat runs nothing: every day is committed.
    repeat = pond_process("backfill", REVENUE, "--from", DAYS[0], "--to", DAYS[2], *params, "--json", root=root)
    assert repeat.returncode == 0, repeat.stderr
    assert set(days_by_status(json.loads(repeat.stdout)).values()) == {"skipped"}

    # --force recomputes the committed middle day as a new run; the data stays the same.
    forced = pond_process("backfill", REVENUE, "--from", DAYS[1], "--to", DAYS[1], *params, "--force", root=root)
    assert forced.returncode == 0, forced.stderr
    assert "1 ran, 0 skipped (already committed), 0 failed" in forced.stdout
    assert written_revenue(str(out), DAYS[1]) == revenue_by_day(shop, DAYS[1])
    with Catalog(Catalog.default_url(str(root))) as catalog:
        new_runs = {r["run_id"] for r in catalog.list_runs(limit=100)} - runs_before
        assert len(new_runs) == 1 and next(iter(new_runs)).startswith(f"daily_revenue-{DAYS[1]}-")
        assert catalog.get_run(next(iter(new_runs)))["status"] == "success"
        assert {p["key"]: p["run_id"] for p in catalog.list_partitions(str(out))}[f"dt={DAYS[1]}"] in new_runs


def test_a_day_without_data_fails_the_backfill_with_exit_1_and_the_others_commit(shop: str, tmp_path: Path) -> None:
    root, out = tmp_path / "root", tmp_path / "revenue"
    result = CliRunner().invoke(pond, [
        "backfill", REVENUE, "--from", DAYS[2], "--to", "2026-11-23", "-p", f"source_root={shop}", "-p", f"output_root={out}",
        "--data-root", str(root), "--json",
    ])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert days_by_status(report) == {DAYS[2]: "success", "2026-11-23": "failed"}
    assert "2026-11-23" in report["days"][1]["error"]
    assert "error: backfill failed for 2026-11-23; run the same command again to resume" in result.stderr
    assert written_revenue(str(out), DAYS[2]) == revenue_by_day(shop, DAYS[2])


def test_backfill_of_a_pipeline_without_a_dated_sink_skips_by_run(shop: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    args = ["backfill", "tests.test_pipeline_defs:daily_order_count", "--from", DAYS[0], "--to", DAYS[1],
            "-p", f"source_root={shop}", "--data-root", str(root), "--json"]
    first = CliRunner().invoke(pond, args)
    assert first.exit_code == 0, first.stderr
    assert set(days_by_status(json.loads(first.stdout)).values()) == {"success"}
    assert [d["rows"] for d in json.loads(first.stdout)["days"]] == [1, 1]
    again = CliRunner().invoke(pond, args)
    assert set(days_by_status(json.loads(again.stdout)).values()) == {"skipped"}


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2026-11-22", "--to", "2026-11-20"], "--to 2026-11-20 is before --from 2026-11-22"),
    (["--from", "2026-13-01", "--to", "2026-11-22"], "--from/--to take dates like 2026-11-20: month must be in 1..12"),
    (["--from", "2026-11-20", "--to", "2026-11-22", "--param-name", "day"], "takes no parameter day"),
])
def test_backfill_bad_input_exits_2_and_runs_nothing(args: list[str], message: str, shop: str, tmp_path: Path) -> None:
    root, out = tmp_path / "root", tmp_path / "revenue"
    result = CliRunner().invoke(pond, ["backfill", REVENUE, *args, "-p", f"source_root={shop}", "-p", f"output_root={out}", "--data-root", str(root)])
    assert result.exit_code == 2 and message in result.stderr
    assert not out.exists() and not (root / "jobs").exists()
