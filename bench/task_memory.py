"""Peak RSS of one task against its memory limit, per query shape (issues 14 and 21).

`memory_limit` is DuckDB's buffer-manager limit; a task's process also holds the Python
runtime, pyarrow, pond's modules, DuckDB's allocations outside the buffer manager (string
heaps of aggregate states, sort keys, hash-table directories), and the Arrow batches a COPY
writes. This script measures how far past its limit a task goes, for each query shape, so the
bound pond documents (docs/security.md) and reserves (pond_core/execute/task_memory.py) is a
measured one.

Each measurement is a fresh child process (so peaks do not carry over), sampled with
bench/_rss.py's TreeSampler, doing one shape one way:

  duckdb   plain DuckDB: SET memory_limit / threads / temp_directory, COPY (query) TO file
  pond     pond_core.init(executor="local", memory_limit=L, max_task_memory=L, task_threads=T):
           sp.partial_sql(query, sp.read_parquet(input)).write_parquet(out): one task, in-process
  pond-exchange  (only with --variants) the same after repartition(4, hash_by="k")

and prints per row: shape, variant, limit, threads, the child's RSS after imports ("base"), its
peak, peak - limit and peak / limit, then per shape the largest peak - limit and peak / limit of
pond over the limits. RSS is not a timing figure: measuring while other work runs is fine, and
the load average is printed with each row. Nothing is asserted: a run that fails is reported as
FAILED with its error (DuckDB alone failing too is then the limit being too small for the work).

    python bench/task_memory.py [--rows 2000000] [--limits 100MB,200MB,500MB,1GB,2GB] [--threads 2]
        [--shapes group-by-wide,join,sort,window,distinct] [--variants duckdb,pond]
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

# {0} is the table `a` (k, x, s: a wide VARCHAR), {1} the table `b` (k, x).
SHAPES = {
    # The shape: VARCHAR min/max keep a string per group outside DuckDB's buffer manager.
    "group-by-wide": "SELECT k, count(*) AS n, min(s) AS lo, max(s) AS hi FROM {0} GROUP BY k",
    "join": "SELECT a.k, a.x, a.s, b.x AS y FROM {0} a JOIN {1} b ON a.k = b.k",
    "sort": "SELECT * FROM {0} ORDER BY s, x",
    "window": "SELECT k, x, row_number() OVER (PARTITION BY k % 1000 ORDER BY x) AS rn, "
    "sum(x) OVER (PARTITION BY k % 1000) AS total FROM {0}",
    "distinct": "SELECT DISTINCT s FROM {0}",
}
TABLES = {"group-by-wide": "a", "join": "ab", "sort": "a", "window": "a", "distinct": "a"}

CHILD = r"""
import json, os, sys
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
    con.execute("SET preserve_insertion_order = false")  # as pond's task databases
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


def make_inputs(folder: str, rows: int) -> dict[str, str]:
    """`a`: rows/4 distinct keys, a double, and a 34-85 character string of 16 distinct
    prefixes with a per-row suffix (wide, mostly distinct); `b`: one row per key of `a`."""
    import duckdb

    a, b = os.path.join(folder, "a.parquet"), os.path.join(folder, "b.parquet")
    keys = max(1, rows // 4)
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT (i * 7919) % {keys} AS k, hash(i) % 1000000 / 1e6 AS x, "
        f"repeat(chr(97 + (i % 16)::INT), 32 + (i % 33)::INT) || '-' || hash(i)::VARCHAR AS s "
        f"FROM range({rows}) t(i)) TO '{a}' (FORMAT parquet)"
    )
    con.execute(f"COPY (SELECT i AS k, i / {keys} AS x FROM range({keys}) t(i)) TO '{b}' (FORMAT parquet)")
    return {"a": a, "b": b}


def measure(shape: str, variant: str, limit: str, threads: int, inputs: list[str], work: str) -> dict:
    run = tempfile.mkdtemp(dir=work)
    cfg = {
        "variant": variant, "query": SHAPES[shape], "inputs": inputs, "out": os.path.join(run, "out"),
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


def mib(n: float) -> str:
    return f"{n / 2**20:7.0f}"


def limit_bytes(text: str) -> int | None:
    if text == "none":
        return None
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
    return int(float(text[:-2]) * units[text[-2:].upper()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--limits", default="100MB,200MB,500MB,1GB,2GB")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--variants", default="duckdb,pond")
    args = parser.parse_args()
    worst: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="pond-task-memory-") as work:
        tables = make_inputs(work, args.rows)
        print(f"rows={args.rows}; sizes in MiB; peak is the child's peak RSS, base its RSS after imports")
        print(f"{'shape':<13} {'variant':<13} {'limit':>6} {'thr':>3} {'base':>7} {'peak':>7} {'peak-limit':>10} "
              f"{'peak/limit':>10} {'load':>5}  result")
        for shape in args.shapes.split(","):
            inputs = [tables[t] for t in TABLES[shape]]
            for limit in args.limits.split(","):
                for threads in (int(t) for t in args.threads.split(",")):
                    for variant in args.variants.split(","):
                        r = measure(shape, variant, limit, threads, inputs, work)
                        cap = limit_bytes(limit)
                        over = mib(r["peak"] - cap) if cap else "      -"
                        ratio = f"{r['peak'] / cap:10.2f}" if cap else "         -"
                        if cap and r["ok"] and variant == "pond":
                            before = worst.get(shape, (float("-inf"), 0.0))
                            worst[shape] = (max(before[0], r["peak"] - cap), max(before[1], r["peak"] / cap))
                        print(f"{shape:<13} {variant:<13} {limit:>6} {threads:>3} {mib(r['base'])} {mib(r['peak'])} {over:>10} "
                              f"{ratio} {os.getloadavg()[0]:5.1f}  {'ok' if r['ok'] else 'FAILED ' + ' '.join(r['error'])}", flush=True)
    print("\nper shape, pond, over the limits that finished: largest peak - limit (MiB), largest peak / limit")
    for shape, (over_bytes, ratio) in worst.items():
        print(f"{shape:<13} {mib(over_bytes)} {ratio:6.2f}")


if __name__ == "__main__":
    main()
