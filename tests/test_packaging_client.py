"""Ray is optional: pond_core, Airflow's and Prefect's providers install and work without it.

These run in `.venv-client` (tests/client_venv.py), built by `make install` from the same
constraints as `.venv` but with pond_core's core dependencies and both providers only: what an
orchestrator worker that runs pond in-process, or hands its stages to the pond service, gets from
`pip install airflow-provider-pond` / `prefect-pond`. Each check runs real code in that venv:
imports, a compiled plan, an in-process run through the CLI and through a session, and the
error for executor=ray. The dependency closure is read from installed metadata (no network).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap
from importlib import metadata

import duckdb
import pytest
from packaging.requirements import Requirement

from tests.client_venv import client_bin, client_env, client_python, run_in_client

DAY = "2026-11-20"
EXTRA_HINT = "pip install 'pond-core[ray]'"


@pytest.fixture()
def homes(tmp_path: pathlib.Path) -> dict[str, str]:
    """Orchestrators' homes under tmp_path: importing Airflow or Prefect writes nothing elsewhere."""
    return {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "POND_DATA_ROOT": str(tmp_path / "pond"),
    }


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The example shop's day, generated once by the client venv's pond_core."""
    root = tmp_path_factory.mktemp("shop")
    _ok(run_in_client(f"from pond_core.examples import ensure_shop_day; ensure_shop_day({DAY!r}, {str(root)!r})"))
    return root


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def test_ray_is_not_installed_in_the_client_venv():
    done = run_in_client("import ray")
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'ray'" in done.stderr
    out = _ok(run_in_client("import importlib.util, importlib.metadata as m; print(importlib.util.find_spec('ray'), sorted(d.metadata['Name'].lower() for d in m.distributions() if d.metadata['Name'].lower().startswith('ray')))"))
    assert out.split() == ["None", "[]"]


def test_pond_core_api_and_both_providers_import_without_ray(homes):
    code = textwrap.dedent("""
        import json, sys
        import pond_core, pond_core.api as api
        resolved = [name for name in api.__all__ if getattr(api, name) is not None]
        import pond_airflow, pond_airflow.pipeline, pond_airflow.operators.stage, pond_airflow.operators.sql
        import pond_airflow.hooks.pond, pond_airflow.triggers
        import pond_prefect, pond_prefect.flows
        providers = [getattr(pond_airflow, n) for n in pond_airflow.__all__] + [getattr(pond_prefect, n) for n in pond_prefect.__all__]
        print(json.dumps({"api": len(resolved), "all": len(api.__all__), "providers": len(providers),
                          "ray": sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))}))
    """)
    seen = json.loads(_ok(run_in_client(code, homes)).splitlines()[-1])
    assert seen["api"] == seen["all"] > 50  # every public name of pond_core.api resolves
    assert seen["providers"] > 0
    assert seen["ray"] == []


def test_a_pipeline_compiles_and_runs_in_process_through_the_cli(tmp_path, homes, shop):
    source, output = shop, tmp_path / "revenue"
    pond = str(client_bin("pond"))
    params = ["-p", f"ds={DAY}", "-p", f"source_root={source}", "-p", f"output_root={output}"]
    _ok(_run([pond, "--help"], homes))
    plan = json.loads(_ok(_run([pond, "plan", "pond_core.examples:daily_revenue", *params, "--format", "json"], homes)))
    assert [s["name"] for s in plan["stages"]][-1] == "write_daily_revenue"
    report = json.loads(_ok(_run([pond, "run", "pond_core.examples:daily_revenue", *params, "--executor", "local", "--run-id", "client-run", "--json"], homes)))
    assert report["status"] == "success" and len(report["stages"]) == 4
    rows = duckdb.sql(f"SELECT count(*), sum(orders) FROM read_parquet('{output}/*/*.parquet')").fetchone()
    assert rows == (12, 20000)  # 12 revenue rows (the demo's figures): every order of the day counted once


def test_a_session_and_pond_sql_run_in_process(tmp_path, homes, shop):
    orders = f"{shop}/orders/dt={DAY}/*.parquet"
    code = textwrap.dedent(f"""
        import sys, pond_core as sp
        session = sp.init(data_root={str(tmp_path / "session")!r})
        frame = session.sql("SELECT count(*) AS n, count(DISTINCT customer_id) > 0 AS any FROM orders", orders={orders!r})
        print(frame.to_pandas().to_dict("records"), "ray" in sys.modules)
    """)
    assert _ok(run_in_client(code, homes)).splitlines()[-1] == "[{'n': 20000, 'any': True}] False"
    out = _ok(_run([str(client_bin("pond")), "sql", "SELECT count(*) AS n FROM orders", "-i", f"orders={orders}", "--executor", "local"], homes))
    assert out.split()[-1] == "20000", out


def test_executor_ray_without_ray_is_a_config_error_naming_the_extra(tmp_path, homes, shop):
    code = textwrap.dedent("""
        from pond_core import api
        for kwargs in ({"executor": "ray"}, {"ray_address": "127.0.0.1:6379"}):
            try:
                api.make_executor(api.Settings.resolve(**kwargs))
            except api.PondConfigError as exc:
                print(type(exc).__name__, "|", exc)
    """)
    lines = _ok(run_in_client(code, homes)).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("PondConfigError | executor=ray runs tasks on Ray, which is not installed")
    assert lines[1].startswith("PondConfigError | a ray_address (executor=auto) runs tasks on Ray")
    assert all(EXTRA_HINT in line and "127.0.0.1:6379" not in line for line in lines)
    params = ["-p", f"ds={DAY}", "-p", f"source_root={shop}", "-p", f"output_root={tmp_path / 'out'}"]
    (tmp_path / "ray").mkdir()  # like Ray's /tmp/ray: `pond` puts its working directory on the path, a dir is not Ray
    done = _run([str(client_bin("pond")), "run", "pond_core.examples:daily_revenue", *params, "--executor", "ray"], homes, cwd=tmp_path)
    assert done.returncode == 2, done.stderr  # an invalid command: nothing ran
    assert EXTRA_HINT in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    served = _run([str(client_bin("pond")), "serve", "--address", "127.0.0.1:6379"], {**homes, "POND_SERVICE_TOKEN": "t" * 32}, cwd=tmp_path)
    assert served.returncode != 0 and EXTRA_HINT in served.stderr and "Traceback" not in served.stderr
    assert "t" * 32 not in served.stdout + served.stderr


# -- the dependency closure, from installed metadata ------------------------------------------

_CLOSURE = textwrap.dedent("""
    import json, re, sys
    from importlib import metadata
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    def norm(name): return re.sub(r"[-_.]+", "-", name).lower()

    def closure(roots):
        seen, todo = set(), [(norm(r), frozenset(x)) for r, x in roots]
        while todo:
            name, extras = todo.pop()
            if (name, extras) in seen: continue
            seen.add((name, extras))
            try: dist = metadata.distribution(name)
            except metadata.PackageNotFoundError: continue  # an unmet optional requirement
            for text in dist.requires or []:
                req = Requirement(text)
                if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})): continue
                todo.append((norm(req.name), frozenset(req.extras)))
        return sorted({n for n, _ in seen})

    print(json.dumps(closure(json.loads(sys.argv[1]))))
