"""Progress in Python: a session's actions draw the CLI's per-stage bars on stderr when the
`progress` setting says so (on: at once; auto: on a terminal, after a moment; off: never)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

import pond_core
from pond_core.errors import PondConfigError
from pond_core.plan.compile import compile_plan
from pond_core.plan.physical import FILES
from pond_core.progress import StageBars


def _frame(sp):
    return sp.partial_sql("SELECT k, count(*) AS n FROM {0} GROUP BY k", sp.from_items([{"k": i % 3} for i in range(30)]).repartition(3, hash_by="k"))


def test_progress_on_draws_a_line_per_stage(tmp_path, capsys):
    with pond_core.init(data_root=str(tmp_path / "pond"), executor="local", progress="on") as sp:
        frame = _frame(sp)
        assert sum(r["n"] for r in frame.take_all()) == 30
        err = capsys.readouterr().err
        stages = compile_plan(frame._node, FILES, options=sp.compile_options()).stages
        assert len(err.splitlines()) == len(stages)
        for stage, line in zip(stages, err.splitlines()):
            assert line.startswith(f"{stage.name} ") and re.search(r" (\d+)/\1 ", line), line  # each stage complete
        frame.take_all()  # committed in this session: the bars say so
        assert "(committed earlier)" in capsys.readouterr().err


def test_auto_is_silent_when_stderr_is_not_a_terminal(tmp_path, capsys):
    with pond_core.init(data_root=str(tmp_path / "pond"), executor="local") as sp:
        assert sp.config.progress == "auto"
        _frame(sp).take_all()
    assert capsys.readouterr().err == ""


def test_off_is_silent_and_bars_render_on_any_console(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POND_PROGRESS", "off")
    with pond_core.init(data_root=str(tmp_path / "pond"), executor="local") as sp:
        frame = _frame(sp)
        frame.take_all()
        assert capsys.readouterr().err == ""
        plan = compile_plan(frame._node, FILES)
    out = io.StringIO()
    with StageBars(plan, Console(file=out, width=100)) as bars:
        for stage in plan.stages:
            bars.update(stage, 1, 3)
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == [s.name for s in plan.stages] and all(" 1/3 " in line for line in lines)
    with pytest.raises(PondConfigError, match="progress must be one of auto, on, off"):
        pond_core.init(progress="loud")
