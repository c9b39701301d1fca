"""TPC-H benchmark (issues 2, 12 and 27): pond in-process, on Ray and through the pond service,
against plain DuckDB.

    python bench/tpch.py [--sf 1] [--runs 3] [--data bench/data] [--only W1,W2,W3]
                         [--variants duckdb,pond,pond-ray,pond-ray-warm,pond-service] [--task-memory 1GB]

Workloads over TPC-H Parquet generated once with tpchgen-cli:
  W1  Q1's aggregation over lineitem
  W2  hash repartition of lineitem by l_orderkey into 8 partitions, written as Parquet
  W3  lineitem and orders hash-partitioned by order key, joined per partition, revenue by
      o_orderpriority

Variants:
  duckdb         plain DuckDB, one connection, the same work as one query
  pond           pond_core.init() defaults (the in-process executor)
  pond-ray       pond_core.init(executor="ray"): pond starts a local Ray, and its start counts
  pond-ray-warm  a `ray start --head` cluster started once per script run, before and outside
                 every timing (as in production); each measured child is a new driver that
                 connects by address, as an Airflow stage task or a Prefect flow run does, so it
                 pays connecting and Ray's per-job worker start-up, not the cluster's start
  pond-service   (W1 and W3; issue 27) a `pond serve` service on that cluster, started once per
                 script run outside every timing; each measured child is a thin client (no Ray
                 on its code path: pond_core's compiler and its ServiceClient over HTTP) that
                 compiles the pipeline, submits its stages in dependency order, polls them until
                 done and reads the final stage's committed files, as an orchestrator's tasks do;
                 the per-stage overhead submit -> running (the service's own timestamps) is
                 printed too

Every measurement is a fresh Python process (this script in ``--child W VARIANT`` mode); the
parent times it from spawn to exit and subtracts only the child's own result check (and the
untimed read of pond's stage records). The child checks its result against DuckDB's and exits
non-zero when it is wrong. While it runs, the parent samples the peak RSS of the child's process
tree, and for pond-ray-warm separately that of the cluster's (the `ray start` process and all
its descendants: GCS, raylet, agents, the job's worker processes), which is where the work
runs; see bench/README.md for what exactly is counted.

`--task-memory 1GB` gives pond tasks that memory limit (`memory_limit` and `max_task_memory`,
so no retry gets more) and a spill directory, and the DuckDB baseline the same `SET
memory_limit` and a temp directory on its one connection; the spill directories' peak disk use
is reported. Time targets are issue 12's, at SF1 and SF10, without a memory limit; they are
printed PASS/FAIL and never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from typing import Any

import _cluster
import _common
import _service
from _common import BenchFailure, ChildRun

WORKLOADS = ("W1", "W2", "W3")
VARIANTS = ("duckdb", "pond", "pond-ray", "pond-ray-warm", "pond-service")
WARM = "pond-ray-warm"
SERVICE = "pond-service"
SERVICE_WORKLOADS = ("W1", "W3")  # issue 27's targets; W2 writes a dataset the bench reads in place
ON_CLUSTER = (WARM, SERVICE)  # the variants that need the Ray head
# Issue 12 (issue 27 for pond-service): ratio of medians (variant wall / DuckDB wall in the same run), per scale factor and
# variant. Only these scale factors have targets; runs with --task-memory have none.
TARGETS: dict[float, dict[str, dict[str, float]]] = {
    1.0: {"pond": {"W1": 1.1, "W2": 1.0, "W3": 1.3}, WARM: {"W1": 1.5, "W3": 1.5}, SERVICE: {"W1": 1.5, "W3": 1.5}},
    10.0: {"pond": {"W1": 1.1, "W2": 1.0, "W3": 1.3}, WARM: {"W1": 1.2, "W3": 1.2}},
}
# 8 files per table at every scale: both engines read the same files, DuckDB parallelises over
# row groups (tpchgen's ~7 MiB: 528 in SF10 lineitem) whatever the file count, and pond splits
# a source over as many producer tasks as the executor has cores (2 here), so 8 files are
# enough to keep every core busy on both sides; more files would change neither side's plan.
FILES_PER_TABLE = 8
MIB = 1 << 20
NPARTS = 8

Q1 = """
select
    l_returnflag,
    l_linestatus,
    sum(l_quantity) as sum_qty,
    sum(l_extendedprice) as sum_base_price,
    sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
    sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge,
    avg(l_quantity) as avg_qty,
    avg(l_extendedprice) as avg_price,
    avg(l_discount) as avg_disc,
    count(*) as count_order
