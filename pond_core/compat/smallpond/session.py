"""smallpond.session: the session base with smallpond's arguments and defaults, and its graph.

A smallpond session is a pond session (`pond_core.session.Session`) that takes smallpond's
arguments: `num_executors=0` (smallpond's default) means run here; `_remove_output_root` and
`memory_allocator` are accepted; smallpond's environment names (`SP_JOBID`,
`SP_NUM_EXECUTORS=0`, ...) are read besides pond's. Explicit arguments win over the environment,
as everywhere in pond (docs/smallpond.md, "Differences from smallpond").
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from pond_core.errors import PondConfigError
from pond_core.plan.logical import Node
from pond_core.session import Session as PondSession
from pond_core.session import _storage_options
from pond_core.settings import Settings

log = logging.getLogger("pond")

# smallpond's own init() arguments that mean nothing to pond (accepted, ignored).
_IGNORED_ARGUMENTS = ("memory_allocator",)


def smallpond_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment as pond reads it, with smallpond's spellings: SP_JOBID is SP_JOB_ID,
    and SP_NUM_EXECUTORS=0 (smallpond: no remote executors) leaves pond's default."""
    env = dict(environ)
    if "SP_JOBID" in env and "SP_JOB_ID" not in env:
        env["SP_JOB_ID"] = env["SP_JOBID"]
    if env.get("SP_NUM_EXECUTORS", "").strip() == "0":
        del env["SP_NUM_EXECUTORS"]
    return env


@dataclasses.dataclass(frozen=True)
class RuntimePaths:
    """The job's folders under smallpond's names (`sp.runtime_ctx.output_root`, ...)."""

    job_id: str
    data_root: str
    job_root: str
    queue_root: str
    staging_root: str
    temp_root: str
    output_root: str
    log_root: str

    @property
    def job_status_path(self) -> str:
        """smallpond's status file: a `success@<time>` or `failure@<time>` line per shutdown
        (pond's own status.json is beside it, in the job's folder)."""
        return os.path.join(self.log_root, ".STATUS")


