"""Compiled plans: JSON round trip, rejected tampering and versions, and compiling without I/O."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pond_core.errors import PondConfigError, PondSerializationError
from pond_core.pipeline import compile_pipeline
from pond_core.plan.physical import PLAN_VERSION, PhysicalPlan

REPO = Path(__file__).resolve().parents[1]
REVENUE = "pond_core.examples:daily_revenue"


def revenue_plan(tmp_path: Path, day: str = "2026-11-20") -> PhysicalPlan:
    params = {"ds": day, "source_root": str(tmp_path / "shop"), "output_root": str(tmp_path / "revenue")}
    return compile_pipeline(REVENUE, params, data_root=str(tmp_path / "root"))


def gated_plan(tmp_path: Path) -> PhysicalPlan:
    params = {"source": str(tmp_path / "src"), "output_root": str(tmp_path / "out"), "gate_dir": str(tmp_path / "gate")}
    return compile_pipeline("tests.test_pipeline_defs:gated_totals", params)


@pytest.mark.parametrize("make", [revenue_plan, gated_plan], ids=["sql-and-sink", "python-step"])
def test_plan_json_round_trip_is_lossless(tmp_path: Path, make) -> None:
    plan = make(tmp_path)
    text = plan.to_json()
    again = PhysicalPlan.from_json(text)
    assert again == plan
    assert again.to_json() == text
    assert PhysicalPlan.from_json(plan.to_json(indent=2)) == plan
    assert [s.id for s in again.stages] == [s.id for s in plan.stages]
    assert again.fingerprint == plan.fingerprint
    assert again.params == plan.params and again.pipeline == plan.pipeline


def test_python_steps_survive_the_round_trip(tmp_path: Path) -> None:
    again = PhysicalPlan.from_json(gated_plan(tmp_path).to_json())
    step = next(s for stage in again.stages for s in stage.steps if s.kind == "python")
    gate = step.func.load()
    assert type(gate).__name__ == "Gate" and gate.gate_dir == str(tmp_path / "gate")


def test_a_tampered_plan_is_rejected(tmp_path: Path) -> None:
    data = json.loads(revenue_plan(tmp_path).to_json())
    data["stages"][-1]["steps"][0]["query"] = "SELECT 1 AS dt"
    with pytest.raises(PondSerializationError, match="checksum does not match its content: the plan JSON was modified"):
        PhysicalPlan.from_json(json.dumps(data))


def test_a_stage_whose_definition_does_not_match_its_id_is_rejected(tmp_path: Path) -> None:
    plan = revenue_plan(tmp_path)
    body = json.loads(plan.to_json())
    body["stages"][0]["npartitions"] = 7  # edited, then re-checksummed by hand
    from pond_core.plan.physical import _checksum

    body["checksum"] = _checksum({k: body[k] for k in ("stages", "pipeline", "params")})
    with pytest.raises(PondSerializationError, match=f"stage {plan.stages[0].name} has id {plan.stages[0].id} but its definition hashes to"):
        PhysicalPlan.from_json(json.dumps(body))


@pytest.mark.parametrize("version", [PLAN_VERSION + 1, 0, None])
def test_a_plan_of_another_version_is_rejected(tmp_path: Path, version) -> None:
    data = json.loads(revenue_plan(tmp_path).to_json())
    data["version"] = version
    with pytest.raises(PondSerializationError, match=f"plan version {version!r} is not supported by this pond .*recompile the pipeline"):
        PhysicalPlan.from_json(json.dumps(data))


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "plan is not valid JSON"), (json.dumps({"format": "other"}), "not a pond physical plan")],
)
def test_what_is_not_a_plan_is_rejected(text: str, message: str) -> None:
    with pytest.raises(PondSerializationError, match=message):
        PhysicalPlan.from_json(text)


@pytest.mark.parametrize(
    ("ref", "params", "message"),
    [
        ("no_colon_here", {}, "must be written module:function"),
        ("pond_core.no_such_module:f", {}, "cannot import module 'pond_core.no_such_module'"),
        ("pond_core.examples:no_such_function", {}, "module 'pond_core.examples' has no function 'no_such_function'"),
        (REVENUE, {"ds": "2026-11-20", "source_root": "/s", "output_root": "/o", "colour": "red"}, "takes no parameter colour"),
        (REVENUE, {"ds": "2026-11-20"}, "needs parameter source_root, output_root"),
    ],
)
def test_bad_pipeline_references_and_parameters_fail_before_planning(ref: str, params: dict, message: str) -> None:
    with pytest.raises(PondConfigError, match=message):
        compile_pipeline(ref, params)


def test_a_hundred_stage_pipeline_compiles_to_a_hundred_chained_stages() -> None:
    plan = compile_pipeline("tests.test_pipeline_defs:hundred_stages", {"ds": "2026-11-20", "source_root": "/nowhere"})
    assert len(plan.stages) == 100
    assert len({s.id for s in plan.stages}) == 100
    for upstream, stage in zip(plan.stages, plan.stages[1:]):
        assert stage.depends_on == [upstream.id]


# Runs in a fresh interpreter: an audit hook records every file, directory, socket and process
# operation during compile_pipeline. A cold compile may only import modules; a warm one does
# nothing at all. No thread, child process or Ray appears; the data root is never created.
NO_IO_PROBE = textwrap.dedent(
    """
    import json, os, sys, threading
    import psutil
    import pond_core.pipeline as pipeline
    import tests.test_pipeline_defs

    WATCH = ("open", "os.mkdir", "os.listdir", "os.scandir", "os.rename", "os.remove", "os.unlink",
             "os.rmdir", "shutil.rmtree", "socket.connect", "socket.bind", "subprocess.Popen",
             "os.fork", "os.exec", "os.posix_spawn", "os.system", "sqlite3.connect")
    events = []
    sys.addaudithook(lambda ev, args: events.append([ev, str(args[0]) if args else ""]) if ev in WATCH else None)
    threads = threading.active_count()
    ref, root, src = sys.argv[1], sys.argv[2], sys.argv[3]
    plan = pipeline.compile_pipeline(ref, {"ds": "2026-11-20", "source_root": src}, data_root=root)
    cold = list(events)
    del events[:]
    pipeline.compile_pipeline(ref, {"ds": "2026-11-21", "source_root": src}, data_root=root)
    warm = list(events)
    print(json.dumps({
        "stages": len(plan.stages), "cold": cold, "warm": warm,
        "threads": threading.active_count() - threads,
        "children": len(psutil.Process().children(recursive=True)),
        "ray": "ray" in sys.modules, "root_exists": os.path.exists(root),
    }))
    """
)


def test_compiling_touches_no_data_and_starts_nothing(tmp_path: Path) -> None:
    root, src = tmp_path / "root", tmp_path / "src"
    probe = subprocess.run(
        [sys.executable, "-c", NO_IO_PROBE, "tests.test_pipeline_defs:hundred_stages", str(root), str(src)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert seen["stages"] == 100
    assert seen["warm"] == []
    imports = [e for e in seen["cold"] if e[1].startswith((sys.prefix, sys.base_prefix, str(REPO / "pond_core")))]
    assert seen["cold"] == imports, "a cold compile may only read Python modules"
    assert not any(str(tmp_path) in path for _, path in seen["cold"])
    assert (seen["threads"], seen["children"], seen["ray"], seen["root_exists"]) == (0, 0, False, False)