from lineitem
where l_shipdate <= date '1998-12-01' - interval '90' day
group by l_returnflag, l_linestatus
order by l_returnflag, l_linestatus
"""

W3_DUCKDB = """
select o_orderpriority, sum(l_extendedprice * (1 - l_discount)) as revenue
from {lineitem} join {orders} on l_orderkey = o_orderkey
group by o_orderpriority order by o_orderpriority
"""

W3_PARTIAL = (
    "select o_orderpriority, sum(l_extendedprice*(1-l_discount)) as revenue "
    "from {0} join {1} on l_orderkey = o_orderkey group by o_orderpriority"
)
W3_FINAL = "select o_orderpriority, sum(revenue) as revenue from {0} group by 1 order by 1"


# ---------------------------------------------------------------- data


def tpchgen_binary() -> str:
    beside = pathlib.Path(sys.executable).parent / "tpchgen-cli"
    found = str(beside) if beside.exists() else shutil.which("tpchgen-cli")
    if not found:
        raise SystemExit("tpchgen-cli not found: pip install tpchgen-cli")
    return found


def ensure_data(sf: float, data_root: pathlib.Path) -> pathlib.Path:
    """Generate lineitem and orders as Parquet once; reuse a complete earlier generation."""
    final = data_root / f"sf{sf:g}"
    if (final / "lineitem").is_dir() and (final / "orders").is_dir():
        return final
    staging = data_root / f"sf{sf:g}.generating"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    cmd = [
        tpchgen_binary(), "parquet", "-s", f"{sf:g}", "--tables", "lineitem,orders",
        "--parts", str(FILES_PER_TABLE), "-o", str(staging), "--no-progress", "-q",
    ]
    print(f"generating TPC-H SF{sf:g}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    staging.rename(final)  # atomic: a half-written generation is never reused
    print(f"generated in {time.perf_counter() - t0:.1f}s -> {final}", flush=True)
    return final


def table_files(data_dir: pathlib.Path, table: str) -> list[str]:
    files = sorted(str(p) for p in (data_dir / table).glob("*.parquet"))
    if not files:
        raise SystemExit(f"no Parquet files for {table} under {data_dir}")
    return files


def sql_files(files: list[str]) -> str:
    return "read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])"


# ---------------------------------------------------------------- child: the timed work


Timings = dict[str, float]


def run_duckdb(workload: str, li: list[str], orders: list[str], work: pathlib.Path, memory: str | None) -> tuple[Any, Timings]:
    t0 = time.perf_counter()
    import duckdb

    t1 = time.perf_counter()
    con = duckdb.connect()
    if memory:  # the same limit as one pond task's, on the one connection that does all the work
        con.execute(f"SET memory_limit = '{memory}'")
        con.execute(f"SET temp_directory = '{work / 'spill'}'")
    t2 = time.perf_counter()
    result: Any
    if workload == "W1":
        result = as_rows(con.execute(Q1.replace("lineitem", sql_files(li))))
    elif workload == "W2":
        out = work / "w2-out"
        con.execute(
            f"COPY (SELECT *, hash(l_orderkey) % {NPARTS} AS part FROM {sql_files(li)}) "
            f"TO '{out}' (FORMAT parquet, PARTITION_BY (part))"
        )
        result = out
    else:
        rows = con.execute(W3_DUCKDB.format(lineitem=sql_files(li), orders=sql_files(orders))).fetchall()
        result = {p: float(r) for p, r in rows}
    t3 = time.perf_counter()
    con.close()
    t4 = time.perf_counter()
    return result, {"import_s": t1 - t0, "init_s": t2 - t1, "work_s": t3 - t2, "shutdown_s": t4 - t3}


def pond_options(variant: str, work: pathlib.Path, address: str | None, memory: str | None) -> dict[str, Any]:
    """`pond_core.init` keywords for a pond variant: defaults except what the variant is about."""
    options: dict[str, Any] = {"data_root": str(work / "pond-root")}
    if variant == "pond-ray":
        options["executor"] = "ray"
    elif variant == WARM:
        if not address:
            raise BenchFailure(f"{WARM} needs the cluster's --address")
        options.update(executor="ray", ray_address=address)
    if memory:
        # max_task_memory too: otherwise a task that runs out of memory is retried with twice
        # as much, and the run would "complete under 1 GB" with 2 GB tasks.
        options.update(memory_limit=memory, max_task_memory=memory, spill_dir=str(work / "spill"))
    return options


def run_pond(workload: str, li: list[str], orders: list[str], work: pathlib.Path, options: dict[str, Any]) -> tuple[Any, Timings, list[dict[str, Any]]]:
    t0 = time.perf_counter()
    import pond_core
    from pond_core import phases

    t1 = time.perf_counter()
    sp = pond_core.init(**options)
    t2 = time.perf_counter()
    phases.reset()
    result: Any
    if workload == "W1":
        # Rows to Python, as the DuckDB baseline's fetchall(): take_all() (to_arrow() would add
        # pyarrow's import, which the baseline does not pay).
        result = dict_rows(w1_frame(sp, li).take_all())
    elif workload == "W2":
        out = work / "w2-out"
        sp.read_parquet(li).repartition(NPARTS, hash_by="l_orderkey").write_parquet(str(out))
        result = out
    else:
        result = w3_result(w3_frame(sp, li, orders).take_all())
    t3 = time.perf_counter()
    job_phases = phases.seconds()
    stages = stage_stats(sp)  # untimed: read before shutdown removes the job's staging
    t4 = time.perf_counter()
    sp.shutdown()
    t5 = time.perf_counter()
    timings = {"import_s": t1 - t0, "init_s": t2 - t1, "work_s": t3 - t2, "stats_s": t4 - t3, "shutdown_s": t5 - t4,
               **{f"phase_{name}_s": s for name, s in job_phases.items()}}  # pond_core/phases.py, inside work
    return result, timings, stages


def run_service(workload: str, li: list[str], orders: list[str], work: pathlib.Path, url: str) -> tuple[Any, Timings, list[dict[str, Any]]]:
    """A thin client's run: compile the workload's pipeline, hand its stages to the pond
    service, read the final stage's committed rows, close the run. No Ray on this path."""
    t0 = time.perf_counter()
    import uuid

    import duckdb  # noqa: F401  (reads the result back: its import belongs to the import phase, as DuckDB's own)

    from pond_core.api import ServiceClient, compile_pipeline

    t1 = time.perf_counter()
    client = ServiceClient(url, os.environ[_service.TOKEN_ENV])
    t2 = time.perf_counter()
    if workload == "W1":
        plan = compile_pipeline(w1_frame, {"lineitem": li}, data_root=str(work / "planning"))
    elif workload == "W3":
        plan = compile_pipeline(w3_frame, {"lineitem": li, "orders": orders}, data_root=str(work / "planning"))
    else:
        raise BenchFailure(f"{SERVICE} runs {', '.join(SERVICE_WORKLOADS)} only, not {workload}")
    t_plan = time.perf_counter()
    run_id = f"tpch-{workload.lower()}-{uuid.uuid4().hex[:12]}"
    statuses, stage_timings = _service.run_stages(client, plan, run_id)
    t_stages = time.perf_counter()
    rows = _service.read_rows(statuses[plan.final.id])
    t_read = time.perf_counter()
    client.close_run(run_id, "success")
    t3 = time.perf_counter()
    client.close()
    t4 = time.perf_counter()
    result = dict_rows(rows) if workload == "W1" else w3_result(rows)
    timings = {"import_s": t1 - t0, "init_s": t2 - t1, "work_s": t3 - t2, "shutdown_s": t4 - t3,
               "plan_s": t_plan - t2, "stages_s": t_stages - t_plan, "read_s": t_read - t_stages, "close_run_s": t3 - t_read,
               "ray_imported": float("ray" in sys.modules)}
    return result, timings, [dataclasses.asdict(t) for t in stage_timings]


