"""Per-task overhead (issue 12): 1,000 tiny partitions, in-process and on a warm Ray cluster.

    python bench/tasks.py [--runs 3] [--partitions 1000] [--rows 5000] [--configs local,ray-warm,duckdb]

The program is scaleout.py's `tiny` workload: `read_parquet(file).repartition(1000,
by_rows=True)`, a trivial `partial_sql("SELECT key, v * 2 AS v2 FROM {0}")`, `take_all()`, over
a 5,000-row file: one stage of 1,000 tasks that do almost nothing, so its time is what pond and
its executor cost per task.

  local     `pond_core.init(executor="local")`: tasks on threads of the driver process
  ray-warm  a `ray start --head` cluster started once per script run, outside every timing,
            then one untimed warm-up driver; each measurement is a new driver process that
            connects by address (as an Airflow stage task or a Prefect flow run does), so it
            pays connecting and Ray's per-job worker start-up, never the cluster's start
  ray-long  the same cluster, but a driver that has already run one such job in this process
            (as the pond service's long-lived driver does, issue 27): each measurement runs the
            job once untimed, then again in a new session of the same process (Ray connected,
            pond imported, warm workers known, the catalog open), and times the second
  duckdb    DuckDB alone, the same query over the same file in one statement, in the same rounds:
            the floor pond's per-task cost is measured against (issue 25)

On Ray, small tasks travel in batches per warm-worker call (pond_core/execute/batches.py);
ray-long's report (the JSON) says how many worker calls its two jobs made.

scaleout.py measures steady-state throughput inside one long-lived driver (after a warm-up job);
this script measures what a new driver pays for a 1,000-task stage, which is what issue 12's
"1,000 tiny partitions in well under 5 s" is about. Every measurement is a fresh process, run
in rounds (each configuration once per round) so both share the load of the moment.

What is timed, per run: **wall**, the child process from spawn to exit minus its result check;
**job**, inside the child from a started session to the rows in hand (on a fresh Ray driver it
includes the workers starting); **stage**, the stage's own seconds from its manifest. Per-task
figures divide by the number of tasks. The target (≤ 5 s for the job) is printed PASS/FAIL,
never asserted. A per-phase profile (pond_core/phases.py: import, init, plan, catalog, list and
footers, tasks, commit, read-back; medians) follows the table, so a regression in pond's own
fixed or per-task costs shows which phase it is in. Peak RSS: the child's process tree and, for ray-warm, the cluster's tree
(see _rss.py). A wrong result or a crash fails the configuration and the script exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import _cluster
import _common
import scaleout
from _common import BenchFailure, ChildRun

CONFIGS = ("local", "ray-warm", "ray-long", "duckdb")
WARM = "ray-warm"
LONG = "ray-long"
ON_CLUSTER = (WARM, LONG)
DUCKDB = "duckdb"
PHASES = ("import", "init", "plan", "catalog", "list", "tasks", "commit", "read-back")
TARGET_JOB_S = 5.0  # issue 12: 1,000 tiny partitions "in well under 5 s", in-process and on a warm cluster
MIB = 1 << 20


# ---------------------------------------------------------------- child


def child_main(args: argparse.Namespace) -> None:
    """One measurement: import pond, run the tiny stage in a new session, check the rows."""
    if args.child == DUCKDB:
        duckdb_main(args)
        return
    work = pathlib.Path(args.workdir)
    t0 = time.perf_counter()
    import pond_core  # noqa: F401

    import_s = time.perf_counter() - t0
    address = args.address if args.child in ON_CLUSTER else None
    if args.child == LONG:
        run = run_tiny_long(address, args.tiny_path, args.partitions, work)
    else:
        run = scaleout.run_tiny("local" if args.child == "local" else "ray", address, args.tiny_path, args.partitions, work)
    _common.mark_work_done()
    tv = time.perf_counter()
    scaleout.verify_tiny(run, args.rows, args.partitions)
    _common.emit_report({**run, "import_s": import_s, "verify_s": time.perf_counter() - tv, "ok": True})


def run_tiny_long(address: str | None, path: str, partitions: int, work: pathlib.Path) -> dict[str, Any]:
    """The tiny job as a long-lived driver runs it: once untimed, then timed in a new session of
    the same process (a new job id, so nothing is reused; the first session stays open so the
    Ray connection it made stays up)."""
    import pond_core

    first = pond_core.init(executor="ray", ray_address=address, data_root=str(work / "first"))
    try:
        first.partial_sql(scaleout.TINY_SQL, first.read_parquet(path).repartition(partitions, by_rows=True)).take_all()
        run = scaleout.run_tiny("ray", address, path, partitions, work)
        run["calls"] = _calls(first)
    finally:
        first.shutdown()
    return run


def _calls(session: Any) -> int | None:
    """Worker calls the session's warm pool made so far (both jobs of ray-long share it)."""
    warm = getattr(session.executor(), "_warm", None)
    return None if warm is None else int(warm.calls)