""")


def _closure(roots: list[tuple[str, list[str]]], *, client: bool) -> list[str]:
    """Names of the distributions installed in the client venv (or `.venv`, this interpreter)
    that `roots` (name, extras) require, transitively."""
    if client:
        return json.loads(_ok(_run([str(client_python()), "-c", _CLOSURE, json.dumps(roots)], {})))
    command = [sys.executable, "-c", _CLOSURE, json.dumps(roots)]
    return json.loads(_ok(subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)))


def test_the_providers_dependency_closure_has_no_ray():
    names = _closure([("airflow-provider-pond", []), ("prefect-pond", [])], client=True)
    assert {"pond-core", "apache-airflow", "prefect", "httpx"} <= set(names)
    assert not [n for n in names if n == "ray" or n.startswith("ray-") or n == "prefect-ray"]


def test_the_ray_extra_brings_ray_serve_in_the_full_venv():
    """The same walk over `.venv` (this interpreter): pond-core alone has no Ray, pond-core[ray]
    has Ray and Serve's own dependencies; so the walk above would have seen Ray."""
    plain = _closure([("pond-core", [])], client=False)
    with_ray = _closure([("pond-core", ["ray"])], client=False)
    assert "ray" not in plain and "httpx" in plain
    assert {"ray", "fastapi", "uvicorn", "starlette"} <= set(with_ray)
    requires = [Requirement(r) for r in metadata.requires("pond-core") or []]
    ray_req = [r for r in requires if r.name == "ray"]
    assert ray_req and all(r.marker is not None and r.marker.evaluate({"extra": "ray"}) for r in ray_req)
    assert "serve" in ray_req[0].extras
    assert not any(r.marker is not None and r.marker.evaluate({"extra": ""}) for r in ray_req)


def _run(command: list[str], env: dict[str, str], cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
    """A console script (or interpreter) of the client venv, with its environment."""
    return subprocess.run(command, env=client_env(env), cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