def w1_frame(sp: Any, lineitem: list[str]) -> Any:
    """W1 as a pond DataFrame: Q1 over lineitem (the pond variants run it, pond-service compiles it)."""
    return sp.partial_sql(Q1.replace("lineitem", "{0}"), sp.read_parquet(lineitem))


def w3_frame(sp: Any, lineitem: list[str], orders: list[str]) -> Any:
    """W3 as a pond DataFrame: both tables hash-partitioned by order key, joined per partition,
    then one partition summed."""
    l = sp.read_parquet(lineitem).repartition(NPARTS, hash_by="l_orderkey")
    o = sp.read_parquet(orders).repartition(NPARTS, hash_by="o_orderkey")
    part = sp.partial_sql(W3_PARTIAL, l, o)
    return sp.partial_sql(W3_FINAL, part.repartition(1))


def w3_result(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {r["o_orderpriority"]: float(r["revenue"]) for r in rows}


def stage_stats(sp: Any) -> list[dict[str, Any]]:
    """Where a pond job's time went, per stage, from its committed manifests and task records:
    the stage's wall seconds, how long until its first task started (on a fresh Ray driver:
    worker processes starting and importing pond), the time inside tasks, retries."""
    staging = pathlib.Path(sp.config.data_root) / "jobs" / sp.job_id / "staging"
    out = []
    for manifest in staging.glob("*/_manifest.json"):
        r = json.loads(manifest.read_text())["result"]
        tasks = [json.loads(p.read_text()) for p in (manifest.parent / "_tasks").glob("p*.json")]
        tasks = [t for t in tasks if "started_at" in t]  # a partition committed without a task has no timing
        row = {k: r.get(k) for k in ("stage", "npartitions", "rows", "bytes", "seconds", "executor",
                                     "task_retries", "memory_retries", "speculative_attempts")}
        row["started_at"] = r["started_at"]
        if tasks:
            row.update(
                tasks=len(tasks),
                first_task_after_s=round(min(t["started_at"] for t in tasks) - r["started_at"], 3),
                in_task_sum_s=round(sum(t["seconds"] for t in tasks), 3),
                in_task_max_s=round(max(t["seconds"] for t in tasks), 3),
                worker_pids=len({t.get("pid") for t in tasks}),
            )
        out.append(row)
    return sorted(out, key=lambda x: x["started_at"])


def as_rows(cursor: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
    names = [d[0] for d in cursor.description]
    return names, [tuple(r) for r in cursor.fetchall()]


def dict_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    names = list(rows[0]) if rows else []
    return names, [tuple(r[n] for n in names) for r in rows]


# ---------------------------------------------------------------- child: verification (untimed)


def close(a: Any, b: Any, rel: float) -> bool:
    if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)):
        if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal)):
            return a == b  # counts and decimal sums are exact
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=0.0)
    return a == b


