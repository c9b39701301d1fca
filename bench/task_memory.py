"""Peak RSS of one task against its memory limit: a group-by, a join and a sort (issue 14).

`memory_limit` is DuckDB's buffer-manager limit; a task's process also holds the Python
runtime, pyarrow, pond's modules, DuckDB's allocations outside the buffer manager, and the
Arrow batches a COPY writes. This script measures how far past its limit a task goes.

Each measurement is a fresh child process (so peaks do not carry over), sampled with
bench/_rss.py's TreeSampler, doing one workload one way:

  duckdb   plain DuckDB: SET memory_limit / threads / temp_directory, COPY (query) TO file
  pond     pond_core.init(executor="local", memory_limit=L, max_task_memory=L, task_threads=T):
           sp.partial_sql(query, sp.read_parquet(input)).write_parquet(out): one task, in-process
  pond-exchange  the same after repartition(4, hash_by="k"): producer tasks, then 4 tasks of
           a quarter each (the local executor runs as many at once as there are cores)

and prints: workload, variant, limit, threads, the child's RSS after imports ("base"), its peak,
and peak - limit. Nothing is asserted: a run that fails is reported as FAILED with its error.

    python bench/task_memory.py [--rows 2000000] [--limits 100MB,200MB,400MB,none] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _rss import TreeSampler

WORKLOADS = {
    "group-by": "SELECT k, count(*) AS n, sum(x) AS s, any_value(pad) AS pad FROM {0} GROUP BY k",
    "join": "SELECT a.k, a.x, b.x AS y FROM {0} a JOIN {1} b ON a.k = b.k",
    "sort": "SELECT * FROM {0} ORDER BY x",
}

CHILD = r"""
import json, os, sys, resource
cfg = json.loads(sys.argv[1])
import duckdb, pyarrow
if cfg["variant"] != "duckdb":
    import pond_core
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
print(json.dumps({"base": rss()}), flush=True)
query, inputs, out, limit, threads = cfg["query"], cfg["inputs"], cfg["out"], cfg["limit"], cfg["threads"]
if cfg["variant"] == "duckdb":
    con = duckdb.connect()
    if limit != "none":
        con.execute(f"SET memory_limit = '{limit}'")
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET temp_directory = '{cfg['spill']}'")
    sql = query.format(*[f"read_parquet('{p}')" for p in inputs])
    con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")
else:
    options = dict(data_root=cfg["root"], executor="local", task_threads=threads)
    if limit != "none":
        options.update(memory_limit=limit, max_task_memory=limit)
    sp = pond_core.init(**options)
    frames = [sp.read_parquet(p) for p in inputs]
    if cfg["variant"] == "pond-exchange":  # through a hash exchange: several tasks, each one partition
        frames = [f.repartition(4, hash_by="k") for f in frames]
    sp.partial_sql(query, *frames).write_parquet(out)
    sp.shutdown()
print(json.dumps({"done": True}), flush=True)
"""


def make_inputs(folder: str, rows: int) -> dict[str, list[str]]:
    import duckdb

    a, b = os.path.join(folder, "a.parquet"), os.path.join(folder, "b.parquet")
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT (i * 7919) % {rows} AS k, hash(i) % 1000000 / 1e6 AS x, repeat('x', 24) AS pad "
        f"FROM range({rows}) t(i)) TO '{a}' (FORMAT parquet)"
    )
    con.execute(f"COPY (SELECT i AS k, i / {rows} AS x FROM range({rows}) t(i)) TO '{b}' (FORMAT parquet)")
    return {"group-by": [a], "join": [a, b], "sort": [a]}


def measure(workload: str, variant: str, limit: str, threads: int, inputs: list[str], work: str) -> dict:
    run = tempfile.mkdtemp(dir=work)
    cfg = {
        "variant": variant, "query": WORKLOADS[workload], "inputs": inputs, "out": os.path.join(run, "out"),
        "limit": limit, "threads": threads, "spill": os.path.join(run, "spill"), "root": os.path.join(run, "pond"),
    }
    if variant == "duckdb":
        cfg["out"] += ".parquet"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler({"task": proc.pid})
    sampler.start()
    out, err = proc.communicate()
    sampler.stop()
    sampler.join()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    base = next((x["base"] for x in lines if "base" in x), 0)
    ok = proc.returncode == 0 and any(x.get("done") for x in lines)
    return {"base": base, "peak": sampler.peaks["task"], "ok": ok, "error": "" if ok else err.strip().splitlines()[-1:]}


def mb(n: int) -> str:
    return f"{n / 2**20:7.0f}"


def limit_bytes(text: str) -> int | None:
    if text == "none":
        return None
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
    return int(float(text[:-2]) * units[text[-2:].upper()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--limits", default="100MB,200MB,400MB,none")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pond-task-memory-") as work:
        inputs = make_inputs(work, args.rows)
        print(f"rows={args.rows}; MiB; peak is the child's peak RSS, base its RSS after imports")
        print(f"{'workload':<9} {'variant':<13} {'limit':>6} {'thr':>3} {'base':>7} {'peak':>7} {'peak-limit':>10}  result")
        for workload in args.workloads.split(","):
            for limit in args.limits.split(","):
                for threads in (int(t) for t in args.threads.split(",")):
                    for variant in ("duckdb", "pond", "pond-exchange"):
                        r = measure(workload, variant, limit, threads, inputs[workload], work)
                        cap = limit_bytes(limit)
                        over = mb(r["peak"] - cap) if cap else "      -"
                        print(f"{workload:<9} {variant:<13} {limit:>6} {threads:>3} {mb(r['base'])} {mb(r['peak'])} {over:>10}  "
                              f"{'ok' if r['ok'] else 'FAILED ' + ' '.join(r['error'])}", flush=True)


if __name__ == "__main__":
    main()
