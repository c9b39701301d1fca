"""Per-stage progress bars on stderr: what `pond run` shows, and what a session's actions show
when they run longer than a moment.

One bar per stage: partitions done of all, and the time since it started; a stage found
committed says so. The `pond` command draws them at once. A session draws them only where a
person watches (stderr is a terminal) and only once an action has run for `SHOW_AFTER`
seconds, so quick actions and logs print nothing; the `progress` setting forces them on (at
once, wherever stderr goes) or off.
"""

from __future__ import annotations

import enum
import sys
import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pond_core.execute.results import StageManifest
from pond_core.plan.physical import PhysicalPlan, Stage

SHOW_AFTER = 2.0  # seconds an action runs before a session draws its bars ("auto")


class ProgressMode(enum.Enum):
    """The `progress` setting."""

    AUTO = "auto"  # on a terminal, once an action has run SHOW_AFTER seconds
    ON = "on"  # at once, wherever stderr goes
    OFF = "off"


def err_console() -> Console:
    """Progress goes to stderr, so stdout stays clean for results, tables and JSON."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


class StageBars:
    """The bars of one plan's run; `update` and `finished` are run_plan's `progress` and
    `on_stage` callbacks, and may come from several threads (independent stages run at once)."""

    def __init__(self, plan: PhysicalPlan, console: Console | None = None, *, show_after: float = 0.0, enabled: bool = True) -> None:
        self.plan = plan
        self.enabled = enabled
        self.started = time.time()
        self._console = console or err_console()
        self._show_after = show_after
        self._lock = threading.Lock()
        self._bars: Progress | None = None
        self._tasks: dict[str, Any] = {}
        self._state: dict[str, tuple[int, int | None, str]] = {s.id: (0, s.npartitions or None, s.name) for s in plan.stages}
        self._running: set[str] = set()
        self._timer: threading.Timer | None = None

    @classmethod
    def for_session(cls, plan: PhysicalPlan, mode: str) -> StageBars:
        """A session action's bars, as the `progress` setting says."""
        chosen = ProgressMode(mode)
        if chosen is ProgressMode.OFF or (chosen is ProgressMode.AUTO and not sys.stderr.isatty()):
            return cls(plan, enabled=False)
        return cls(plan, show_after=SHOW_AFTER if chosen is ProgressMode.AUTO else 0.0)

    def __enter__(self) -> StageBars:
        if not self.enabled:
            return self
        if self._show_after <= 0:
            self._show()
        else:
            self._timer = threading.Timer(self._show_after, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self._bars is not None:
                self._bars.stop()

    def update(self, stage: Stage, done: int, total: int) -> None:
        with self._lock:
            self._running.add(stage.id)
            self._state[stage.id] = (done, total, stage.name)
            self._draw(stage.id)

    def finished(self, stage: Stage, manifest: StageManifest) -> None:
        n = manifest.result.npartitions
        reused = manifest.result.finished_at < self.started
        with self._lock:
            self._running.add(stage.id)
            self._state[stage.id] = (n, n, f"{stage.name} (committed earlier)" if reused else stage.name)
            self._draw(stage.id)

    def _show(self) -> None:
        with self._lock:
            if self._bars is not None:
                return
            self._bars = Progress(
                TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=self._console,
            )
            self._bars.start()
            for stage in self.plan.stages:
                self._tasks[stage.id] = self._bars.add_task(stage.name, total=stage.npartitions or None, start=False)
                self._draw(stage.id)

    def _draw(self, stage_id: str) -> None:
        if self._bars is None or stage_id not in self._running:
            return
        done, total, label = self._state[stage_id]
        task = self._tasks[stage_id]
        self._bars.start_task(task)
        self._bars.update(task, completed=done, total=total, description=label)
