"""Scale-out on the multi-node rig: pond on 1 and 2 Ray worker nodes against the local executor.

    python bench/scaleout.py [--runs 3] [--rows 4000000] [--files 8] [--keys 500000]
                             [--partitions 8] [--tiny-rows 5000] [--tiny-partitions 1000]
                             [--only hash,tiny] [--configs local,ray1,ray2]

Two workloads, each under three configurations:

  hash  `read_parquet(files).repartition(P, hash_by="key")`, then a per-partition
        `GROUP BY key` aggregation with `partial_sql`, written with `write_parquet`:
        two stages (the hash exchange, then aggregate-and-write).
  tiny  a tiny table `read_parquet(file).repartition(1000, by_rows=True)` and a trivial
        `partial_sql`, collected with `take_all()`: one stage of 1000 tasks that do almost
        nothing, so the stage time is the per-task cost of the executor and the engine.

  local  `pond_core.init(executor="local")`: tasks on threads of the driver (the baseline)
  ray1   `pond_core.init(executor="ray", ray_address=...)` on the rig (tests/support/
         ray_cluster.py) with 1 worker node: a head with 0 CPUs and one raylet with 2 CPUs
  ray2   the same cluster after `add_worker()`: two raylets with 2 CPUs each (4 Ray CPUs)

The bench runs `--runs` rounds. In each round every configuration runs once, in a fresh child
process of this script (a process can be the Ray driver of one cluster only): local, then a new
rig with one worker node (ray1), then the same rig grown to two (ray2); the rig is stopped at
the end of the round. So the configurations share whatever load the machine has at the moment.
A child connects to Ray once (timed apart), runs one warm-up job (reported as "first": it pays
Ray worker processes starting and importing pond and DuckDB), then one timed job per workload,
each in a new pond session (a new job id, so nothing is reused). A job's time is the wall time
of the action (`write_parquet` / `take_all`) from a started session to the result in hand;
per-stage seconds come from the stages' committed manifests, per-task seconds from their task
records. Cluster start-up and Ray connect are in no job time. Results are checked (untimed); a
wrong result or a crash fails the configuration and the script exits 1. Every cluster started
is stopped on every exit path (also on SIGTERM/SIGHUP).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import _cluster
import _common
from _common import BenchFailure

CONFIGS = ("local", "ray1", "ray2")
WORKLOADS = ("hash", "tiny")
WORKERS = {"ray1": 1, "ray2": 2}
CPUS_PER_WORKER = 2

HASH_SQL = (
    "SELECT key, count(*) AS n, sum(amount) AS amount, avg(qty) AS avg_qty, max(cat) AS cat "
    "FROM {0} GROUP BY key"
)
TINY_SQL = "SELECT key, v * 2 AS v2 FROM {0}"


# ---------------------------------------------------------------- data (parent, untimed)


def ensure_hash_data(root: pathlib.Path, rows: int, files: int, keys: int) -> pathlib.Path:
    """`files` Parquet files of `rows` rows in total: key BIGINT in [0, keys), amount DOUBLE,
    qty INTEGER, cat VARCHAR (100 values), note VARCHAR (16 random hex chars). Reused if present."""
    final = root / f"hash-r{rows}-f{files}-k{keys}"
    if final.is_dir():
        return final
    import duckdb

    staging = root / (final.name + ".generating")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    per = math.ceil(rows / files)
    for i in range(files):
        lo, hi = i * per, min(rows, (i + 1) * per)
        con.execute(
            f"COPY (SELECT hash(i * 7919 + 17) % {keys} AS key, "
            f"(hash(i) % 100000) / 100.0 AS amount, (i % 50)::INTEGER AS qty, "
            f"'cat' || (i % 100) AS cat, substr(md5(i::VARCHAR), 1, 16) AS note "
            f"FROM range({lo}, {hi}) t(i)) TO '{staging}/part-{i:03d}.parquet' (FORMAT parquet)"
        )
    con.close()
    staging.rename(final)
    print(f"generated {rows:,} rows in {files} files in {time.perf_counter() - t0:.1f}s -> {final}", flush=True)
    return final


def ensure_tiny_data(root: pathlib.Path, rows: int) -> pathlib.Path:
    path = root / f"tiny-r{rows}.parquet"
    if path.exists():
        return path
    import duckdb

    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".generating")
    con = duckdb.connect()
    con.execute(f"COPY (SELECT i AS key, i % 97 AS v FROM range({rows}) t(i)) TO '{tmp}' (FORMAT parquet)")
    con.close()
    tmp.rename(path)
    return path


def hash_files(data_dir: pathlib.Path) -> list[str]:
    return sorted(str(p) for p in data_dir.glob("*.parquet"))


# ---------------------------------------------------------------- child: the timed work


def stage_results(sp: Any) -> list[dict[str, Any]]:
    """Every committed stage of the session's job, oldest first (read from its manifests)."""
    staging = pathlib.Path(sp.config.data_root) / "jobs" / sp.job_id / "staging"
    out = []
    for manifest in staging.glob("*/_manifest.json"):
        out.append(json.loads(manifest.read_text())["result"])
    return sorted(out, key=lambda r: r["started_at"])


