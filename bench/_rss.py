"""Peak resident memory of whole process trees, sampled while a benchmark child runs.

Why not `/usr/bin/time -v`: its "maximum resident set size" is the largest single process's
peak, not the tree's. pond on Ray is many processes at once (driver, raylet, GCS, one worker per
task slot), and what a user must provision is their sum. So a thread samples, every ~50 ms,
the sum of RSS over each root process and all its descendants, and keeps each tree's peak and
the peak of the trees' sum (taken at the same instant, not a sum of peaks).

What RSS counts, and does not:
- RSS is resident pages mapped by a process: its heap, stacks, and the resident part of shared
  libraries and of shared memory it touched. A sum over processes counts a shared page once per
  process that maps it (each Ray worker maps libduckdb, libarrow and the Python runtime), so a
  many-process tree's sum overstates the machine memory it needs; a one-process tree (DuckDB,
  pond in-process) has no such double count.
- Page cache (the Parquet files DuckDB reads) is no process's RSS and is not counted.
- A tree is the root and every process whose parent chain leads to it at the sampling instant; a
  process that leaves the tree (re-parented to init after a double fork) stops being counted.
- Peaks between two samples are missed: 50 ms is short next to the seconds the work runs.

Each sample reads ``/proc/<pid>/stat`` of every process once (parent pid and RSS in one read),
the same files psutil's ``children(recursive=True)`` and ``memory_info()`` read, but one pass
for all roots: about 3 ms per sample here, where psutil's per-root walks cost about twice that
on a 2-core machine whose CPU the measured work needs. The sampler's own CPU time is reported.
Linux only (pond's benchmark machines are Linux).
"""

from __future__ import annotations

import os
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
INTERVAL_S = 0.05


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, RSS bytes) for every process visible in /proc."""
    table: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:  # exited between listdir and open
            continue
        # Fields after the command name (which may hold spaces and parentheses):
        # state ppid ... ; RSS in pages is field 24 overall, index 21 after the name.
        fields = raw[raw.rfind(b")") + 2 :].split()
        table[int(name)] = (int(fields[1]), int(fields[21]) * PAGE)
    return table


def tree_rss(table: dict[int, tuple[int, int]], roots: dict[str, int]) -> dict[str, int]:
    """The summed RSS of each root's tree (0 for a root that is gone)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, int] = {}
    for label, root in roots.items():
        total, todo = 0, [root] if root in table else []
        while todo:
            pid = todo.pop()
            total += table[pid][1]
            todo.extend(children.get(pid, ()))
        out[label] = total
    return out


def trees_now(roots: dict[str, int]) -> dict[str, int]:
    """One sample, e.g. an idle cluster's RSS just before a run."""
    return tree_rss(process_table(), roots)


class TreeSampler(threading.Thread):
    """Samples the RSS of process trees until `stop()`; `peaks` holds bytes per tree label and
    under "total" the peak of their sum. Optionally also the peak disk use of directories
    (spill), under "dir:<label>" in `dir_peaks`."""

    def __init__(self, roots: dict[str, int], dirs: dict[str, str] | None = None, interval_s: float = INTERVAL_S) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.roots = dict(roots)
        self.dirs = dict(dirs or {})
        self.interval_s = interval_s
        self.peaks: dict[str, int] = {label: 0 for label in self.roots} | {"total": 0}
        self.dir_peaks: dict[str, int] = {label: 0 for label in self.dirs}
        self.samples = 0
        self.cpu_s = 0.0  # this thread's CPU time: what sampling took from the measured work
        self._halt = threading.Event()

    def run(self) -> None:
        c0 = time.thread_time()
        while True:
            self.sample()
            if self._halt.wait(self.interval_s):
                break
        self.cpu_s = time.thread_time() - c0

    def sample(self) -> None:
        now = tree_rss(process_table(), self.roots)
        for label, value in now.items():
            self.peaks[label] = max(self.peaks[label], value)
        self.peaks["total"] = max(self.peaks["total"], sum(now.values()))
        for label, path in self.dirs.items():
            self.dir_peaks[label] = max(self.dir_peaks[label], disk_usage(path))
        self.samples += 1

    def stop(self) -> None:
        """Stop sampling (idempotent); the peaks so far are final once the thread has ended."""
        self._halt.set()


def disk_usage(path: str) -> int:
    """Bytes allocated on disk under `path` (0 if it does not exist)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total
