"""How long compiling a pipeline takes: the budget is 100 stages in under 50 ms (issue 4).

An orchestrator compiles every pipeline at every parse, so compiling must read no data, start
nothing and be fast. This script compiles a synthetic 100-stage pipeline (a SQL step and a hash
exchange per stage, the shape that costs the most: every exchange's consumer SQL is parsed to
prune the columns it writes) and prints the median of many compiles, plus:

- cold: the first compile in a fresh process after `import pond_core` (lazy imports included);
- without column pruning: the same compiles with the exchange column pruning switched off, to
  show what the SQL parsing costs;
- the plan's JSON round trip.

    .venv/bin/python bench/compile.py [--stages 100] [--repeat 50] [--json]

It prints figures and asserts nothing about time (tests/test_pipeline_plan.py checks that
compiling does no I/O).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

PARAMS = {"ds": "2026-11-20", "source_root": "/nonexistent/shop"}


def hundred_stages(sp: Any, ds: str, source_root: str, stages: int = 100) -> Any:
    """`stages` stages in a chain: SQL at every step, a hash exchange between each pair."""
    df = sp.read_parquet(os.path.join(source_root, f"dt={ds}", "*.parquet"))
    for i in range(stages - 1):
        df = df.map(f"a + {i} AS a, b").repartition(4, hash_by="a")
    return df.map("a, b")


def timings(fn: Callable[[], Any], repeat: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "p10_ms": round(ordered[len(ordered) // 10], 2),
        "p90_ms": round(ordered[(len(ordered) * 9) // 10], 2),
        "runs": len(ordered),
    }


COLD = """
import sys, time, json
sys.path.insert(0, sys.argv[1])
import pond_core.pipeline as p
from bench.compile import hundred_stages, PARAMS
start = time.perf_counter()
plan = p.compile_pipeline(hundred_stages, {**PARAMS, "stages": int(sys.argv[2])})
print(json.dumps({"ms": (time.perf_counter() - start) * 1000, "stages": len(plan.stages)}))
"""


def cold_compiles(stages: int, runs: int = 5) -> list[float]:
    out = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", COLD, REPO, str(stages)], capture_output=True, text=True, check=True, cwd=REPO)
        out.append(json.loads(done.stdout)["ms"])
    return out


def measure(stages: int, repeat: int) -> dict[str, Any]:
    from pond_core.pipeline import compile_pipeline
    from pond_core.plan import compile as plan_compile
    from pond_core.plan.physical import PhysicalPlan

    params = {**PARAMS, "stages": stages}
    plan = compile_pipeline(hundred_stages, params)
    assert len(plan.stages) == stages, f"expected {stages} stages, got {len(plan.stages)}"
    text = plan.to_json()
    result = {
        "stages": stages,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "compile": summary(timings(lambda: compile_pipeline(hundred_stages, params), repeat)),
        "cold_first_compile": summary(cold_compiles(stages)),
        "to_json": summary(timings(plan.to_json, repeat)),
        "from_json": summary(timings(lambda: PhysicalPlan.from_json(text), repeat)),
        "plan_json_bytes": len(text),
    }
    original = plan_compile.referenced_columns
    plan_compile.referenced_columns = lambda query: None  # no pruning: no SQL parsing
    try:
        result["compile_without_column_pruning"] = summary(timings(lambda: compile_pipeline(hundred_stages, params), repeat))
    finally:
        plan_compile.referenced_columns = original
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    result = measure(args.stages, args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"compile a {args.stages}-stage pipeline ({result['cpu_count']} cores, load {result['load_average_1m']}):")
    for key in ("compile", "cold_first_compile", "compile_without_column_pruning", "to_json", "from_json"):
        s = result[key]
        print(f"  {key:32s} median {s['median_ms']:7.2f} ms   p10 {s['p10_ms']:7.2f}   p90 {s['p90_ms']:7.2f}   ({s['runs']} runs)")
    print(f"  plan JSON: {result['plan_json_bytes']:,} bytes")


if __name__ == "__main__":
    main()