def task_records(sp: Any, stage_id: str) -> list[dict[str, Any]]:
    tasks = pathlib.Path(sp.config.data_root) / "jobs" / sp.job_id / "staging" / stage_id / "_tasks"
    return [json.loads(p.read_text()) for p in tasks.glob("p*.json")]


def open_session(config: str, address: str | None, root: pathlib.Path) -> Any:
    import pond_core

    if config == "local":
        return pond_core.init(executor="local", data_root=str(root))
    return pond_core.init(executor="ray", ray_address=address, data_root=str(root))


@contextlib.contextmanager
def timed_session(config: str, address: str | None, root: pathlib.Path, timings: dict[str, float]) -> Iterator[Any]:
    """A pond session for one job; its start and shutdown times land in `timings`."""
    t0 = time.perf_counter()
    sp = open_session(config, address, root / "pond")
    timings["init_s"] = time.perf_counter() - t0
    try:
        yield sp
    finally:
        t1 = time.perf_counter()
        sp.shutdown()
        timings["shutdown_s"] = time.perf_counter() - t1


def run_hash(config: str, address: str | None, files: list[str], partitions: int, root: pathlib.Path) -> dict[str, Any]:
    out, timings = root / "out", {}
    with timed_session(config, address, root, timings) as sp:
        t0 = time.perf_counter()
        df = sp.read_parquet(files).repartition(partitions, hash_by="key")
        result = sp.partial_sql(HASH_SQL, df).write_parquet(str(out))
        job_s = time.perf_counter() - t0
        stages = stage_results(sp)
    return {
        "job_s": job_s,
        "shutdown_s": timings["shutdown_s"],
        "stages": [
            {"stage": s["stage"], "seconds": s["seconds"], "npartitions": s["npartitions"], "rows": s["rows"], "executor": s["executor"]}
            for s in stages
        ],
        "written_rows": result["rows"],
        "out": str(out),
    }


def verify_hash(run: dict[str, Any], files: list[str], partitions: int) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    src = "read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])"
    want = con.execute(f"SELECT count(DISTINCT key), count(*), sum(amount) FROM {src}").fetchone()
    got = con.execute(
        f"SELECT count(*), count(DISTINCT key), sum(n), sum(amount) FROM read_parquet('{run['out']}/**/*.parquet')"
    ).fetchone()
    if got[0] != want[0] or got[1] != want[0] or got[2] != want[1] or not math.isclose(got[3], want[2], rel_tol=1e-9):
        raise BenchFailure(f"hash: (groups, distinct keys, rows, sum amount) = {got}, want ({want[0]}, {want[0]}, {want[1]}, {want[2]})")
    if len(run["stages"]) != 2 or run["stages"][0]["npartitions"] < 1 or run["stages"][1]["npartitions"] != partitions:
        raise BenchFailure(f"hash: expected 2 stages (exchange, then {partitions} partitions), got {run['stages']}")


