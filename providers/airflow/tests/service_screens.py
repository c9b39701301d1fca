"""Screenshot of service mode in a real Airflow: a deferrable stage's task log with the lines the
pond service wrote for it (docs/images/airflow-service-stage-log.png).

Starts a Ray head and the pond service (tests/service_rig.py) from `.venv`, and the Airflow
deployment of the service tests (service_airflow_rig.py) from `.venv-client` (no Ray); runs
`pond_service_deferrable` for one day and shoots its write stage's log page with headless
Chromium (`apt-get install chromium`). Everything it starts it stops.

    .venv/bin/python providers/airflow/tests/service_screens.py [--out docs/images] [--day 2026-11-20]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path[:0] = [str(HERE), str(REPO)]

from service_airflow_rig import deployment  # noqa: E402

from tests.client_venv import client_python  # noqa: E402
from tests.service_rig import running_service  # noqa: E402
from tools.ui_screens import shoot  # noqa: E402

DAG_ID = "pond_service_deferrable"
TASK = "daily_revenue.write_daily_revenue"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(REPO / "docs" / "images"))
    parser.add_argument("--day", default="2026-11-20")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("headless Chromium is needed: apt-get install chromium")
    root = Path(tempfile.mkdtemp(prefix="pond-service-ui-"))
    from pond_core.examples import ensure_shop_day

    ensure_shop_day(args.day, str(root / "examples" / "shop"))
    with running_service() as service, deployment(root, client_python().parent, service.url, service.token) as dep:
        run_id = dep.trigger(DAG_ID, args.day)
        state = dep.wait("the run", lambda: (s := dep.run_state(DAG_ID, run_id)) in ("success", "failed") and s, 600)
        print(f"{DAG_ID} {run_id}: {state}")
        if state != "success":
            for log in sorted(dep.logs.rglob("attempt=*.log*")):
                print(f"--- {log}\n{log.read_text(errors='replace')[-4000:]}")
            raise SystemExit(f"{DAG_ID} failed: see the task logs above (kept under {root})")
        base = dep.api.removesuffix("/api/v2")
        run = urllib.parse.quote(run_id, safe="")
        shoot(chromium, f"{base}/dags/{DAG_ID}/runs/{run}/tasks/{TASK}", Path(args.out) / "airflow-service-stage-log.png", "1600,1100")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