def check_con() -> Any:
    """A DuckDB connection for result checks (quiet: no progress bar on stderr)."""
    import duckdb

    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    return con


def verify_w1(got: Any, li: list[str]) -> None:
    want = as_rows(check_con().execute(Q1.replace("lineitem", sql_files(li))))
    if got[0] != want[0]:
        raise BenchFailure(f"W1 columns differ: got {got[0]}, want {want[0]}")
    if len(got[1]) != len(want[1]):
        raise BenchFailure(f"W1 row count differs: got {len(got[1])}, want {len(want[1])}")
    for g, w in zip(got[1], want[1]):
        if len(g) != len(w) or not all(close(x, y, 1e-9) for x, y in zip(g, w)):
            raise BenchFailure(f"W1 row differs:\n got  {g}\n want {w}")


def partition_of(path: pathlib.Path) -> int:
    """The output partition a file belongs to: a hive ``part=K`` directory (DuckDB's COPY) or a
    ``part-K-...`` file name (pond's writer). Any other layout is an error, not a guess."""
    for name in (path.parent.name, path.name):
        m = re.fullmatch(r"part=(\d+)", name) or re.match(r"part-(\d+)\b", name)
        if m:
            return int(m.group(1))
    raise BenchFailure(f"W2 output file {path} names no partition (want part=K/ or part-K-*)")


def verify_w2(out: pathlib.Path, li: list[str]) -> dict[str, Any]:
    """All rows present once, 8 partitions, and every l_orderkey in exactly one of them."""
    files = sorted(
        p for p in out.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(out).parts)
    )
    if not files:
        raise BenchFailure(f"W2 wrote no Parquet files under {out}")
    con = check_con()
    con.execute("create table file_part (filename varchar, pid integer)")
    con.executemany("insert into file_part values (?, ?)", [(str(f), partition_of(f)) for f in files])
    src = f"{sql_files([str(f) for f in files])[:-1]}, filename=true, hive_partitioning=false)"
    got = con.execute(f"select count(*), sum(l_orderkey) from {src}").fetchone()
    want = con.execute(f"select count(*), sum(l_orderkey) from {sql_files(li)}").fetchone()
    if tuple(got) != tuple(want):
        raise BenchFailure(f"W2 (rows, sum of l_orderkey) differ: got {got}, want {want}")
    pids = sorted(r[0] for r in con.execute("select distinct pid from file_part").fetchall())
    if pids != list(range(NPARTS)):
        raise BenchFailure(f"W2 wrote partitions {pids}, want 0..{NPARTS - 1}")
    spanning = con.execute(
        f"select count(*) from (select l_orderkey from {src} join file_part using (filename) "
        f"group by l_orderkey having count(distinct pid) > 1)"
    ).fetchone()[0]
    if spanning:
        raise BenchFailure(f"W2: {spanning} l_orderkey values span more than one partition")
    return {"w2_files": len(files), "w2_rows": int(got[0])}


def verify_w3(got: dict[str, float], li: list[str], orders: list[str]) -> None:
    rows = check_con().execute(W3_DUCKDB.format(lineitem=sql_files(li), orders=sql_files(orders))).fetchall()
    want = {p: float(r) for p, r in rows}
    if set(got) != set(want) or not all(close(got[k], want[k], 1e-6) for k in want):
        raise BenchFailure(f"W3 revenue by priority differs:\n got  {got}\n want {want}")


