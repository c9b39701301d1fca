"""Logical plan: immutable nodes a DataFrame builds, one per user operation.

Nodes say *what* to compute, never how or where. Each node has a content id (a hash of its kind,
its parameters and its inputs' ids), so the same pipeline gives the same ids in any process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from pond_core.errors import PondConfigError
from pond_core.plan.pyfunc import PyFunc
from pond_core.plan.sql import check_placeholders
from pond_core.plan.statement import check_partition_query
from pond_core.specs.table_read import TableRead
from pond_core.textenum import TextEnum


class RepartitionMethod(TextEnum):
    """How a repartition assigns rows: an exchange (hash, value, random) or an even split."""

    HASH = "hash"  # by a hash of key columns
    VALUE = "value"  # an expression's integer value is the partition index
    RANDOM = "random"
    FILES = "files"  # contiguous groups of the input's files
    ROWS = "rows"  # contiguous ranges of the input's rows

    @property
    def is_exchange(self) -> bool:
        return self in (RepartitionMethod.HASH, RepartitionMethod.VALUE, RepartitionMethod.RANDOM)


class SourceFormat(TextEnum):
    PARQUET = "parquet"
    CSV = "csv"
    JSON = "json"  # newline-delimited
    ICEBERG = "iceberg"  # a table snapshot's Parquet files (io/table_read.py)
    DELTA = "delta"


class PyMethod(TextEnum):
    MAP = "map"
    FILTER = "filter"
    FLAT_MAP = "flat_map"
    MAP_BATCHES = "map_batches"


def with_resources(node: Node, threads: int | None, memory: int | None) -> Node:
    """`node` with per-task threads and memory for the stage computing it (None keeps)."""
    return dataclasses.replace(
        node, task_threads=threads if threads is not None else node.task_threads,
        task_memory=memory if memory is not None else node.task_memory,
    )


def content_id(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class UdfSpec:
    """A UDF as plan data: its SQL signature and its pickled function."""

    name: str
    params: tuple[str, ...]
    return_type: str
    func: PyFunc

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": list(self.params), "return_type": self.return_type, "func": self.func.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UdfSpec:
        return cls(d["name"], tuple(d["params"]), d["return_type"], PyFunc.from_dict(d["func"]))


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """Files to read and how: parquet, csv or ndjson; paths may hold globs or s3:// URLs."""

    format: SourceFormat
    paths: tuple[str, ...]
    recursive: bool = False
    columns: tuple[str, ...] | None = None
    union_by_name: bool = False
    hive_partitioning: bool | None = None
    schema: tuple[tuple[str, str], ...] | None = None
    delim: str = ","
    header: bool = False
    limit: int | None = None
    table: TableRead | None = None  # ICEBERG / DELTA: which snapshot

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", SourceFormat(self.format))

    def to_dict(self) -> dict[str, Any]:
        out = {**dataclasses.asdict(self), "format": self.format.value}
        del out["table"]
        if self.table is not None:  # only when set, so file sources keep their ids
            out["table"] = self.table.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SourceSpec:
        d = dict(d)
        d["paths"] = tuple(d["paths"])
        if d.get("columns") is not None:
            d["columns"] = tuple(d["columns"])
        if d.get("schema") is not None:
            d["schema"] = tuple(tuple(x) for x in d["schema"])
        if d.get("table") is not None:
            d["table"] = TableRead.from_dict(d["table"])
        return cls(**d)


@dataclasses.dataclass(frozen=True, eq=False)
class Node:
    kind: ClassVar[str] = "node"
    inputs: tuple[Node, ...]
    # What the user called this result (df.alias, name=): it names the stage computing it.
    # A label only: not part of the id, so naming a stage never changes what is computed.
    name: str | None = dataclasses.field(default=None, kw_only=True)
    # Per-task DuckDB threads and memory for the stage computing this node (smallpond's
    # cpu_limit / memory_limit); None: the session's. Not part of the id: they change no result.
    task_threads: int | None = dataclasses.field(default=None, kw_only=True)
    task_memory: int | None = dataclasses.field(default=None, kw_only=True)

    def params(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def id(self) -> str:
        cached = self.__dict__.get("_id")
        if cached is None:
            # Iterative, inputs first, so a plan thousands of nodes deep needs no deep recursion.
            for node in _post_order(self, stop_at_known_ids=True):
                if "_id" not in node.__dict__:
                    ident = content_id(node.kind, node.params(), [i.__dict__["_id"] for i in node.inputs])
                    object.__setattr__(node, "_id", ident)
            cached = self.__dict__["_id"]
        return cached

    @property
    def npartitions(self) -> int:
        raise NotImplementedError

    def label(self) -> str:
        return self.kind


@dataclasses.dataclass(frozen=True, eq=False)
class Read(Node):
    kind: ClassVar[str] = "read"
    source: SourceSpec = None  # type: ignore[assignment]

    def params(self) -> dict[str, Any]:
        return self.source.to_dict()

    @property
    def npartitions(self) -> int:
        return 1

    def label(self) -> str:
        paths = ", ".join(self.source.paths[:3]) + (" …" if len(self.source.paths) > 3 else "")
        extra = f" limit {self.source.limit}" if self.source.limit is not None else ""
        return f"read_{self.source.format.value}({paths}){extra}"


@dataclasses.dataclass(frozen=True, eq=False)
class Sql(Node):
    """SQL run on each partition; `{i}` names input i. Inputs are aligned or broadcast."""

    kind: ClassVar[str] = "sql"
    query: str = ""
    udfs: tuple[UdfSpec, ...] = ()
    # Statements each task runs first in its connection (SET, CREATE MACRO ...): smallpond's
    # list of queries, whose last one is the result. Checked by pond_core.compat.setup_sql.
    setup: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for statement in self.setup:
            check_placeholders(statement, len(self.inputs))

        check_placeholders(self.query, len(self.inputs))
        check_partition_query(self.query)  # one query: a task runs it inside CREATE VIEW
        counts = sorted({i.npartitions for i in self.inputs if i.npartitions > 1})
        if len(counts) > 1:
            raise PondConfigError(
                "partial_sql inputs must have the same number of partitions (or one partition, "
                f"which is broadcast); got {', '.join(str(i.npartitions) for i in self.inputs)}: {self.query}"
            )
        from pond_core.plan.copartition import check_copartitioned

        check_copartitioned(self.inputs, self.query)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"query": self.query, "udfs": [u.to_dict() for u in self.udfs]}
        if self.setup:  # only when set, so other SQL keeps its id
            params["setup"] = list(self.setup)
        return params

    @property
    def npartitions(self) -> int:
        return max((i.npartitions for i in self.inputs), default=1)

    def label(self) -> str:
        return "sql: " + " ".join(self.query.split())


