"""TPC-H through pond's SQL planner (issue 16): all 22 queries, DuckDB alone against pond.

    python bench/tpch_sql.py [--sf 1,10] [--runs 3] [--data bench/data]
                             [--variants duckdb,pond,pond-ray] [--only 1,9,21] [--npartitions N]

For each scale factor the data is generated once with tpchgen-cli (8 files per table at SF < 10,
16 at SF >= 10) under --data. Each variant runs in a fresh Python process (this script in
``--child VARIANT SF`` mode) that runs every query --runs times and reports each run's seconds:
- duckdb: one connection, views over the Parquet files, `fetchall()`;
- pond: `plan_sql(...)` (planning counts) and `take_all()`, in-process executor;
- pond-ray: the same on an already running Ray cluster: this script starts
  `ray start --head --block --num-cpus 2` in its own process group before measuring and ends
  that group afterwards (never `ray stop`, which would end other people's clusters). Ray's
  token auth is on by default; the driver reads ~/.ray/auth_token when RAY_AUTH_MODE=token,
  which this script sets for it.
Per query the median of the runs is printed, with pond / DuckDB ratios. The driver's own
start-up (imports, connecting to Ray) is reported once per variant, not in the per-query times.
Every pond result is checked against DuckDB's (not timed); a wrong one fails the script. Nothing
here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import _common

VARIANTS = ("duckdb", "pond", "pond-ray")
RESULT = "SQLBENCH "


# ---------------------------------------------------------------- child


def child_main(variant: str, sf: float, data: pathlib.Path, runs: int, queries: list[int], work: pathlib.Path,
               npartitions: int | None, address: str | None) -> None:
    t0 = time.perf_counter()
    import duckdb

    from tests.tpch_queries import QUERIES, ensure_data, table_paths

    paths = table_paths(ensure_data(sf, data, _parts(sf)))
    con = duckdb.connect()
    for t, p in paths.items():
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{p}')")
    sp = None
    if variant != "duckdb":
        import pond_core
        from pond_core.sqlplan import plan_sql

        kwargs: dict[str, Any] = {"executor": "ray", "ray_address": address} if variant == "pond-ray" else {"executor": "local"}
        sp = pond_core.init(data_root=str(work / f"root-{variant}"), **kwargs)
        sp.executor()  # connect now: start-up is not a query's time
    startup = time.perf_counter() - t0
    times: dict[int, list[float]] = {}
    verify_s = 0.0
    for q in queries:
        times[q] = []
        for run in range(runs):
            t = time.perf_counter()
            if sp is None:
                con.execute(QUERIES[q]).fetchall()
                times[q].append(time.perf_counter() - t)
                continue
            dq = plan_sql(sp, QUERIES[q], paths, npartitions=npartitions)
            rows = dq.frame.recompute().take_all()
            times[q].append(time.perf_counter() - t)
            if run == 0:  # every run computes the same plan; checking one is enough
                v = time.perf_counter()
                _verify(con, q, QUERIES[q], dq, rows)
                verify_s += time.perf_counter() - v
        print(f"  {variant} SF{sf:g} Q{q:02d} {statistics.median(times[q]):.2f}s", file=sys.stderr, flush=True)
    if sp is not None:
        sp.shutdown()
    print(RESULT + json.dumps({"startup_s": startup, "times": times, "verify_s": verify_s,
                                "npartitions": npartitions}), flush=True)


def _verify(con: Any, q: int, query: str, dq: Any, rows: list[dict[str, Any]]) -> None:
    sys.path.insert(0, str(_common.REPO_ROOT))
    from tests.sql_compare import assert_same_result, order_columns

    cursor = con.execute(query)
    want = cursor.fetchall()
    names = [d[0] for d in cursor.description]
    got = [tuple(r[c] for c in names) for r in rows]
    assert_same_result(got, want, order_columns(query, names), f"Q{q}")


def _parts(sf: float) -> int:
    return 16 if sf >= 10 else 8


# ---------------------------------------------------------------- Ray head in its own process group


class RayHead:
    """`ray start --head --block` as a child in a new process group, ended by its group id."""

    def __init__(self, cpus: int = 2) -> None:
        port = _free_port()
        # A temp dir of its own: `ray start` records its address in <temp dir>/ray_current_cluster,
        # which every `ray.init()` on the machine would otherwise try to join after we end it.
        import tempfile

        self.temp_dir = tempfile.mkdtemp(prefix="pond-rb-", dir="/tmp")
        cmd = [str(pathlib.Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--num-cpus={cpus}",
               f"--port={port}", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={self.temp_dir}"]
        env = _common.child_env()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        self.address = None
        deadline = time.time() + 120
        ip = None
        lines = []
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            clean = re.sub(r"\x1b\[[0-9;]*m", "", line)
            lines.append(clean)
            m = re.search(r"Local node IP: (\S+)", clean)
            if m:
                ip = m.group(1)
            if "Ray runtime started" in clean and ip:
                self.address = f"{ip}:{port}"
                break
        if self.address is None:
            self.stop()
            raise SystemExit("ray start did not come up:\n" + "".join(lines[-20:]))
        # keep draining its output so the head never blocks on a full pipe
        import threading

        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def stop(self) -> None:
        """End the head's process group (its id is our child's pid: a session of its own, so
        nobody else's processes are in it); SIGKILL what is left after 30 s."""
        group = self.proc.pid
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + 30
        while time.time() < deadline and _group_alive(group):
            if self.proc.poll() is None:
                try:
                    self.proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.5)
        if _group_alive(group):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        import shutil

        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _group_alive(group: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                return True
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sf", default="1,10")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--data", default=str(_common.BENCH_DIR / "data"))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--only", default="")
    p.add_argument("--npartitions", type=int, default=None)
    p.add_argument("--child", nargs=2, metavar=("VARIANT", "SF"))
    p.add_argument("--address", default=None)
    p.add_argument("--work", default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(_common.REPO_ROOT))  # the TPC-H texts are test data: tests/tpch_queries.py
    from tests.tpch_queries import QUERIES, ensure_data

    queries = [int(x) for x in args.only.split(",") if x] or sorted(QUERIES)
    data = pathlib.Path(args.data)
    if args.child:
        child_main(args.child[0], float(args.child[1]), data, args.runs, queries, pathlib.Path(args.work), args.npartitions, args.address)
        return 0
    variants = [v for v in args.variants.split(",") if v]
    bad = sorted(set(variants) - set(VARIANTS))
    if bad:
        raise SystemExit(f"unknown variants {bad}; choose from {', '.join(VARIANTS)}")
    scales = [float(x) for x in args.sf.split(",") if x]
    for sf in scales:
        t = time.perf_counter()
        ensure_data(sf, data, _parts(sf))
        print(f"TPC-H SF{sf:g} ready under {data} ({time.perf_counter() - t:.0f}s)", flush=True)
    head = RayHead() if "pond-ray" in variants else None
    failures: list[str] = []
    results: dict[str, dict[str, Any]] = {}
    import tempfile

    try:
        if head:
            print(f"ray head at {head.address} (its own process group)", flush=True)
        for sf in scales:
            for variant in variants:
                with tempfile.TemporaryDirectory(prefix="pond-sqlbench-") as work:
                    cmd = [str(pathlib.Path(__file__)), "--child", variant, f"{sf:g}", "--runs", str(args.runs),
                           "--data", str(data), "--only", ",".join(map(str, queries)), "--work", work]
                    if args.npartitions:
                        cmd += ["--npartitions", str(args.npartitions)]
                    if variant == "pond-ray":
                        cmd += ["--address", head.address]
                    key = f"SF{sf:g} {variant}"
                    env = _common.child_env()
                    if variant == "pond-ray":
                        # `ray start` turns token auth on; a driver here sends the token from
                        # ~/.ray/auth_token only in token mode.
                        env.setdefault("RAY_AUTH_MODE", "token")
                    proc = subprocess.run([sys.executable, *cmd], stdout=subprocess.PIPE, text=True, env=env, timeout=7200)
                    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith(RESULT)), None)
                    if proc.returncode != 0 or line is None:
                        failures.append(key)
                        print(f"{key}: FAILED (exit {proc.returncode})", flush=True)
                        continue
                    results[key] = json.loads(line[len(RESULT):])
    finally:
        if head:
            head.stop()
    rows_out = []
    for sf in scales:
        print(f"\nTPC-H SF{sf:g}: median seconds of {args.runs} runs per query (in one driver process)")
        base = results.get(f"SF{sf:g} duckdb")
        headers = ["query"] + [v for v in variants] + [f"{v}/duckdb" for v in variants if v != "duckdb" and base]
        table = []
        totals = {v: 0.0 for v in variants}
        for q in queries:
            row = [f"Q{q:02d}"]
            meds = {}
            for v in variants:
                r = results.get(f"SF{sf:g} {v}")
                if r is None:
                    row.append("-")
                    continue
                meds[v] = statistics.median(r["times"][str(q)])
                totals[v] += meds[v]
                row.append(f"{meds[v]:.2f}")
            for v in variants:
                if v != "duckdb" and base:
                    row.append(f"{meds[v] / meds['duckdb']:.2f}x" if v in meds and meds.get("duckdb") else "-")
            table.append(row)
            rows_out.append({"sf": sf, "query": q, **{v: meds.get(v) for v in variants}})
        total_row = ["total"] + [f"{totals[v]:.2f}" for v in variants]
        for v in variants:
            if v != "duckdb" and base:
                total_row.append(f"{totals[v] / totals['duckdb']:.2f}x" if totals.get("duckdb") else "-")
        table.append(total_row)
        print(_common.format_table(headers, table))
        worst = {v: max((r[v] / r["duckdb"] for r in rows_out if r["sf"] == sf and r.get(v) and r.get("duckdb")), default=0) for v in variants if v != "duckdb"}
        starts = ", ".join(f"{v} {results[f'SF{sf:g} {v}']['startup_s']:.1f}s" for v in variants if f"SF{sf:g} {v}" in results)
        print(f"worst query ratio: {', '.join(f'{v} {w:.2f}x' for v, w in worst.items())}; driver start-up (not in the times): {starts}")
    path = _common.write_json("tpch_sql", {"machine": _common.machine_info(), "runs": args.runs, "results": results, "rows": rows_out})
    print(f"\nfigures: {path}")
    return _common.exit_status(failures, "measurements")


if __name__ == "__main__":
    sys.exit(main())