def child_main(args: argparse.Namespace) -> None:
    workload, variant = args.child
    li, orders = table_files(args.data_dir, "lineitem"), table_files(args.data_dir, "orders")
    stages: list[dict[str, Any]] = []
    if variant == "duckdb":
        result, timings = run_duckdb(workload, li, orders, args.workdir, args.task_memory)
    elif variant == SERVICE:
        result, timings, stages = run_service(workload, li, orders, args.workdir, args.service_url)
    else:
        options = pond_options(variant, args.workdir, args.address, args.task_memory)
        result, timings, stages = run_pond(workload, li, orders, args.workdir, options)
    _common.mark_work_done()  # the parent stops sampling memory: the check below is not the work's
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if workload == "W1":
        verify_w1(result, li)
    elif workload == "W2":
        extra = verify_w2(result, li)
    else:
        verify_w3(result, li, orders)
    _common.emit_report({**timings, **extra, "stages": stages, "verify_s": time.perf_counter() - t0, "ok": True})


# ---------------------------------------------------------------- parent


Key = tuple[str, str]


@dataclasses.dataclass
class Cluster:
    """What the on-cluster variants run against: the warm head, and the service on it."""

    head: _cluster.RayHead | None = None
    service: _service.PondService | None = None


def child_cmd(workload: str, variant: str, args: argparse.Namespace, data_dir: pathlib.Path, work: pathlib.Path, cluster: Cluster) -> list[str]:
    cmd = [__file__, "--child", workload, variant, "--data-dir", str(data_dir), "--workdir", str(work)]
    if variant == WARM and cluster.head:
        cmd += ["--address", cluster.head.address]
    if variant == SERVICE and cluster.service:
        cmd += ["--service-url", cluster.service.url]  # the token goes in the environment
    if args.task_memory:
        cmd += ["--task-memory", args.task_memory]
    return cmd


def child_env(variant: str, cluster: Cluster) -> dict[str, str] | None:
    if variant == WARM and cluster.head:
        return _cluster.driver_env()
    if variant == SERVICE and cluster.service:
        return cluster.service.client_env()
    return None


def trees(variant: str, cluster: Cluster) -> dict[str, int] | None:
    """The process trees sampled beside the child's: on the cluster variants the work runs in
    the head's workers (and the service's replica), which are not the child's descendants."""
    if variant not in ON_CLUSTER or not cluster.head:
        return None
    out = {"cluster": cluster.head.pid}
    if variant == SERVICE and cluster.service:
        out["service"] = cluster.service.pid
    return out


def run_one(workload: str, variant: str, args: argparse.Namespace, data_dir: pathlib.Path, scratch: pathlib.Path, cluster: Cluster) -> ChildRun:
    """One whole-process measurement."""
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"{workload}-{variant}-", dir=scratch))
    try:
        return _common.run_child(
            child_cmd(workload, variant, args, data_dir, work, cluster),
            timeout_s=args.timeout,
            env=child_env(variant, cluster),
            trees=trees(variant, cluster),
            dirs={"spill": str(work / "spill")} if args.task_memory else None,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / MIB:,.0f}"


def run_line(r: ChildRun, load: float) -> str:
    line = f"wall {r.wall_s:7.2f}s  work {r.report['work_s']:7.2f}s  load {load:4.2f}  rss {mib(r.rss_peak.get('child'))} MiB"
    if "cluster" in r.rss_peak:
        line += f"  cluster {mib(r.rss_before.get('cluster'))} -> {mib(r.rss_peak['cluster'])} MiB"
    if r.dir_peak.get("spill"):
        line += f"  spill {mib(r.dir_peak['spill'])} MiB"
    return line


def measure(args: argparse.Namespace, data_dir: pathlib.Path, workloads: list[str], variants: list[str]) -> tuple[dict[Key, list[ChildRun]], dict[Key, str], dict[Key, list[float]], dict[str, Any]]:
    """Run each (workload, variant) args.runs times; variants interleaved within a workload.

    With pond-ray-warm, one Ray head is started first (its start is reported, never timed in a
    run), then one untimed warm-up driver runs, so the first measured driver meets a cluster
    that has served a job before, as in production. The head is stopped on every exit path."""
    runs: dict[Key, list[ChildRun]] = {}
    errors: dict[Key, str] = {}
    loads: dict[Key, list[float]] = {}
    cluster: dict[str, Any] = {}
    scratch = _common.BENCH_DIR / "out" / "work"
    scratch.mkdir(parents=True, exist_ok=True)
    on = Cluster()
    with _cluster.terminate_cleanly(), contextlib.ExitStack() as stack:
        if any(v in ON_CLUSTER for v in variants):
            on.head = stack.enter_context(_cluster.RayHead(num_cpus=os.cpu_count() or 1))
            cluster.update(address=on.head.address, start_s=round(on.head.start_s, 1), num_cpus=on.head.num_cpus)
            print(f"  Ray head at {on.head.address} started in {on.head.start_s:.1f}s (not timed)", flush=True)
        if SERVICE in variants:
            start_service(on, stack, scratch, cluster, errors, workloads)
        for v in (x for x in ON_CLUSTER if x in variants):
            warm_up(v, workloads, args, data_dir, scratch, on, cluster, errors)
        for w in workloads:
            for i in range(args.runs):
                for v in variants:
                    if (w, v) in errors or (v == SERVICE and w not in SERVICE_WORKLOADS):
                        continue
                    load = os.getloadavg()[0]
                    loads.setdefault((w, v), []).append(round(load, 2))
                    try:
                        r = run_one(w, v, args, data_dir, scratch, on)
                        runs.setdefault((w, v), []).append(r)
                        print(f"  {w} {v:<13} run {i + 1}: {run_line(r, load)}", flush=True)
                    except BenchFailure as e:
                        errors[(w, v)] = str(e)
                        print(f"  {w} {v:<13} run {i + 1}: FAILED\n{indent(str(e))}", file=sys.stderr, flush=True)
    if on.head is not None:
        cluster["stop_s"] = round(on.head.stop_s, 1)
    return runs, errors, loads, cluster