class SessionBase(PondSession):
    """smallpond's session base: constructed from init()'s arguments, with graph and timeline."""

    def __init__(self, **kwargs: Any) -> None:
        remove_output_root = bool(kwargs.pop("_remove_output_root", True))
        for name in _IGNORED_ARGUMENTS:
            kwargs.pop(name, None)
        storage = kwargs.pop("storage_options", None)
        if kwargs.get("num_executors") == 0:
            kwargs["num_executors"] = None  # smallpond's default: every task on this node
        if isinstance(kwargs.get("job_time"), (int, float)):
            kwargs["job_time"] = dt.datetime.fromtimestamp(kwargs["job_time"], dt.timezone.utc)
        explicit = {k: v for k, v in kwargs.items() if v is not None}
        try:
            settings = Settings.resolve(environ=smallpond_environ(os.environ), **explicit)
        except PondConfigError as exc:
            raise PondConfigError(f"smallpond.init(): {exc}") from exc
        if settings.catalog_url:
            from pond_core.catalog.engine import check_catalog_url

            check_catalog_url(settings.catalog_url)
        super().__init__(settings, _storage_options(storage))
        self.remove_output_root = remove_output_root
        self._nodes: list[Node] = []
        self._node_ids: set[str] = set()
        self._computed: set[str] = set()
        if "://" not in self.job_root:
            self._ensure_layout()  # smallpond creates the job's folders when the session starts
            os.makedirs(self.temp_dir, exist_ok=True)
        atexit.register(self.shutdown)

    @property
    def runtime_ctx(self) -> RuntimePaths:
        """The job's folders, as smallpond's `Session.runtime_ctx` names them."""
        root = self.job_root
        return RuntimePaths(
            self.job_id, self.config.data_root, root, os.path.join(root, "queue"), os.path.join(root, "staging"),
            self.temp_dir, os.path.join(root, "output"), os.path.join(root, "log"),
        )

    @property
    def _runtime_ctx(self) -> RuntimePaths:
        return self.runtime_ctx  # smallpond's tests and some programs use the private name

    # -- state ---------------------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise PondConfigError(
                f"{what}: session {self.job_id} was shut down; start a new one with smallpond.init()"
            )

    def _remember(self, node: Node) -> None:
        """Every DataFrame's node, in creation order, for graph()."""
        if node.id not in self._node_ids:
            self._node_ids.add(node.id)
            self._nodes.append(node)

    def _is_computed(self, node: Node) -> bool:
        return node.id in self._computed

    def run(self, root: Node, output: Any) -> Any:
        self._check_open("running a DataFrame")
        manifest = super().run(root, output)
        self._computed.add(root.id)
        return manifest

    # -- graph and timeline --------------------------------------------------------------------

    def graph(self) -> PlanGraph:
        """The DataFrames built in this session and their inputs, as a Graphviz graph."""
        lines = ["digraph SmallPond {"]
        for node in self._nodes:
            lines.append(f"  {_dot_id(node)} [label={json.dumps(node.label()[:200])}];")
            for dep in node.inputs:
                lines.append(f"  {_dot_id(dep)} -> {_dot_id(node)};")
        lines.append("}")
        return PlanGraph("\n".join(lines) + "\n")

    def dump_graph(self, path: str | None = None) -> str:
        """Write the graph as Graphviz text to `path` (default: the job's log folder), and as
        `path.png` when Graphviz's `dot` is installed. Returns the text file's path."""
        path = path or os.path.join(self.runtime_ctx.log_root, "graph")
        return self.graph().render(path, format="png")

    def dump_timeline(self, path: str | None = None) -> str:
        """Write the stages this session ran as a Chrome trace (open in chrome://tracing or
        Perfetto) to `path` (default: the job's log folder). Returns the file's path."""
        path = path or os.path.join(self.runtime_ctx.log_root, "timeline")
        events = [
            {
                "name": r.stage, "cat": r.output_kind, "ph": "X", "pid": self.job_id, "tid": r.stage,
                "ts": r.started_at * 1e6, "dur": max(r.seconds, 0.0) * 1e6,
                "args": {"partitions": r.npartitions, "rows": r.rows, "bytes": r.bytes, "stage_id": r.stage_id},
            }
            for r in self.history
        ]
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(events, handle)
        return path

    # -- end -----------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """pond's shutdown (staging and temp/ removed after a success), then smallpond's: a line
        in its status file, and after a success queue/ removed, and output/ too unless
        `_remove_output_root=False`."""
        already = self._closed
        super().shutdown()
        if already or "://" in self.job_root:
            return
        paths = self.runtime_ctx
        try:
            os.makedirs(paths.log_root, exist_ok=True)
            with open(paths.job_status_path, "a", encoding="utf-8") as status:
                status.write(f"{'failure' if self._failed else 'success'}@{dt.datetime.now():%Y-%m-%d-%H-%M-%S}\n")
        except OSError as exc:  # at interpreter exit the folder may be gone; never raise there
            log.warning("smallpond session %s: cannot write %s: %s", self.job_id, paths.job_status_path, exc)
        if self._failed:
            return
        shutil.rmtree(paths.queue_root, ignore_errors=True)
        if self.remove_output_root:
            shutil.rmtree(paths.output_root, ignore_errors=True)


class PlanGraph:
    """A Graphviz graph as text; rendering to an image needs Graphviz's `dot`, running does not."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __str__(self) -> str:
        return self.source

    def render(self, path: str, format: str = "png") -> str:
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.source)
        dot = shutil.which("dot")
        if dot is None:
            log.info("Graphviz's dot is not installed: wrote the graph as text to %s", path)
            return path
        subprocess.run([dot, f"-T{format}", path, "-o", f"{path}.{format}"], check=False, capture_output=True)
        return path


def _dot_id(node: Node) -> str:
    return f"n{node.id}"
