"""One live driver per stage of a run: a second driver of a live stage is refused, naming the
holder; a stale holder is taken over; a committed manifest whose files are gone is run again."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time

import duckdb
import pytest
from sqlalchemy import create_engine, text

from pond_core.catalog import Catalog
from pond_core.errors import PondRunBusyError, is_retryable
from pond_core.pipeline import compile_pipeline
from pond_core.runner import run_plan
from pond_core.sql_quote import sql_list


def _catalog(tmp_path) -> Catalog:
    return Catalog(f"sqlite:///{tmp_path}/catalog.sqlite")


def _age_lease(tmp_path, seconds: float) -> None:
    """Make every lease look as if its driver stopped renewing it `seconds` ago."""
    engine = create_engine(f"sqlite:///{tmp_path}/catalog.sqlite")
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
    with engine.begin() as conn:
        conn.execute(text("UPDATE pond_stage_leases SET renewed_at = :at"), {"at": old.isoformat(sep=" ")})
    engine.dispose()


def test_a_live_lease_refuses_a_second_driver_and_a_stale_one_is_taken_over(tmp_path):
    with _catalog(tmp_path) as catalog:
        catalog.start_run("r1", "p", {}, None, "local")
        assert catalog.acquire_stage_lease("r1", "s1", "driver-a", "write_sales") is None
        assert catalog.acquire_stage_lease("r1", "s1", "driver-a") is None  # its own: re-entrant
        with pytest.raises(PondRunBusyError, match="stage write_sales of run r1 is being run by another driver, driver-a") as busy:
            catalog.acquire_stage_lease("r1", "s1", "driver-b", "write_sales")
        assert is_retryable(busy.value)  # an orchestrator's retry that met its zombie tries again later
        assert catalog.acquire_stage_lease("r1", "s2", "driver-b") is None  # other stages run at once
        assert catalog.renew_stage_lease("r1", "s1", "driver-a")
        _age_lease(tmp_path, 3600)
        assert catalog.acquire_stage_lease("r1", "s1", "driver-b") == "driver-a"
        assert not catalog.renew_stage_lease("r1", "s1", "driver-a")  # a came back: it lost the lease
        from pond_core.recorder import driver_name, holder_gone

        me = driver_name()
        assert not holder_gone(me) and not holder_gone("other-host pid 1 start 5 (x)")
        assert holder_gone(me.replace(" start ", " start 1"))  # same pid, another process
        catalog.release_stage_lease("r1", "s1", "driver-b")
        assert catalog.acquire_stage_lease("r1", "s1", "driver-c") is None


# -- two drivers of one run id ---------------------------------------------------------------


def _waiting_pipeline(sp, marker: str, release: str, out: str):
    def wait(row):
        open(marker, "a").close()  # the stage is running
        while not os.path.exists(release):
            time.sleep(0.01)
        return row

    return sp.from_items([{"v": i} for i in range(4)]).map(wait).sink_parquet(out, mode="overwrite")


def _drive(tmp_path, params, run_id="run-1"):
    plan = compile_pipeline(_waiting_pipeline, params, data_root=str(tmp_path / "pond"))
    settings = {"data_root": str(tmp_path / "pond"), "executor": "local", "catalog_url": f"sqlite:///{tmp_path}/catalog.sqlite"}
    return run_plan(plan, run_id, settings=settings)


def _first_driver(tmp_path, params, crash: bool) -> None:
    import threading

    try:
        if crash:  # die (as SIGKILL would) once the stage is running and holds its lease
            def die() -> None:
                while not os.path.exists(params["marker"]):
                    time.sleep(0.01)
                os._exit(137)

            threading.Thread(target=die, daemon=True).start()
        _drive(tmp_path, params)
    except BaseException as exc:
        os.write(2, f"first driver failed: {exc!r}\n".encode())
        os._exit(3)
    os._exit(0)


def _params(tmp_path):
    return {"marker": str(tmp_path / "running"), "release": str(tmp_path / "release"), "out": str(tmp_path / "ds")}


def _wait_for(path, child):
    while not os.path.exists(path):
        assert child.is_alive() or child.exitcode == 0, f"the first driver exited {child.exitcode}"
        time.sleep(0.01)


def _rows(out: str) -> int:
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if f.endswith(".parquet"))
    return duckdb.sql(f"SELECT count(*) FROM read_parquet({sql_list(files)})").fetchone()[0]


def test_a_second_driver_of_a_running_stage_is_refused_naming_the_first(tmp_path):
    params = _params(tmp_path)
    child = multiprocessing.get_context("fork").Process(target=_first_driver, args=(tmp_path, params, False))
    child.start()
    _wait_for(params["marker"], child)
    with pytest.raises(PondRunBusyError, match=f"being run by another driver, .* pid {child.pid} "):
        _drive(tmp_path, params)
    open(params["release"], "w").close()
    child.join(60)
    assert child.exitcode == 0
    assert _rows(params["out"]) == 4
    with _catalog(tmp_path) as catalog:
        assert catalog.get_run("run-1")["status"] == "success"  # the refused driver marked nothing failed
    assert _drive(tmp_path, params).manifests  # and the run resumes (everything committed)


def test_a_killed_drivers_lease_is_taken_over_by_the_resume_at_once(tmp_path, caplog):
    params = _params(tmp_path)
    child = multiprocessing.get_context("fork").Process(target=_first_driver, args=(tmp_path, params, True))
    child.start()
    child.join(60)
    assert child.exitcode == 137
    open(params["release"], "w").close()
    _drive(tmp_path, params)  # at once: the holder was a process of this machine, and it is gone
    assert _rows(params["out"]) == 4
    assert "taking over from" in caplog.text


# -- committed manifests are verified --------------------------------------------------------


def _two_stages(sp, out_rows: int):
    frame = sp.partial_sql(f"SELECT i AS k FROM range({out_rows}) t(i)", sp.from_items([{"z": 1}]))
    return sp.partial_sql("SELECT k, k * 2 AS d FROM {0}", frame.repartition(3, hash_by="k"))


def test_a_committed_stage_whose_files_are_gone_runs_again(tmp_path, caplog):
    settings = {"data_root": str(tmp_path / "pond"), "executor": "local", "catalog_url": f"sqlite:///{tmp_path}/catalog.sqlite"}
    plan = compile_pipeline(_two_stages, {"out_rows": 90}, data_root=str(tmp_path / "pond"))
    first = run_plan(plan, "m1", settings=settings)
    last = first.manifests[plan.stages[-1].name]
    victim = last.files[0]
    os.unlink(victim.path)  # another driver's clean-up, or a hand
    again = run_plan(plan, "m1", settings=settings)
    files = [f.path for f in again.manifests[plan.stages[-1].name].files]
    assert all(os.path.exists(f) for f in files)
    assert duckdb.sql(f"SELECT count(*), sum(d) FROM read_parquet({sql_list(files)})").fetchone() == (90, 2 * sum(range(90)))
    assert "missing or changed file" in caplog.text


# -- one run id driven twice, at random offsets ----------------------------------------------


def _slow_pipeline(sp, out: str):
    def slow(row):
        time.sleep(0.02)
        return row

    first = sp.from_items([{"v": i} for i in range(40)]).map(slow).repartition(4, hash_by="v")
    return sp.partial_sql("SELECT v, v * 2 AS w FROM {0}", first).map(slow).sink_parquet(out, mode="overwrite")


def _slow_driver(tmp_path, run_id: str) -> None:
    plan = compile_pipeline(_slow_pipeline, {"out": str(tmp_path / "ds")}, data_root=str(tmp_path / "pond"))
    settings = {"data_root": str(tmp_path / "pond"), "executor": "local", "catalog_url": f"sqlite:///{tmp_path}/catalog.sqlite"}
    try:
        run_plan(plan, run_id, settings=settings)
    except PondRunBusyError:
        os._exit(2)  # refused: the other driver is live
    except BaseException as exc:
        os.write(2, f"driver failed: {exc!r}\n".encode())
        os._exit(3)
    os._exit(0)


def _twice(tmp_path, trials: int) -> dict[str, int]:
    import random

    ctx = multiprocessing.get_context("fork")
    outcomes = {"both ran": 0, "one refused": 0, "unresumable": 0}
    rng = random.Random(14)
    for trial in range(trials):
        base = tmp_path / f"t{trial}"
        base.mkdir()
        a = ctx.Process(target=_slow_driver, args=(base, "twice"))
        a.start()
        time.sleep(rng.uniform(0.1, 1.0))
        b = ctx.Process(target=_slow_driver, args=(base, "twice"))
        b.start()
        a.join(120)
        b.join(120)
        codes = sorted((a.exitcode, b.exitcode))
        assert codes in ([0, 0], [0, 2]), f"trial {trial}: exit codes {codes}"
        outcomes["one refused" if codes == [0, 2] else "both ran"] += 1
        resumed = ctx.Process(target=_slow_driver, args=(base, "twice"))
        resumed.start()
        resumed.join(120)
        if resumed.exitcode != 0 or _rows(str(base / "ds")) != 40:
            outcomes["unresumable"] += 1
    return outcomes


def test_one_run_id_driven_twice_ends_complete_and_resumable(tmp_path):
    outcomes = _twice(tmp_path, 2)
    assert outcomes["unresumable"] == 0


@pytest.mark.slow
def test_one_run_id_driven_twice_twenty_times(tmp_path):
    outcomes = _twice(tmp_path, 20)
    print(f"20 trials of one run id driven twice 0.1-1 s apart: {outcomes}")
    assert outcomes["unresumable"] == 0