def start_service(on: Cluster, stack: contextlib.ExitStack, scratch: pathlib.Path, cluster: dict[str, Any], errors: dict[Key, str], workloads: list[str]) -> None:
    """`pond serve` on the head, once, untimed; a failure to start is every pond-service
    measurement's error (the other variants still run)."""
    assert on.head is not None
    root = pathlib.Path(tempfile.mkdtemp(prefix="pond-service-", dir=scratch))
    stack.callback(shutil.rmtree, root, ignore_errors=True)
    try:
        on.service = stack.enter_context(_service.PondService(on.head.address, root, _cluster.driver_env(), _cluster.free_port()))
    except BenchFailure as e:
        for w in workloads:
            errors[(w, SERVICE)] = f"the pond service did not start: {e}"
        print(f"  pond serve FAILED\n{indent(str(e))}", file=sys.stderr, flush=True)
        return
    cluster["service"] = {"url": on.service.url, "start_s": round(on.service.start_s, 1)}
    print(f"  pond service at {on.service.url} started in {on.service.start_s:.1f}s (not timed)", flush=True)


def warm_up(variant: str, workloads: list[str], args: argparse.Namespace, data_dir: pathlib.Path, scratch: pathlib.Path, on: Cluster, cluster: dict[str, Any], errors: dict[Key, str]) -> None:
    """One untimed run, so the first measured one meets a cluster (or service) that has served
    a job before, as in production."""
    candidates = [w for w in workloads if variant != SERVICE or w in SERVICE_WORKLOADS]
    if not candidates or any((w, variant) in errors for w in candidates):
        return
    try:
        first = run_one(candidates[0], variant, args, data_dir, scratch, on)
        cluster.setdefault("warmup", {})[variant] = {"workload": candidates[0], "wall_s": first.wall_s, "rss_peak": first.rss_peak}
        print(f"  warm-up {variant} ({candidates[0]}, untimed): wall {first.wall_s:.2f}s", flush=True)
    except BenchFailure as e:
        cluster.setdefault("warmup_error", {})[variant] = str(e)
        print(f"  warm-up {variant} FAILED\n{indent(str(e))}", file=sys.stderr, flush=True)


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def med(values: list[float]) -> float | None:
    return _common.summarize(values)["median"] if values else None