@dataclasses.dataclass(frozen=True, eq=False)
class PyMap(Node):
    """A Python function over one input: map, filter, flat_map or map_batches."""

    kind: ClassVar[str] = "python"
    method: PyMethod = PyMethod.MAP
    func: PyFunc = None  # type: ignore[assignment]
    schema: tuple[tuple[str, str], ...] | None = None
    batch_size: int = 122880
    streaming: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", PyMethod(self.method))

    def params(self) -> dict[str, Any]:
        return {
            "method": self.method.value,
            "func": self.func.digest,
            "schema": self.schema,
            "batch_size": self.batch_size,
            "streaming": self.streaming,
        }

    @property
    def npartitions(self) -> int:
        return self.inputs[0].npartitions

    def label(self) -> str:
        return f"{self.method.value}({self.func.label})"


MAX_PARTITIONS = 10_000  # 10,000 tiny partitions already took 6 minutes on one machine


@dataclasses.dataclass(frozen=True, eq=False)
class Repartition(Node):
    """An exchange: 'hash' (keys), 'value' (expr), 'random', or an even split by 'files'/'rows'."""

    kind: ClassVar[str] = "repartition"
    n: int = 1
    method: RepartitionMethod = RepartitionMethod.FILES
    keys: tuple[str, ...] = ()
    expr: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", RepartitionMethod(self.method))
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise PondConfigError(f"npartitions must be an integer >= 1, got {self.n!r}")
        if self.n > MAX_PARTITIONS:
            raise PondConfigError(
                f"npartitions={self.n} is more than {MAX_PARTITIONS}: every partition is a task and a file of "
                "each exchange, so this many would take hours; use fewer, larger partitions"
            )

    def params(self) -> dict[str, Any]:
        return {"n": self.n, "method": self.method.value, "keys": list(self.keys), "expr": self.expr}

    @property
    def npartitions(self) -> int:
        return self.n

    def label(self) -> str:
        how = {"hash": f"hash_by={list(self.keys)}", "value": f"by={self.expr}"}.get(self.method.value, self.method.value)
        return f"repartition({self.n}, {how})"


@dataclasses.dataclass(frozen=True, eq=False)
class Limit(Node):
    """A global limit: at most n rows over all partitions; the result has one partition."""

    kind: ClassVar[str] = "limit"
    n: int = 0

    def params(self) -> dict[str, Any]:
        return {"n": self.n}

    @property
    def npartitions(self) -> int:
        return 1

    def label(self) -> str:
        return f"limit({self.n})"


def _post_order(root: Node, stop_at_known_ids: bool = False) -> list[Node]:
    """Every node object reachable from root, inputs before users, without recursion.

    With stop_at_known_ids, nodes whose id is computed are not expanded (their inputs' ids are
    known too)."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if stop_at_known_ids and "_id" in node.__dict__:
            continue
        stack.extend((child, False) for child in reversed(node.inputs) if id(child) not in seen)
    return order


def walk(root: Node) -> list[Node]:
    """Distinct nodes reachable from root (by content id), inputs before the nodes that use them."""
    out: dict[str, Node] = {}
    for node in _post_order(root):
        out.setdefault(node.id, node)
    return list(out.values())


def render(root: Node) -> str:
    """An indented tree of the logical plan, for explain()."""
    lines: list[str] = []

    def visit(node: Node, depth: int) -> None:
        lines.append(f"{'  ' * depth}{node.label()}  [{node.npartitions} partition{'s' if node.npartitions != 1 else ''}]")
        for child in node.inputs:
            visit(child, depth + 1)

    visit(root, 0)
    return "\n".join(lines)
