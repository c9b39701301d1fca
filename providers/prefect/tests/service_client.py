"""Running Prefect flows in the client venv (no Ray) against the pond service and the session's
Prefect server, for the service-mode tests.

A flow runs in a subprocess of `.venv-client/bin/python` (tests/client_venv.py) with only what
an orchestrator's worker would have: the Prefect API URL, the pond service URL and token, and the
flows and test pipelines on PYTHONPATH. The subprocess prints one `POND-CLIENT {json}` line: the
flow run's id and state, and whether Ray was importable or imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import textwrap
from typing import Any
from uuid import UUID

from tests.client_venv import client_python

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
FLOWS = os.path.join(REPO, "flows")
MARK = "POND-CLIENT "

# Appended to every client program: report the flow run and prove Ray stayed out.
_REPORT = """
import importlib.util as _u, json as _j, sys as _s
_state = state
print("POND-CLIENT " + _j.dumps({
    "flow_run_id": str(_state.state_details.flow_run_id), "type": _state.type.value, "name": _state.name,
    "message": _state.message, "extra": globals().get("extra"),
    "ray_importable": _u.find_spec("ray") is not None, "ray_imported": "ray" in _s.modules,
}), flush=True)
"""


def client_env(service: Any, prefect_api: str, **extra: str) -> dict[str, str]:
    """What a Prefect worker outside the cluster has: no POND_DATA_ROOT, no catalog, no Ray."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "POND_TEST_TMP")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        PREFECT_API_URL=prefect_api,
        PREFECT_HOME=tempfile.mkdtemp(prefix="pond-prefect-client-home-"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_TO_API_BATCH_INTERVAL="0.5",
        POND_SERVICE_URL=service.url,
        POND_SERVICE_TOKEN=service.token,
        PYTHONPATH=os.pathsep.join([FLOWS, HERE]),
    )
    env.update(extra)
    return env


def run_flow(program: str, env: dict[str, str], timeout: float = 600) -> dict[str, Any]:
    """Run `program` (which leaves the flow's final State in `state`) in the client venv;
    the report it prints, with the process's output under `output`."""
    code = textwrap.dedent(program) + _REPORT
    done = subprocess.run([str(client_python()), "-c", code], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    output = done.stdout[-6000:] + done.stderr[-6000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    assert done.returncode == 0 and lines, output
    report: dict[str, Any] = json.loads(lines[-1][len(MARK):])
    report["flow_run_id"] = UUID(report["flow_run_id"])
    report["output"] = output
    return report