def summarize(args: argparse.Namespace, workloads: list[str], variants: list[str], runs: dict[Key, list[ChildRun]], errors: dict[Key, str], loads: dict[Key, list[float]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for w in workloads:
        base = runs.get((w, "duckdb"))
        base_wall = _common.summarize([r.wall_s for r in base])["median"] if base and (w, "duckdb") not in errors else None
        for v in variants:
            if v == SERVICE and w not in SERVICE_WORKLOADS:
                continue  # not measured: no row
            row: dict[str, Any] = {"workload": w, "variant": v, "loadavg_1m": loads.get((w, v), [])}
            if (w, v) in errors:
                row.update(status="error", error=errors[(w, v)])
            rs = runs.get((w, v), [])
            if rs and (w, v) not in errors:
                wall = _common.summarize([r.wall_s for r in rs])
                row.update(
                    status="ok", runs=len(rs), wall=wall,
                    work_median_s=med([r.report["work_s"] for r in rs]),
                    init_median_s=med([r.report["init_s"] for r in rs]),
                    import_median_s=med([r.report["import_s"] for r in rs]),
                    shutdown_median_s=med([r.report["shutdown_s"] for r in rs]),
                    rss_child_peak_bytes=[r.rss_peak.get("child", 0) for r in rs],
                    rss_cluster_peak_bytes=[r.rss_peak["cluster"] for r in rs if "cluster" in r.rss_peak],
                    rss_cluster_before_bytes=[r.rss_before["cluster"] for r in rs if "cluster" in r.rss_before],
                    rss_total_peak_bytes=[r.rss_peak.get("total", 0) for r in rs],
                    spill_peak_bytes=[r.dir_peak.get("spill", 0) for r in rs],
                    sampler=[r.sampler for r in rs],
                    reports=[r.report for r in rs],
                    wall_all_s=[r.wall_s for r in rs],
                )
                if base_wall:
                    row["ratio"] = wall["median"] / base_wall
            row["target"] = target_for(args, w, v)
            row["verdict"] = verdict(row)
            out.append(row)
    return out


def target_for(args: argparse.Namespace, workload: str, variant: str) -> float | None:
    if args.task_memory:
        return None
    return TARGETS.get(float(args.sf), {}).get(variant, {}).get(workload)


def verdict(row: dict[str, Any]) -> str:
    if row.get("status") == "error":
        return "ERROR"
    if row["target"] is None or "ratio" not in row:
        return "-"
    return f"{'PASS' if row['ratio'] <= row['target'] else 'FAIL'} (<= {row['target']}x)"


def render(rows: list[dict[str, Any]]) -> str:
    headers = ["workload", "variant", "wall med s", "min", "max", "work med s", "ratio", "target",
               "load", "rss MiB", "cluster MiB", "spill MiB"]
    body = []
    for r in rows:
        load = f"{med(r['loadavg_1m']):.1f}" if r["loadavg_1m"] else "-"
        if r.get("status") != "ok":
            body.append([r["workload"], r["variant"], "-", "-", "-", "-", "-", r["verdict"], load, "-", "-", "-"])
            continue
        w = r["wall"]
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
        cluster = "-"
        if r["rss_cluster_peak_bytes"]:
            cluster = f"{mib(med(r['rss_cluster_before_bytes']))} -> {mib(med(r['rss_cluster_peak_bytes']))}"
        spill = mib(med(r["spill_peak_bytes"])) if any(r["spill_peak_bytes"]) else "-"
        body.append([r["workload"], r["variant"], f"{w['median']:.2f}", f"{w['min']:.2f}", f"{w['max']:.2f}",
                     f"{r['work_median_s']:.2f}", ratio, r["verdict"], load, mib(med(r["rss_child_peak_bytes"])), cluster, spill])
    legend = (
        "wall = spawn to exit of a fresh process, minus its result check; work = in-process time of the work alone;\n"
        "ratio = median wall / DuckDB's median wall in this run; load = median 1-min load average at the runs' starts;\n"
        "rss = median over runs of the peak summed RSS of the child's process tree (the driver; for pond-ray also its\n"
        "local Ray); cluster = the Ray head's tree (pond-ray-warm, pond-service), idle just before the run -> peak during it (its workers\n"
        "do the work); spill = peak disk use of the spill directory (--task-memory only)"
    )
    return _common.format_table(headers, body) + "\n" + legend + "\n\n" + render_phases(rows) + render_service(rows)


SUBMIT_TO_RUNNING_TARGET_S = 0.050  # issue 27: per-stage overhead, median


def render_service(rows: list[dict[str, Any]]) -> str:
    """pond-service: where a thin client's time went (medians over runs), and the per-stage
    overhead submit -> running over every stage of every run, against issue 27's 50 ms."""
    headers = ["workload", "import s", "plan s", "stages s", "read s", "close_run s", "stages", "submit POST ms",
               "submit->running ms", "p90", "submit->finished ms", "stage's own ms", "service overhead ms", "client saw done ms",
               "ray imported", "target"]
    body = []
    for r in rows:
        reports = r.get("reports") or []
        if r["variant"] != SERVICE or r.get("status") != "ok" or not reports:
            continue
        stages = [st for rep in reports for st in rep["stages"]]
        to_running = [st["submitted_to_running_s"] for st in stages if st["submitted_to_running_s"] is not None]
        running_med = med(to_running)
        verdict_ = "-" if running_med is None else f"{'PASS' if running_med <= SUBMIT_TO_RUNNING_TARGET_S else 'FAIL'} (<= 50 ms)"
        body.append([
            r["workload"], *(f"{med([rep[k] for rep in reports]):.3f}" for k in ("import_s", "plan_s", "stages_s", "read_s", "close_run_s")),
            str(len(stages) // len(reports)), ms(med([st["submit_call_s"] for st in stages])), ms(running_med),
            ms(p90(to_running)), ms(med([st["submitted_to_finished_s"] for st in stages if st["submitted_to_finished_s"] is not None])),
            ms(med([st["stage_seconds"] for st in stages if st["stage_seconds"] is not None])),
            ms(med([st["submitted_to_finished_s"] - st["stage_seconds"] for st in stages
                    if st["submitted_to_finished_s"] is not None and st["stage_seconds"] is not None])),
            ms(med([st["seen_done_after_s"] for st in stages])),
            "yes" if any(rep["ray_imported"] for rep in reports) else "no", verdict_,
        ])
    if not body:
        return ""
    return ("\n\npond-service: the thin client's time (medians over runs) and per-stage figures (medians over every stage of\n"
            "every run): submit->running and submit->finished are the service's own timestamps; stage's own = the runner's\n"
            "seconds for the stage; service overhead = submit->finished minus that; client saw done = from the client's\n"
            f"submit call to the poll (every {_service.POLL_S * 1e3:.0f} ms) that saw the stage finished\n" + _common.format_table(headers, body))


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def p90(values: list[float]) -> float | None:
    if not values:
        return None
    return statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else values[0]


PHASES = ("import", "init", "plan", "catalog", "list", "tasks", "commit", "read-back")


def phase_median(reports: list[dict[str, Any]], phase: str) -> str:
    key = f"{phase}_s" if phase in ("import", "init") else f"phase_{phase}_s"
    return f"{med([rep[key] for rep in reports]):.3f}"


def render_phases(rows: list[dict[str, Any]]) -> str:
    """pond's time per phase (pond_core/phases.py; medians), beside the work: which phase grew."""
    headers = ["workload", "variant", *(f"{p} s" for p in PHASES), "work s"]
    body = []
    for r in rows:
        reports = r.get("reports") or []
        if r.get("status") != "ok" or not reports or "phase_tasks_s" not in reports[0]:
            continue
        body.append([r["workload"], r["variant"], *(phase_median(reports, p) for p in PHASES), f"{r['work_median_s']:.2f}"])
    if not body:
        return ""
    return "pond per phase (medians; plan .. read-back happen inside work and nest: tasks run inside it)\n" + _common.format_table(headers, body)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1; targets exist for 1 and 10)")
    p.add_argument("--runs", type=int, default=3, help="whole-process runs per measurement (>= 3 for the report)")
    p.add_argument("--data", type=pathlib.Path, default=_common.BENCH_DIR / "data", help="where generated data lives")
    p.add_argument("--only", default=",".join(WORKLOADS), help="workloads, e.g. W1,W3")
    p.add_argument("--variants", default=",".join(VARIANTS), help="e.g. duckdb,pond")
    p.add_argument("--task-memory", help="per-task memory limit, e.g. 1GB: pond's memory_limit (and max_task_memory), "
                                         "DuckDB's SET memory_limit; spill directories are sampled")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per child process (default 1800)")
    p.add_argument("--child", nargs=2, metavar=("WORKLOAD", "VARIANT"), help=argparse.SUPPRESS)
    p.add_argument("--data-dir", type=pathlib.Path, help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=pathlib.Path, help=argparse.SUPPRESS)
    p.add_argument("--address", help=argparse.SUPPRESS)
    p.add_argument("--service-url", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def pick(raw: str, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [x.strip() for x in raw.split(",") if x.strip()]
    bad = [x for x in chosen if x not in allowed]
    if bad or not chosen:
        raise SystemExit(f"unknown {what} {bad}; choose from {','.join(allowed)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    if args.runs < 1:
        raise SystemExit("--runs must be >= 1")
    workloads = pick(args.only, WORKLOADS, "workloads")
    variants = pick(args.variants, VARIANTS, "variants")
    started = time.perf_counter()
    data_dir = ensure_data(args.sf, args.data.resolve())
    machine = _common.machine_info()
    memory = f", task memory {args.task_memory}" if args.task_memory else ""
    print(f"TPC-H SF{args.sf:g}, {args.runs} runs{memory}, machine {machine}", flush=True)
    runs, errors, loads, cluster = measure(args, data_dir, workloads, variants)
    rows = summarize(args, workloads, variants, runs, errors, loads)
    load_end = _common.machine_info()["loadavg"]
    print("\n" + render(rows))
    if cluster:
        warmups = ", ".join(f"{v} {w['wall_s']:.2f}s" for v, w in cluster.get("warmup", {}).items()) or "none"
        service = f", pond service started in {cluster['service']['start_s']}s" if "service" in cluster else ""
        print(f"\nRay head: started in {cluster.get('start_s')}s, stopped in {cluster.get('stop_s')}s{service}; "
              f"untimed warm-up runs: {warmups}")
    print(f"\nload average at start {machine['loadavg']}, at end {load_end} ({machine['cpus']} cpus); "
          f"total {time.perf_counter() - started:.0f}s")
    targets = {f"{sf:g}": t for sf, t in TARGETS.items()}
    path = _common.write_json("tpch", {
        "sf": args.sf, "runs": args.runs, "task_memory": args.task_memory, "machine": machine, "loadavg_end": load_end,
        "targets": targets, "cluster": cluster, "results": rows,
    })
    print(f"\nwrote {path}")
    return _common.exit_status([f"{w}/{v}" for w, v in errors], "measurement(s)")


if __name__ == "__main__":
    sys.exit(main())