def run_tiny(config: str, address: str | None, path: str, partitions: int, root: pathlib.Path) -> dict[str, Any]:
    from pond_core import phases

    timings: dict[str, float] = {}
    with timed_session(config, address, root, timings) as sp:
        phases.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        df = sp.read_parquet(path).repartition(partitions, by_rows=True)
        rows = sp.partial_sql(TINY_SQL, df).take_all()
        job_s, driver_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        job_phases = phases.seconds()
        stages = stage_results(sp)
        tasks = task_records(sp, stages[0]["stage_id"]) if stages else []
    return {
        "job_s": job_s,
        "driver_cpu_s": driver_cpu_s,  # CPU time of the driver process (all its threads) during the job
        "shutdown_s": timings["shutdown_s"],
        "init_s": timings["init_s"],
        "phases": job_phases,  # seconds per phase inside the job (pond_core/phases.py)
        "stages": [{"stage": s["stage"], "seconds": s["seconds"], "npartitions": s["npartitions"], "rows": s["rows"],
                    "started_at": s["started_at"], "executor": s["executor"]} for s in stages],
        "tasks": summarize_tasks(tasks, stages[0] if stages else None),
        "rows": len(rows),
        "sum_v2": sum(r["v2"] for r in rows),
    }


def summarize_tasks(tasks: list[dict[str, Any]], stage: dict[str, Any] | None) -> dict[str, Any]:
    """Where a tiny stage's time goes: time inside tasks vs the stage's wall time."""
    if not tasks or stage is None:
        return {}
    inside = sorted(t["seconds"] for t in tasks)
    # (task records no longer keep a start time; the stage's first-task delay is then unknown)
    starts = sorted(t["started_at"] for t in tasks if "started_at" in t) or [math.nan]
    return {
        "count": len(tasks),
        "in_task_median_ms": 1000 * statistics.median(inside),
        "in_task_p90_ms": 1000 * inside[int(0.9 * (len(inside) - 1))],
        "in_task_sum_s": sum(inside),
        "first_task_start_after_s": starts[0] - stage["started_at"],  # stage start to first task running
        "last_task_start_after_s": starts[-1] - stage["started_at"],
        "worker_pids": len({t.get("pid") for t in tasks}),
    }


def verify_tiny(run: dict[str, Any], tiny_rows: int, partitions: int) -> None:
    want_sum = sum(2 * (i % 97) for i in range(tiny_rows))
    if run["rows"] != tiny_rows or run["sum_v2"] != want_sum:
        raise BenchFailure(f"tiny: got {run['rows']} rows, sum(v2) {run['sum_v2']}; want {tiny_rows}, {want_sum}")
    if not run["stages"] or run["stages"][0]["npartitions"] != partitions:
        raise BenchFailure(f"tiny: expected one stage of {partitions} tasks, got {run['stages']}")


def run_workload(workload: str, args: argparse.Namespace, root: pathlib.Path) -> dict[str, Any]:
    """One job of `workload` in a new pond session, checked (the check is not timed)."""
    config, address = args.child, args.address
    if workload == "hash":
        files = hash_files(pathlib.Path(args.hash_dir))
        run = run_hash(config, address, files, args.partitions, root)
        tv = time.perf_counter()
        verify_hash(run, files, args.partitions)
    else:
        run = run_tiny(config, address, args.tiny_path, args.tiny_partitions, root)
        tv = time.perf_counter()
        verify_tiny(run, args.tiny_rows, args.tiny_partitions)
    run["verify_s"] = time.perf_counter() - tv
    shutil.rmtree(root, ignore_errors=True)
    return run


def _noop() -> None:
    return None