def duckdb_main(args: argparse.Namespace) -> None:
    """DuckDB alone: the tiny query over the whole file in one statement, rows into Python."""
    t0 = time.perf_counter()
    import duckdb

    import_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    con = duckdb.connect()
    cursor = con.execute(f"SELECT key, v * 2 AS v2 FROM read_parquet('{args.tiny_path}')")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    con.close()
    job_s = time.perf_counter() - t1
    _common.mark_work_done()
    want_sum = sum(2 * (i % 97) for i in range(args.rows))
    if len(rows) != args.rows or sum(r["v2"] for r in rows) != want_sum:
        raise BenchFailure(f"duckdb: got {len(rows)} rows; want {args.rows} summing to {want_sum}")
    _common.emit_report({"job_s": job_s, "import_s": import_s, "ok": True})


# ---------------------------------------------------------------- parent


def run_one(config: str, args: argparse.Namespace, path: pathlib.Path, scratch: pathlib.Path, head: _cluster.RayHead | None) -> ChildRun:
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"tasks-{config}-", dir=scratch))
    cmd = [__file__, "--child", config, "--workdir", str(work), "--tiny-path", str(path),
           "--partitions", str(args.partitions), "--rows", str(args.rows)]
    warm = config in ON_CLUSTER and head is not None
    if warm and head:
        cmd += ["--address", head.address]
    try:
        return _common.run_child(cmd, timeout_s=args.timeout, env=_cluster.driver_env() if warm else None,
                                 trees={"cluster": head.pid} if warm and head else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, configs: list[str], path: pathlib.Path) -> tuple[dict[str, list[ChildRun]], dict[str, str], list[float], dict[str, Any]]:
    runs: dict[str, list[ChildRun]] = {c: [] for c in configs}
    errors: dict[str, str] = {}
    loads: list[float] = []
    cluster: dict[str, Any] = {}
    scratch = _common.BENCH_DIR / "out" / "work"
    scratch.mkdir(parents=True, exist_ok=True)
    cm = _cluster.RayHead(num_cpus=os.cpu_count() or 1) if set(ON_CLUSTER) & set(configs) else contextlib.nullcontext()
    with _cluster.terminate_cleanly(), cm as head:
        if head is not None:
            cluster.update(address=head.address, start_s=round(head.start_s, 1))
            print(f"  Ray head at {head.address} started in {head.start_s:.1f}s (not timed)", flush=True)
            try:
                first = run_one(WARM, args, path, scratch, head)
                cluster["warmup_wall_s"] = first.wall_s
                print(f"  warm-up driver (untimed): wall {first.wall_s:.2f}s, job {first.report['job_s']:.2f}s", flush=True)
            except BenchFailure as e:
                cluster["warmup_error"] = str(e)
                print(f"  warm-up driver FAILED\n{e}", file=sys.stderr, flush=True)
        for i in range(args.runs):
            load = os.getloadavg()[0]
            loads.append(round(load, 2))
            for c in configs:
                if c in errors:
                    continue
                try:
                    r = run_one(c, args, path, scratch, head)
                    runs[c].append(r)
                    rep = r.report
                    if c == DUCKDB:
                        print(f"  round {i + 1} {c:<8} wall {r.wall_s:6.2f}s  job {rep['job_s']:6.2f}s  load {load:4.2f}", flush=True)
                        continue
                    line = (f"wall {r.wall_s:6.2f}s  job {rep['job_s']:6.2f}s  stage {rep['stages'][0]['seconds']:6.2f}s  "
                            f"first task after {rep['tasks']['first_task_start_after_s']:5.2f}s  load {load:4.2f}  "
                            f"rss {r.rss_peak['child'] / MIB:,.0f} MiB")
                    if "cluster" in r.rss_peak:
                        line += f"  cluster {r.rss_before['cluster'] / MIB:,.0f} -> {r.rss_peak['cluster'] / MIB:,.0f} MiB"
                    print(f"  round {i + 1} {c:<8} {line}", flush=True)
                except BenchFailure as e:
                    errors[c] = str(e)
                    print(f"  round {i + 1} {c}: FAILED\n{e}", file=sys.stderr, flush=True)
    if head is not None:
        cluster["stop_s"] = round(head.stop_s, 1)
    return runs, errors, loads, cluster


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(configs: list[str], runs: dict[str, list[ChildRun]], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n = args.partitions
    for c in configs:
        rs = runs.get(c) or []
        if not rs:
            continue
        reps = [r.report for r in rs]
        job = [rep["job_s"] for rep in reps]
        if c == DUCKDB:
            out[c] = {"runs": len(rs), "wall": _common.summarize([r.wall_s for r in rs]), "job": _common.summarize(job),
                      "import_s": med([rep["import_s"] for rep in reps]), "reports": reps}
            continue
        stage = [rep["stages"][0]["seconds"] for rep in reps]
        out[c] = {
            "runs": len(rs),
            "wall": _common.summarize([r.wall_s for r in rs]),
            "job": _common.summarize(job),
            "stage": _common.summarize(stage),
            "job_per_task_ms": 1000 * med(job) / n,
            "stage_per_task_ms": 1000 * med(stage) / n,
            "first_task_after_s": med([rep["tasks"]["first_task_start_after_s"] for rep in reps]),
            "in_task_median_ms": med([rep["tasks"]["in_task_median_ms"] for rep in reps]),
            "driver_cpu_per_task_ms": med([1000 * rep["driver_cpu_s"] / n for rep in reps]),
            "worker_pids": max(rep["tasks"]["worker_pids"] for rep in reps),
            "import_s": med([rep["import_s"] for rep in reps]),
            "phases_s": {p: med([_phase(rep, p) for rep in reps]) for p in PHASES},
            "shutdown_s": med([rep["shutdown_s"] for rep in reps]),
            "rss_child_peak_bytes": [r.rss_peak["child"] for r in rs],
            "rss_cluster_peak_bytes": [r.rss_peak["cluster"] for r in rs if "cluster" in r.rss_peak],
            "rss_cluster_before_bytes": [r.rss_before["cluster"] for r in rs if "cluster" in r.rss_before],
            "sampler": [r.sampler for r in rs],
            "verdict": f"{'PASS' if med(job) <= TARGET_JOB_S else 'FAIL'} (job <= {TARGET_JOB_S:g}s)",
            "reports": reps,
        }
    return out


def _phase(report: dict[str, Any], phase: str) -> float:
    if phase in ("import", "init"):
        return float(report[f"{phase}_s"])
    return float(report.get("phases", {}).get(phase, float("nan")))


def render_phases(summary: dict[str, Any]) -> str:
    """Where each pond configuration's time went, by phase (medians), beside DuckDB's job."""
    headers = ["config", *(f"{p} s" for p in PHASES), "job s", "job / duckdb"]
    duck = summary.get(DUCKDB, {}).get("job", {}).get("median")
    body = []
    for c, r in summary.items():
        if c == DUCKDB:
            continue
        ratio = f"{r['job']['median'] / duck:.1f}x" if duck else "-"
        body.append([c, *(f"{r['phases_s'][p]:.3f}" for p in PHASES), f"{r['job']['median']:.2f}", ratio])
    if duck is not None:
        body.append([DUCKDB, f"{summary[DUCKDB]['import_s']:.3f}", *("-" for _ in PHASES[1:]), f"{duck:.3f}", "1.0x"])
    return (
        "per-phase profile (medians; phases nest inside the job: plan/catalog/list/tasks/commit/read-back run inside it)\n"
        + _common.format_table(headers, body)
    )


def render(summary: dict[str, Any], args: argparse.Namespace) -> str:
    headers = ["config", "wall med s", "job med s", "min", "max", "stage med s", "job ms/task", "stage ms/task",
               "first task s", "in-task ms", "driver CPU ms/task", "rss MiB", "cluster MiB", "target"]
    body = []
    for c, r in summary.items():
        if c == DUCKDB:
            continue
        cluster = "-"
        if r["rss_cluster_peak_bytes"]:
            cluster = f"{med(r['rss_cluster_before_bytes']) / MIB:,.0f} -> {med(r['rss_cluster_peak_bytes']) / MIB:,.0f}"
        body.append([c, f"{r['wall']['median']:.2f}", f"{r['job']['median']:.2f}", f"{r['job']['min']:.2f}", f"{r['job']['max']:.2f}",
                     f"{r['stage']['median']:.2f}", f"{r['job_per_task_ms']:.2f}", f"{r['stage_per_task_ms']:.2f}",
                     f"{r['first_task_after_s']:.2f}", f"{r['in_task_median_ms']:.1f}", f"{r['driver_cpu_per_task_ms']:.2f}",
                     f"{med(r['rss_child_peak_bytes']) / MIB:,.0f}", cluster, r["verdict"]])
    return (
        f"{args.partitions:,} tasks: {args.rows:,} rows, repartition({args.partitions}, by_rows=True) + trivial partial_sql + take_all; "
        f"medians of {args.runs} rounds\n"
        + _common.format_table(headers, body)
        + "\nwall = fresh process spawn to exit minus the result check; job = session started to rows in hand (a fresh\n"
        "driver: includes Ray workers starting); stage = the stage's own seconds; first task = stage start to the first\n"
        "task running; in-task = median time inside one task; rss = peak summed RSS of the child's tree; cluster = the\n"
        "Ray head's tree, idle before the run -> peak during it\n\n"
        + render_phases(summary)
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="rounds: measurements per configuration (default 3)")
    p.add_argument("--partitions", type=int, default=1000, help="tasks of the stage (default 1000)")
    p.add_argument("--rows", type=int, default=5000, help="rows of the tiny table (default 5000)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="local,ray-warm,ray-long,duckdb")
    p.add_argument("--data", type=pathlib.Path, default=_common.BENCH_DIR / "data" / "scaleout", help="where the tiny file lives")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per child process")
    p.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    p.add_argument("--address", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--tiny-path", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    if args.runs < 1:
        raise SystemExit("--runs must be >= 1")
    configs = scaleout.pick(args.configs, CONFIGS, "configurations")
    started = time.perf_counter()
    path = scaleout.ensure_tiny_data(args.data.resolve(), args.rows)
    machine = _common.machine_info()
    print(f"per-task bench: {args.partitions} tasks, configs {','.join(configs)}, machine {machine}", flush=True)
    runs, errors, loads, cluster = measure(args, configs, path)
    summary = summarize(configs, runs, args)
    load_end = _common.machine_info()["loadavg"]
    print("\n" + render(summary, args))
    if cluster:
        print(f"\nRay head: started in {cluster.get('start_s')}s, stopped in {cluster.get('stop_s')}s (neither timed); "
              f"untimed warm-up driver {cluster.get('warmup_wall_s', float('nan')):.2f}s")
    print(f"\nload average at each round's start {loads}; at start {machine['loadavg']}, at end {load_end} "
          f"({machine['cpus']} cpus); total {time.perf_counter() - started:.0f}s")
    out = _common.write_json("tasks", {
        "args": {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items() if k not in ("child", "address", "workdir", "tiny_path")},
        "machine": machine, "loadavg_rounds": loads, "loadavg_end": load_end, "cluster": cluster,
        "target_job_s": TARGET_JOB_S, "summary": summary, "errors": errors,
    })
    print(f"wrote {out}")
    return _common.exit_status(list(errors), "configuration(s)")


if __name__ == "__main__":
    sys.exit(main())
