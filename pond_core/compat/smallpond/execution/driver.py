"""smallpond's `Driver`: its command line, then the plan run by pond.

`python SCRIPT.py scheduler|ray [--job_id ...] USER ARGS` keeps smallpond's flags. `scheduler`
runs the plan with pond's in-process executor (smallpond's one-machine mode is `scheduler` with
`--num_executors 0`); `ray` runs it on Ray (a `ray_address` from pond's settings, or a local
Ray). `executor` mode does not exist on pond: there are no executor processes to start. Flags
with a pond meaning are honoured (job id, name, data root, retries, speculation, output path);
the others are accepted and ignored (docs/smallpond-lowlevel.md lists them).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import Any

from pond_core.compat.smallpond.logical.node import LogicalPlan
from pond_core.errors import PondConfigError, PondError

log = logging.getLogger("pond.smallpond")

DEFAULT_MAX_RETRY_COUNT = 5
DEFAULT_MAX_FAIL_COUNT = 3
_LOG_LEVELS = ["CRITICAL", "ERROR", "WARNING", "SUCCESS", "INFO", "DEBUG", "TRACE"]


def _driver_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="driver.py", description="smallpond driver (on pond)", add_help=False)
    p.add_argument("mode", choices=["executor", "scheduler", "ray"], default="executor")
    p.add_argument("--exec_id", default=socket.gethostname())
    p.add_argument("--job_id", type=str)
    p.add_argument("--job_time", type=float)
    p.add_argument("--job_name", default="smallpond")
    p.add_argument("--job_priority", type=int)
    p.add_argument("--resource_group", type=str)
    p.add_argument("--env_variables", nargs="*", default=[])
    p.add_argument("--sidecars", nargs="*", default=[])
    p.add_argument("--tags", nargs="*", default=[])
    p.add_argument("--task_image", default="default")
    p.add_argument("--python_venv", type=str)
    p.add_argument("--data_root", type=str)
    p.add_argument("--runtime_ctx_path", default=None)
    p.add_argument("--num_executors", default=0, type=int)
    p.add_argument("--num_executors_per_task", default=5, type=int)
    p.add_argument("--random_seed", type=int, default=None)
    p.add_argument("--max_retry", "--max_retry_count", dest="max_retry_count", default=DEFAULT_MAX_RETRY_COUNT, type=int)
    p.add_argument("--max_fail", "--max_fail_count", dest="max_fail_count", default=DEFAULT_MAX_FAIL_COUNT, type=int)
    p.add_argument("--prioritize_retry", action="store_true")
    p.add_argument("--speculative_exec", dest="speculative_exec", choices=["disable", "enable", "aggressive"])
    p.add_argument("--enable_speculative_exec", dest="speculative_exec", action="store_const", const="enable")
    p.add_argument("--disable_speculative_exec", dest="speculative_exec", action="store_const", const="disable")
    p.set_defaults(speculative_exec="enable")
    for flag in ("--stop_executor_on_failure", "--nonzero_exitcode_as_oom", "--enable_profiling", "--enable_diagnostic_metrics",
                 "--remove_empty_parquet", "--remove_output_root", "--skip_task_with_empty_input",
                 "--self_contained_final_results", "--bind_numa_node", "--enforce_memory_limit", "--disable_log_rotation"):
        p.add_argument(flag, action="store_true")
    p.add_argument("--fail_fast", "--fail_fast_on_failure", dest="fail_fast_on_failure", action="store_true")
    p.add_argument("--fault_inject", "--fault_inject_prob", dest="fault_inject_prob", type=float, default=0.0)
    p.add_argument("--disable_sched_state_dump", dest="enable_sched_state_dump", action="store_false")
    p.add_argument("--enable_sched_state_dump", dest="enable_sched_state_dump", action="store_true")
    p.set_defaults(enable_sched_state_dump=False)
    p.add_argument("--malloc", "--memory_allocator", dest="memory_allocator", default="mimalloc", choices=["system", "jemalloc", "mimalloc"])
    p.add_argument("--memory_purge_delay", default=10000)
    p.add_argument("--enable_log_analytics", dest="share_log_analytics", action="store_true")
    p.add_argument("--disable_log_analytics", dest="share_log_analytics", action="store_false")
    p.add_argument("--console_log_level", default="INFO", choices=_LOG_LEVELS)
    p.add_argument("--file_log_level", default="DEBUG", choices=_LOG_LEVELS)
    p.add_argument("--output_path")
    p.add_argument("--platform", type=str)
    return p


class Driver:
    """Parse smallpond's driver flags plus the program's own, and run a LogicalPlan on pond."""

    def __init__(self) -> None:
        self.driver_args_parser = _driver_parser()
        self.user_args_parser = argparse.ArgumentParser(add_help=False)
        self.driver_args: argparse.Namespace | None = None
        self.user_args: argparse.Namespace | None = None
        self.all_args: argparse.Namespace | None = None

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        """A program's own flag (argparse's add_argument)."""
        self.user_args_parser.add_argument(*args, **kwargs)

    def parse_arguments(self, args: list[str] | None = None) -> tuple[argparse.Namespace, argparse.Namespace]:
        if self.user_args is None or self.driver_args is None:
            parser = argparse.ArgumentParser(parents=[self.driver_args_parser, self.user_args_parser])
            self.all_args = parser.parse_args(args)
            self.user_args, rest = self.user_args_parser.parse_known_args(args)
            self.driver_args = self.driver_args_parser.parse_args(rest)
        return self.user_args, self.driver_args

    def get_user_arguments(self, to_dict: bool = True) -> Any:
        user_args, _ = self.parse_arguments()
        return vars(user_args) if to_dict else user_args

    get_arguments = get_user_arguments

    def get_driver_arguments(self, to_dict: bool = True) -> Any:
        _, driver_args = self.parse_arguments()
        return vars(driver_args) if to_dict else driver_args

    @property
    def mode(self) -> str:
        return str(self.get_driver_arguments(to_dict=False).mode)

    @property
    def job_id(self) -> str | None:
        return self.get_driver_arguments(to_dict=False).job_id

    @property
    def data_root(self) -> str | None:
        return self.get_driver_arguments(to_dict=False).data_root

    @property
    def num_executors(self) -> int:
        return int(self.get_driver_arguments(to_dict=False).num_executors)

    def run(self, plan: LogicalPlan, stop_process_on_done: bool = True, tags: list[str] | None = None) -> Any:
        """Run `plan`; exit the process (0 on success) unless `stop_process_on_done=False`,
        which returns the list of stage results (None when the run failed)."""
        _, args = self.parse_arguments()
        try:
            result: Any = run_logical_plan(plan, args)
        except PondError as exc:
            log.error("smallpond plan failed: %s", exc)
            if not stop_process_on_done:
                raise
            print(f"pond: {exc}", file=sys.stderr)
            sys.exit(os.EX_SOFTWARE)
        if stop_process_on_done:
            sys.exit(os.EX_OK)
        return result


def run_logical_plan(plan: LogicalPlan, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Compile the plan and run each of its results as one pond run; return what was committed."""
    from pond_core.compat.smallpond.logical.planner import Planner
    from pond_core.session import init

    if args.mode == "executor":
        raise PondConfigError("executor mode does not exist on pond (there are no executor processes); run the script in scheduler or ray mode")
    if plan is None:
        raise PondConfigError("Driver.run needs a LogicalPlan")
    level = {"SUCCESS": "INFO", "TRACE": "DEBUG"}.get(args.console_log_level, args.console_log_level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)  # the program may have configured logging first
    session = init(
        job_id=args.job_id, job_name=args.job_name, data_root=args.data_root,
        executor="ray" if args.mode == "ray" else "local",
        max_retries=max(0, int(args.max_retry_count)),
        # smallpond's way to resume a job after a restart; pond keeps the job's committed stages
        # (it always keeps them after a failure), so a rerun of the job id reuses them.
        keep_intermediates=True if args.enable_sched_state_dump else None,
        speculation=None if args.mode == "ray" and args.speculative_exec != "disable" else False,
    )
    try:
        planner = Planner(session, output_path=args.output_path)
        results = []
        for target in planner.compile(plan):
            manifest = session.run(target.node, target.output)
            results.append(manifest.result.to_dict())
            log.info("%s: %d rows in %d files", target.label, manifest.result.rows, len(manifest.files))
        return results
    finally:
        session.shutdown()