def reference_costs(config: str, tasks: int) -> dict[str, float]:
    """What the tiny stage's tasks cost without pond: opening and closing one in-memory DuckDB
    database (what every pond task does first), and, on Ray, `tasks` empty Ray tasks."""
    import duckdb

    out: dict[str, float] = {}
    samples = []
    for _ in range(30):
        t0 = time.perf_counter()
        duckdb.connect(config={"threads": 1}).close()
        samples.append(time.perf_counter() - t0)
    out["duckdb_open_close_ms"] = 1000 * statistics.median(samples)
    if config != "local":
        import ray

        noop = ray.remote(num_cpus=1, max_retries=0)(_noop)
        ray.get([noop.remote() for _ in range(50)])  # workers warm
        t0 = time.perf_counter()
        ray.get([noop.remote() for _ in range(tasks)])
        out["ray_noop_per_task_ms"] = 1000 * (time.perf_counter() - t0) / tasks
    return out


def child_main(args: argparse.Namespace) -> None:
    """One configuration, one round: connect once, a warm-up job, then one timed job per workload."""
    config, address = args.child, args.address
    work = pathlib.Path(args.workdir)
    report: dict[str, Any] = {"config": config}
    t0 = time.perf_counter()
    import pond_core  # noqa: F401

    report["import_s"] = time.perf_counter() - t0
    if config != "local":
        import ray

        t1 = time.perf_counter()
        ray.init(address=address, log_to_driver=True)  # as pond's RayExecutor connects; pond reuses it
        report["connect_s"] = time.perf_counter() - t1
        alive = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
        report["worker_nodes"] = len(alive)
        report["ray_cpus"] = ray.cluster_resources().get("CPU", 0)
        if len(alive) != WORKERS[config]:
            raise BenchFailure(f"{config}: the cluster has {len(alive)} worker nodes, want {WORKERS[config]}")
    workloads = args.workloads.split(",")
    # The warm-up job pays what only a driver's first job pays: Ray worker processes starting
    # (and importing pond and DuckDB) on every node, first-use imports in the driver.
    report["first"] = {"workload": workloads[0], **run_workload(workloads[0], args, work / "first")}
    for workload in workloads:
        report[workload] = run_workload(workload, args, work / workload)
    if "tiny" in workloads:
        report["reference"] = reference_costs(config, args.tiny_partitions)
    if config != "local":
        import ray

        ray.shutdown()
    verify_s = report["first"]["verify_s"] + sum(report[w]["verify_s"] for w in workloads)
    _common.emit_report({**report, "verify_s": verify_s, "ok": True})


# ---------------------------------------------------------------- parent


def run_config(config: str, address: str | None, args: argparse.Namespace, paths: dict[str, str], scratch: pathlib.Path) -> dict[str, Any]:
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"scaleout-{config}-", dir=scratch))
    cmd = [__file__, "--child", config, "--workdir", str(work), "--workloads", args.only,
           "--partitions", str(args.partitions), "--tiny-partitions", str(args.tiny_partitions),
           "--tiny-rows", str(args.tiny_rows), "--hash-dir", paths.get("hash", ""), "--tiny-path", paths.get("tiny", "")]
    if address:
        cmd += ["--address", address]
    try:
        report = _common.run_child(cmd, timeout_s=args.timeout).report
    finally:
        shutil.rmtree(work, ignore_errors=True)
    line = [f"first ({report['first']['workload']}) {report['first']['job_s']:5.2f}s"]
    for workload in args.only.split(","):
        run = report[workload]
        stages = " + ".join(f"{s['seconds']:.2f}" for s in run["stages"])
        line.append(f"{workload} {run['job_s']:5.2f}s (stages {stages})")
    print(f"    {config:<5} " + "   ".join(line), flush=True)
    return report


