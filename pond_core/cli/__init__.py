"""The `pond` command: run, plan, inspect, backfill and clean pipelines. See docs/cli.md.

    pond run PIPELINE -p key=value ...      run (or resume, with --run-id) a pipeline
    pond resume RUN_ID                       run a run id again with its recorded parameters
    pond plan PIPELINE -p ... --format ...  compile only: text, json, mermaid or svg
    pond runs [RUN_ID]                       list runs, or show one with its stages
    pond datasets | partitions DATASET | lineage DATASET
    pond backfill PIPELINE --from D --to D   one run per day, skipping committed days
    pond clean [--older-than 7d]             delete intermediate outputs of old runs
    pond sql "SELECT ..." -i name=path ...   one query over datasets, planned by pond
    pond smallpond SCRIPT.py ARGS...         run a smallpond script unchanged on pond
    pond serve --address HEAD:6379 --port P  the pond service on a Ray cluster (docs/service.md)

Exit codes: 0 ok, 1 a run failed, 2 invalid command (nothing ran), 130 interrupted.
`kill -USR1 PID` prints the stacks of a running `pond` to its stderr.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys

import click

import pond_core
from pond_core.cli.clean_cmd import clean_command
from pond_core.cli.common import PondGroup
from pond_core.cli.plan_cmd import plan_command
from pond_core.cli.run_cmds import backfill_command, resume_command, run_command
from pond_core.cli.serve_cmd import serve_command
from pond_core.cli.show_cmds import datasets_command, lineage_command, partitions_command, runs_command
from pond_core.cli.smallpond_cmd import smallpond_command
from pond_core.cli.sql_cmd import sql_command


@click.group(cls=PondGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(pond_core.__version__, prog_name="pond")
def pond() -> None:
    """Pond: partitioned DuckDB SQL over Parquet, run as durable, resumable stages.

    Pipelines are module:function; modules are imported from the current directory and
    PYTHONPATH. Settings come from options, then POND_* environment variables (POND_DATA_ROOT,
    POND_CATALOG_URL, POND_EXECUTOR, POND_RETENTION), then defaults.

    Exit codes: 0 ok; 1 a run failed; 2 invalid command, nothing ran; 130 interrupted.
    """
    # Like `python -m`, find pipeline modules in the current directory.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


for command in (
    run_command, resume_command, plan_command, runs_command, datasets_command,
    partitions_command, lineage_command, backfill_command, clean_command, sql_command, smallpond_command, serve_command,
):
    pond.add_command(command)


def main() -> None:
    """Console entry point: exits with the command's code. `kill -USR1` prints every thread's
    stack to stderr, to see where a driver that seems stuck is waiting."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    pond.main(prog_name="pond")


__all__ = ["main", "pond"]
