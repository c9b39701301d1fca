"""TPC-H benchmark (issue 2): pond's default executor and pond on Ray against plain DuckDB.

    python bench/tpch.py [--sf 1] [--runs 3] [--data bench/data] [--only W1,W2]
                         [--variants duckdb,pond,pond-ray]

Workloads over TPC-H Parquet generated once with tpchgen-cli:
  W1  Q1's aggregation over lineitem
  W2  hash repartition of lineitem by l_orderkey into 8 partitions, written as Parquet
  W3  lineitem and orders hash-partitioned by order key, joined per partition, revenue by
      o_orderpriority

Every measurement is a fresh Python process (this script in ``--child W VARIANT`` mode); the
parent times it from spawn to exit and subtracts only the child's own result check. The child
checks its result against DuckDB's and exits non-zero when it is wrong.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from typing import Any

import _common
from _common import BenchFailure, ChildRun

WORKLOADS = ("W1", "W2", "W3")
VARIANTS = ("duckdb", "pond", "pond-ray")
TARGETS = {"W1": 1.5, "W2": 1.2, "W3": 1.5}  # pond default executor wall / DuckDB wall
FILES_PER_TABLE = 8
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


def run_duckdb(workload: str, li: list[str], orders: list[str], work: pathlib.Path) -> tuple[Any, Timings]:
    t0 = time.perf_counter()
    import duckdb

    t1 = time.perf_counter()
    con = duckdb.connect()
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


def run_pond(workload: str, li: list[str], orders: list[str], work: pathlib.Path, ray: bool) -> tuple[Any, Timings]:
    t0 = time.perf_counter()
    import pond_core

    t1 = time.perf_counter()
    root = str(work / "pond-root")
    sp = pond_core.init(data_root=root, executor="ray") if ray else pond_core.init(data_root=root)
    t2 = time.perf_counter()
    result: Any
    if workload == "W1":
        df = sp.read_parquet(li)
        # Rows to Python, as the DuckDB baseline's fetchall(): take_all() (to_arrow() would add
        # pyarrow's import, which the baseline does not pay).
        result = dict_rows(sp.partial_sql(Q1.replace("lineitem", "{0}"), df).take_all())
    elif workload == "W2":
        out = work / "w2-out"
        sp.read_parquet(li).repartition(NPARTS, hash_by="l_orderkey").write_parquet(str(out))
        result = out
    else:
        l = sp.read_parquet(li).repartition(NPARTS, hash_by="l_orderkey")
        o = sp.read_parquet(orders).repartition(NPARTS, hash_by="o_orderkey")
        part = sp.partial_sql(W3_PARTIAL, l, o)
        final = sp.partial_sql(W3_FINAL, part.repartition(1))
        result = {r["o_orderpriority"]: float(r["revenue"]) for r in final.take_all()}
    t3 = time.perf_counter()
    sp.shutdown()
    t4 = time.perf_counter()
    return result, {"import_s": t1 - t0, "init_s": t2 - t1, "work_s": t3 - t2, "shutdown_s": t4 - t3}


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


def child_main(workload: str, variant: str, data_dir: pathlib.Path, work: pathlib.Path) -> None:
    li, orders = table_files(data_dir, "lineitem"), table_files(data_dir, "orders")
    if variant == "duckdb":
        result, timings = run_duckdb(workload, li, orders, work)
    else:
        result, timings = run_pond(workload, li, orders, work, ray=variant == "pond-ray")
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if workload == "W1":
        verify_w1(result, li)
    elif workload == "W2":
        extra = verify_w2(result, li)
    else:
        verify_w3(result, li, orders)
    _common.emit_report({**timings, **extra, "verify_s": time.perf_counter() - t0, "ok": True})


# ---------------------------------------------------------------- parent


Key = tuple[str, str]


def measure(args: argparse.Namespace, data_dir: pathlib.Path, workloads: list[str], variants: list[str]) -> tuple[dict[Key, list[ChildRun]], dict[Key, str]]:
    """Run each (workload, variant) args.runs times; variants interleaved within a workload."""
    runs: dict[Key, list[ChildRun]] = {}
    errors: dict[Key, str] = {}
    scratch = _common.BENCH_DIR / "out" / "work"
    scratch.mkdir(parents=True, exist_ok=True)
    for w in workloads:
        for i in range(args.runs):
            for v in variants:
                if (w, v) in errors:
                    continue
                work = pathlib.Path(tempfile.mkdtemp(prefix=f"{w}-{v}-", dir=scratch))
                cmd = [__file__, "--child", w, v, "--data-dir", str(data_dir), "--workdir", str(work)]
                try:
                    r = _common.run_child(cmd)
                    runs.setdefault((w, v), []).append(r)
                    print(f"  {w} {v:<8} run {i + 1}: wall {r.wall_s:7.2f}s  work {r.report['work_s']:7.2f}s", flush=True)
                except BenchFailure as e:
                    errors[(w, v)] = str(e)
                    print(f"  {w} {v:<8} run {i + 1}: FAILED\n{indent(str(e))}", file=sys.stderr, flush=True)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    return runs, errors


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def summarize(workloads: list[str], variants: list[str], runs: dict[Key, list[ChildRun]], errors: dict[Key, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for w in workloads:
        base = runs.get((w, "duckdb"))
        base_wall = _common.summarize([r.wall_s for r in base])["median"] if base else None
        for v in variants:
            row: dict[str, Any] = {"workload": w, "variant": v}
            if (w, v) in errors:
                row.update(status="error", error=errors[(w, v)])
            rs = runs.get((w, v), [])
            if rs and (w, v) not in errors:
                wall = _common.summarize([r.wall_s for r in rs])
                row.update(
                    status="ok", runs=len(rs), wall=wall,
                    work_median_s=_common.summarize([r.report["work_s"] for r in rs])["median"],
                    init_median_s=_common.summarize([r.report["init_s"] for r in rs])["median"],
                    import_median_s=_common.summarize([r.report["import_s"] for r in rs])["median"],
                    reports=[r.report for r in rs],
                    wall_all_s=[r.wall_s for r in rs],
                )
                if base_wall:
                    row["ratio"] = wall["median"] / base_wall
            row["verdict"] = verdict(w, v, row)
            out.append(row)
    return out


def verdict(workload: str, variant: str, row: dict[str, Any]) -> str:
    if row.get("status") == "error":
        return "ERROR"
    if variant != "pond" or "ratio" not in row:
        return "-"
    target = TARGETS[workload]
    return f"{'PASS' if row['ratio'] <= target else 'FAIL'} (<= {target}x)"


def render(rows: list[dict[str, Any]]) -> str:
    headers = ["workload", "variant", "wall med s", "min", "max", "work med s", "ratio", "target"]
    body = []
    for r in rows:
        if r.get("status") != "ok":
            body.append([r["workload"], r["variant"], "-", "-", "-", "-", "-", r["verdict"]])
            continue
        w = r["wall"]
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
        body.append([r["workload"], r["variant"], f"{w['median']:.2f}", f"{w['min']:.2f}",
                     f"{w['max']:.2f}", f"{r['work_median_s']:.2f}", ratio, r["verdict"]])
    return _common.format_table(headers, body)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    p.add_argument("--runs", type=int, default=3, help="whole-process runs per measurement (>= 3 for the report)")
    p.add_argument("--data", type=pathlib.Path, default=_common.BENCH_DIR / "data", help="where generated data lives")
    p.add_argument("--only", default=",".join(WORKLOADS), help="workloads, e.g. W1,W3")
    p.add_argument("--variants", default=",".join(VARIANTS), help="e.g. duckdb,pond")
    p.add_argument("--child", nargs=2, metavar=("WORKLOAD", "VARIANT"), help=argparse.SUPPRESS)
    p.add_argument("--data-dir", type=pathlib.Path, help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=pathlib.Path, help=argparse.SUPPRESS)
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
        child_main(args.child[0], args.child[1], args.data_dir, args.workdir)
        return 0
    workloads = pick(args.only, WORKLOADS, "workloads")
    variants = pick(args.variants, VARIANTS, "variants")
    data_dir = ensure_data(args.sf, args.data.resolve())
    machine = _common.machine_info()
    print(f"TPC-H SF{args.sf:g}, {args.runs} runs, machine {machine}", flush=True)
    runs, errors = measure(args, data_dir, workloads, variants)
    rows = summarize(workloads, variants, runs, errors)
    load_end = _common.machine_info()["loadavg"]
    print("\n" + render(rows))
    print(f"\nload average at start {machine['loadavg']}, at end {load_end} ({machine['cpus']} cpus)")
    path = _common.write_json("tpch", {
        "sf": args.sf, "runs": args.runs, "machine": machine, "loadavg_end": load_end,
        "targets": TARGETS, "results": rows,
    })
    print(f"\nwrote {path}")
    return _common.exit_status([f"{w}/{v}" for w, v in errors], "measurement(s)")


if __name__ == "__main__":
    sys.exit(main())
