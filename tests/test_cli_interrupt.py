"""Ctrl-C on a `pond run` process mid-stage: the run and its stage are recorded as ended, not
left `running` with a heartbeat thread still stamping them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from pond_core.catalog import Catalog
from tests.scaleout_pipelines import markers, write_source
from tests.support.ray_cluster import pond_command

REPO = Path(__file__).resolve().parents[1]


def test_ctrl_c_mid_stage_exits_130_and_records_the_stage_failed(tmp_path: Path, monkeypatch) -> None:
    write_source(str(tmp_path / "source"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POND_", "SP_"))}
    env.update(PYTHONPATH=str(REPO), POND_EXECUTOR="local", POND_DATA_ROOT=str(tmp_path / "data"), POND_HEARTBEAT_SECONDS="0.2")
    monkeypatch.setenv("POND_HEARTBEAT_SECONDS", "0.2")
    argv = [*pond_command(), "run", "tests.scaleout_pipelines:probed", f"-psource={tmp_path / 'source'}",
            f"-poutput_root={tmp_path / 'out'}", f"-pmarker_dir={tmp_path / 'markers'}", "-pseconds=2", "--run-id", "ctrl-c"]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not markers(str(tmp_path / "markers"), "started") and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # running local tasks finish first (a thread cannot be stopped)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]

    time.sleep(1)  # more than three heartbeat intervals
    with Catalog(Catalog.default_url(str(tmp_path / "data"))) as catalog:
        run = catalog.get_run("ctrl-c")
    assert (run["status"], run["stale"]) == ("failed", False)
    (probed,) = [s for s in run["stages"] if s["status"] != "success"]
    assert (probed["status"], probed["stale"]) == ("failed", False)
    assert probed["error"] == f"stage {probed['stage_name']} stopped: the run was interrupted"
    assert list((tmp_path / "out").glob("*.parquet")) == []
