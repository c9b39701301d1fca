"""Helpers shared by the benchmark scripts: fresh-process runs, medians, the table and JSON.

A benchmark script runs itself again in a child mode for every measurement, so import and
start-up costs count as a user pays them. The child prints one line ``BENCH_RESULT {json}`` on
stdout; the parent times the whole process and reads that line. Nothing here asserts on time.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
from typing import Any

BENCH_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULT_MARK = "BENCH_RESULT "


class BenchFailure(RuntimeError):
    """A child process failed or produced a wrong result."""


@dataclasses.dataclass
class ChildRun:
    """One whole-process measurement."""

    wall_s: float  # spawn to exit, minus the child's own result verification
    report: dict[str, Any]  # what the child printed (in-process timings etc.)


def child_env() -> dict[str, str]:
    """The child's environment: the repo importable, Ray telemetry off."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


def run_child(args: list[str], timeout_s: float = 1200.0) -> ChildRun:
    """Run ``python <args>`` in a fresh process; return its wall time and report."""
    cmd = [sys.executable, *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise BenchFailure(f"no result after {timeout_s:.0f}s from {' '.join(cmd)}") from e
    elapsed = time.perf_counter() - t0
    report = _parse_report(proc.stdout)
    if proc.returncode != 0 or report is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise BenchFailure(f"exit code {proc.returncode} from {' '.join(cmd)}\n{tail}")
    return ChildRun(wall_s=elapsed - float(report.get("verify_s", 0.0)), report=report)


def _parse_report(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    return None


def emit_report(report: dict[str, Any]) -> None:
    """Called by the child: print its report line for the parent."""
    print(RESULT_MARK + json.dumps(report), flush=True)


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def write_json(name: str, payload: dict[str, Any]) -> pathlib.Path:
    """Write ``bench/out/<name>-<timestamp>.json`` (with the command that made it and when) and
    return its path."""
    out = BENCH_DIR / "out"
    out.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now()
    path = out / f"{name}-{now.strftime('%Y%m%dT%H%M%S')}.json"
    made = {"command": " ".join([os.path.relpath(sys.executable), *sys.argv]), "time": now.isoformat(timespec="seconds")}
    path.write_text(json.dumps({**made, **payload}, indent=2, default=str) + "\n")
    return path


def exit_status(failures: list[str], what: str) -> int:
    """The script's exit code: 1, after naming them on stderr, if any measurement failed."""
    if failures:
        print(f"\n{len(failures)} {what} FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def machine_info() -> dict[str, Any]:
    mem_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpus": os.cpu_count(),
        "mem_gib": mem_gib,
        "python": sys.version.split()[0],
        "loadavg": [round(x, 2) for x in os.getloadavg()],  # others' work on the machine
    }