def measure(args: argparse.Namespace, configs: list[str], paths: dict[str, str]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str], list[dict[str, float]], list[list[float]]]:
    """`args.runs` rounds; in each, every configuration once (local, then a new cluster with one
    worker node, then the same cluster grown to two), so all configurations share the load of
    the moment. Every cluster is stopped before the next round and on every exit path."""
    reports: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    errors: dict[str, str] = {}
    rigs: list[dict[str, float]] = []
    round_load: list[list[float]] = []
    scratch = _common.BENCH_DIR / "out" / "work"
    scratch.mkdir(parents=True, exist_ok=True)
    ray_configs = [c for c in configs if c != "local"]
    if ray_configs:
        sys.path.insert(0, str(_common.REPO_ROOT))
        from tests.support.ray_cluster import LocalRayCluster

    def attempt(config: str, address: str | None) -> None:
        if config in errors:
            return
        try:
            reports[config].append(run_config(config, address, args, paths, scratch))
        except BenchFailure as e:
            errors[config] = str(e)
            print(f"    {config}: FAILED\n" + "\n".join("      " + l for l in str(e).splitlines()), file=sys.stderr, flush=True)

    with _cluster.terminate_cleanly():
        for r in range(args.runs):
            load = _common.machine_info()["loadavg"]
            round_load.append(load)
            print(f"  round {r + 1}/{args.runs} (load average {load})", flush=True)
            if "local" in configs:
                attempt("local", None)
            if not [c for c in ray_configs if c not in errors]:
                continue
            cluster = None
            rig: dict[str, float] = {}
            try:
                t0 = time.perf_counter()
                cluster = LocalRayCluster(workers=WORKERS[ray_configs[0]], cpus_per_worker=CPUS_PER_WORKER)
                rig["start_s"] = time.perf_counter() - t0
                for config in ray_configs:
                    while len(cluster.workers) < WORKERS[config]:
                        t1 = time.perf_counter()
                        cluster.add_worker(num_cpus=CPUS_PER_WORKER)
                        rig["add_worker_s"] = time.perf_counter() - t1
                    attempt(config, cluster.address)
            finally:
                if cluster is not None:
                    t2 = time.perf_counter()
                    cluster.shutdown()
                    rig["shutdown_s"] = time.perf_counter() - t2
                rigs.append(rig)
            print("    rig: " + ", ".join(f"{k} {v:.1f}s" for k, v in rig.items()), flush=True)
    return reports, errors, rigs, round_load


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(configs: list[str], reports: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for workload in args.only.split(","):
        rows = {}
        for c in configs:
            reps = reports.get(c) or []
            if not reps:
                continue
            runs = [rep[workload] for rep in reps]
            nstages = len(runs[0]["stages"])
            row: dict[str, Any] = {
                "runs": len(runs),
                "job": _common.summarize([r["job_s"] for r in runs]),
                "first_job_s": med([rep["first"]["job_s"] for rep in reps]) if reps[0]["first"]["workload"] == workload else None,
                "stage_medians_s": [med([r["stages"][i]["seconds"] for r in runs]) for i in range(nstages)],
                "stage_names": [s["stage"] for s in runs[0]["stages"]],
                "stage_partitions": [s["npartitions"] for s in runs[0]["stages"]],
                "ray_cpus": reps[0].get("ray_cpus"),
                "connect_s": med([rep["connect_s"] for rep in reps]) if "connect_s" in reps[0] else None,
            }
            if workload == "tiny":
                stage = [r["stages"][0]["seconds"] for r in runs]
                row["stage"] = _common.summarize(stage)
                row["per_task_ms"] = 1000 * med(stage) / args.tiny_partitions
                row["in_task_median_ms"] = med([r["tasks"]["in_task_median_ms"] for r in runs])
                row["in_task_sum_s"] = med([r["tasks"]["in_task_sum_s"] for r in runs])
                # slot time per task not spent inside a task: dispatch, scheduling, result handling,
                # commit records, idle slots (a slot = one CPU of the executor)
                row["outside_task_ms"] = med([
                    1000 * (r["stages"][0]["seconds"] * slots(c) - r["tasks"]["in_task_sum_s"]) / r["tasks"]["count"] for r in runs
                ])
                row["first_task_start_after_s"] = med([r["tasks"]["first_task_start_after_s"] for r in runs])
                row["last_task_start_after_s"] = med([r["tasks"]["last_task_start_after_s"] for r in runs])
                row["worker_pids"] = max(r["tasks"]["worker_pids"] for r in runs)
                row["driver_cpu_per_task_ms"] = med([1000 * r["driver_cpu_s"] / r["tasks"]["count"] for r in runs])
                refs = [rep.get("reference") or {} for rep in reps]
                row["duckdb_open_close_ms"] = med([x["duckdb_open_close_ms"] for x in refs if "duckdb_open_close_ms" in x])
                row["ray_noop_per_task_ms"] = med([x["ray_noop_per_task_ms"] for x in refs if "ray_noop_per_task_ms" in x]) if c != "local" else None
            rows[c] = row
        out[workload] = rows
    return out


def slots(config: str) -> int:
    return CPUS_PER_WORKER * WORKERS[config] if config in WORKERS else (os.cpu_count() or 1)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def render(summary: dict[str, Any], args: argparse.Namespace) -> str:
    parts = []
    if "hash" in summary:
        rows = summary["hash"]
        base, one = (rows.get("local") or {}).get("job", {}).get("median"), (rows.get("ray1") or {}).get("job", {}).get("median")
        body = []
        for c, r in rows.items():
            j = r["job"]
            st = " + ".join(f"{s:.2f}" for s in r["stage_medians_s"])
            first = f"{r['first_job_s']:.2f}" if r["first_job_s"] is not None else "-"
            body.append([c, str(slots(c)), f"{j['median']:.2f}", f"{j['min']:.2f}", f"{j['max']:.2f}", st,
                         first, ratio(j["median"], base), ratio(j["median"], one) if c != "local" else "-"])
        names = next(iter(rows.values()))["stage_names"] if rows else []
        parts.append(
            f"hash repartition: {args.rows:,} rows in {args.files} files, repartition({args.partitions}, hash_by='key') "
            f"+ GROUP BY key + write_parquet; medians of {args.runs} rounds (seconds; first = the warm-up job)\n"
            + _common.format_table(
                ["config", "cpus", "job med", "min", "max", "stages med (" + " + ".join(names) + ")", "first", "vs local", "vs ray1"], body)
        )
    if "tiny" in summary:
        rows = summary["tiny"]
        base = (rows.get("local") or {}).get("per_task_ms")
        one = (rows.get("ray1") or {}).get("per_task_ms")
        body = []
        for c, r in rows.items():
            s = r["stage"]
            body.append([c, str(slots(c)), f"{r['job']['median']:.2f}", f"{s['median']:.2f}", f"{s['min']:.2f}", f"{s['max']:.2f}",
                         f"{r['per_task_ms']:.2f}", f"{r['per_task_ms'] * slots(c):.1f}", f"{r['in_task_median_ms']:.1f}",
                         f"{r['outside_task_ms']:.1f}", ratio(r["per_task_ms"], base), ratio(r["per_task_ms"], one) if c != "local" else "-"])
        refs = []
        for c, r in rows.items():
            ref = f"{c}: driver CPU {r['driver_cpu_per_task_ms']:.1f} ms per task, DuckDB open+close {r['duckdb_open_close_ms']:.1f} ms"
            if r.get("ray_noop_per_task_ms") is not None:
                ref += f", empty Ray task {r['ray_noop_per_task_ms']:.2f} ms per task ({args.tiny_partitions} at once)"
            refs.append(ref)
        parts.append(
            f"per-task overhead: {args.tiny_rows:,} rows, repartition({args.tiny_partitions}, by_rows=True) + trivial partial_sql "
            f"+ take_all; medians of {args.runs} rounds\n"
            "  per task = stage seconds / tasks (throughput with every slot busy); x slots = slot time per task;\n"
            "  in-task = median time inside run_task (DuckDB connect, read, write); outside = slot time per task not\n"
            "  spent inside a task ((stage x slots - sum of in-task) / tasks: dispatch, scheduling, results, commits, idle)\n"
            + _common.format_table(
                ["config", "slots", "job med s", "stage med s", "min", "max", "per task ms", "x slots ms", "in-task ms", "outside ms", "vs local", "vs ray1"], body)
            + "\n  references (medians, measured in the driver process):\n    " + "\n    ".join(refs)
        )
    return "\n\n".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="rounds: timed jobs per workload and configuration (default 3)")
    p.add_argument("--rows", type=int, default=4_000_000, help="rows of the hash workload's dataset (default 4,000,000)")
    p.add_argument("--files", type=int, default=8, help="Parquet files of that dataset (default 8)")
    p.add_argument("--keys", type=int, default=500_000, help="distinct-key range of that dataset (default 500,000)")
    p.add_argument("--partitions", type=int, default=8, help="hash partitions (default 8)")
    p.add_argument("--tiny-rows", type=int, default=5000, help="rows of the tiny table (default 5000)")
    p.add_argument("--tiny-partitions", type=int, default=1000, help="tasks of the tiny stage (default 1000)")
    p.add_argument("--only", default=",".join(WORKLOADS), help="workloads: hash,tiny")
    p.add_argument("--configs", default=",".join(CONFIGS), help="configurations: local,ray1,ray2")
    p.add_argument("--data", type=pathlib.Path, default=_common.BENCH_DIR / "data" / "scaleout", help="where generated data lives")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per configuration's child process")
    p.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    p.add_argument("--address", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--workloads", help=argparse.SUPPRESS)
    p.add_argument("--hash-dir", help=argparse.SUPPRESS)
    p.add_argument("--tiny-path", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def pick(raw: str, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [x.strip() for x in raw.split(",") if x.strip()]
    bad = [x for x in chosen if x not in allowed]
    if bad or not chosen:
        raise SystemExit(f"unknown {what} {bad}; choose from {','.join(allowed)}")
    return [x for x in allowed if x in chosen]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    if args.runs < 1:
        raise SystemExit("--runs must be >= 1")
    workloads = pick(args.only, WORKLOADS, "workloads")
    args.only = ",".join(workloads)
    configs = pick(args.configs, CONFIGS, "configurations")
    started = time.perf_counter()
    data = args.data.resolve()
    paths = {}
    if "hash" in workloads:
        paths["hash"] = str(ensure_hash_data(data, args.rows, args.files, args.keys))
    if "tiny" in workloads:
        paths["tiny"] = str(ensure_tiny_data(data, args.tiny_rows))
    machine = _common.machine_info()
    print(f"scale-out bench: configs {','.join(configs)}, workloads {args.only}, machine {machine}", flush=True)
    reports, errors, rigs, round_load = measure(args, configs, paths)
    summary = summarize(configs, reports, args)
    load_end = _common.machine_info()["loadavg"]
    print("\n" + render(summary, args))
    notes = []
    if rigs:
        keys = dict.fromkeys(k for rig in rigs for k in rig)
        notes.append("rig " + ", ".join(f"{k} {med([rig[k] for rig in rigs if k in rig]):.1f}s" for k in keys))
    for c in configs:
        connect = [rep["connect_s"] for rep in reports.get(c, []) if "connect_s" in rep]
        if connect:
            notes.append(f"{c} Ray connect {med(connect):.2f}s")
    if notes:
        print("\nnot in any job time (medians): " + "; ".join(notes))
    print(f"\nload average at start {machine['loadavg']}, at end {load_end} ({machine['cpus']} cpus); "
          f"total {time.perf_counter() - started:.0f}s")
    path = _common.write_json("scaleout", {
        "args": {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items() if not k.startswith(("child", "address", "workdir", "workloads", "hash_dir", "tiny_path"))},
        "machine": machine, "loadavg_end": load_end, "loadavg_rounds": round_load, "rigs": rigs,
        "summary": summary, "reports": reports, "errors": errors,
    })
    print(f"wrote {path}")
    return _common.exit_status(errors, "configuration(s)")


if __name__ == "__main__":
    sys.exit(main())
