"""The lineage chain of a dataset, walked through the catalog: what it was computed from, and
from that, up to a depth (or what was computed from it, downstream), with stage names.

The catalog stores one hop per stage run (inputs -> output), and for each output the source
columns every column is computed from (`columns_text` renders them, one line a column). A person wants the chain: source
files -> exchanges -> join -> written dataset. `walk` follows hops from dataset to dataset,
keeping for each dataset its newest edges (several runs write the same datasets), and names
each hop by the stage that made it. `tree_text` and `mermaid` render the result.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from pond_core.textenum import TextEnum


class Direction(TextEnum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


class LineageSource(Protocol):
    """What `walk` needs of the catalog (`pond_core.catalog.Catalog`)."""

    def lineage(self, dataset_uri: str, *, limit: int | None = None) -> dict[str, list[dict[str, Any]]]: ...

    def get_run(self, run_id: str) -> dict[str, Any] | None: ...


@dataclasses.dataclass(frozen=True)
class LineageNode:
    """A dataset in the chain; `stage` names the hop that links it to its parent."""

    uri: str
    stage: str | None
    rows: int | None
    run_id: str | None
    children: tuple[LineageNode, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "stage": self.stage, "rows": self.rows, "run_id": self.run_id, "children": [c.to_dict() for c in self.children]}


class _Names:
    """Stage ids to names, per run, read once."""

    def __init__(self, catalog: LineageSource) -> None:
        self.catalog = catalog
        self.runs: dict[str, dict[str, str]] = {}

    def name(self, run_id: str | None, stage_id: str | None) -> str | None:
        if run_id is None or stage_id is None:
            return stage_id
        if run_id not in self.runs:
            run = self.catalog.get_run(run_id) or {}
            self.runs[run_id] = {s["stage_id"]: s["stage_name"] for s in run.get("stages") or []}
        return self.runs[run_id].get(stage_id, stage_id)


def walk(catalog: LineageSource, uri: str, direction: Direction, depth: int) -> LineageNode:
    """The chain from `uri`, `depth` hops at most (the newest edges of each dataset)."""
    names = _Names(catalog)

    def visit(at: str, stage: str | None, rows: int | None, run_id: str | None, left: int, path: frozenset[str]) -> LineageNode:
        children: list[LineageNode] = []
        if left > 0:
            seen: set[str] = set()
            for edge in catalog.lineage(at)[direction.value]:  # newest first
                if edge["uri"] in seen or edge["uri"] in path:
                    continue
                seen.add(edge["uri"])
                hop = names.name(edge["run_id"], edge["stage_id"])
                children.append(visit(edge["uri"], hop, edge["rows"], edge["run_id"], left - 1, path | {edge["uri"]}))
        return LineageNode(at, stage, rows, run_id, tuple(children))

    return visit(uri, None, None, None, depth, frozenset({uri}))


def tree_text(root: LineageNode, direction: Direction) -> str:
    arrow = "<-" if direction is Direction.UPSTREAM else "->"
    lines = [root.uri]

    def visit(node: LineageNode, prefix: str) -> None:
        for i, child in enumerate(node.children):
            last = i == len(node.children) - 1
            rows = f", {child.rows} rows" if child.rows is not None else ""
            lines.append(f"{prefix}{'└── ' if last else '├── '}{arrow} [{child.stage}{rows}] {child.uri}")
            visit(child, prefix + ("    " if last else "│   "))

    visit(root, "")
    return "\n".join(lines)


def mermaid(root: LineageNode, direction: Direction) -> str:
    """A Mermaid flowchart, data flowing left to right; hops labelled by stage."""
    ids: dict[str, str] = {}
    lines = ["flowchart LR"]

    def node_id(uri: str) -> str:
        if uri not in ids:
            ids[uri] = f"d{len(ids)}"
            label = uri.replace('"', "'")
            lines.append(f'    {ids[uri]}["{label}"]')
        return ids[uri]

    edges: list[str] = []

    def visit(node: LineageNode) -> None:
        here = node_id(node.uri)
        for child in node.children:
            there = node_id(child.uri)
            src, dst = (there, here) if direction is Direction.UPSTREAM else (here, there)
            edge = f"    {src} -->|{child.stage}| {dst}"
            if edge not in edges:
                edges.append(edge)
            visit(child)

    visit(root)
    return "\n".join(lines + edges)


def columns_text(record: dict[str, Any], stage: str | None = None) -> str:
    """A dataset's column lineage (the catalog's `column_lineage` record), one line a column:
    `net  <- /data/orders: amount, discount (transformation)`; sources grouped by dataset, `;`
    between them, how each is derived in brackets unless copied as is."""
    head = f"columns of {record['uri']} (run {record['run_id']}, stage {stage or record['stage_id']})"
    columns: dict[str, list[dict[str, str]]] = record["columns"]
    width = max((len(c) for c in columns), default=0)
    lines = [head]
    for column, sources in columns.items():
        groups: dict[tuple[str, str], list[str]] = {}
        for source in sources:
            groups.setdefault((source["dataset"], source.get("transformation") or "identity"), []).append(source["column"])
        origin = "; ".join(f"{dataset}: {', '.join(names)}{_how(how)}" for (dataset, how), names in groups.items()) or "(no source column)"
        lines.append(f"  {column.ljust(width)}  <- {origin}")
    return "\n".join(lines)


def _how(transformation: str) -> str:
    return "" if transformation == "identity" else f" ({transformation})"
