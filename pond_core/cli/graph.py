"""A plan as a graph: sources → stages → sink, as Mermaid text or a self-contained SVG image.

The SVG is drawn here (layered layout, no Graphviz or browser needed), so `pond plan --format
svg` works offline on any machine.
"""

from __future__ import annotations

import dataclasses
from xml.sax.saxutils import escape

from pond_core.plan.physical import ExchangeOutput, PhysicalPlan, SinkOutput, Stage, UpstreamInput


@dataclasses.dataclass(frozen=True)
class GraphNode:
    id: str
    label: str
    detail: str
    kind: str  # source | stage | sink


def plan_graph(plan: PhysicalPlan) -> tuple[list[GraphNode], list[tuple[str, str]]]:
    """Nodes (sources, stages, sinks) and edges, in a stable order."""
    nodes: dict[str, GraphNode] = {}
    edges: list[tuple[str, str]] = []
    sources: dict[str, str] = {}  # path -> node id
    for stage in plan.stages:
        sid = f"s_{stage.id}"
        nodes[sid] = GraphNode(sid, stage.name, _stage_detail(stage), "stage")
        for inp in stage.inputs:
            if isinstance(inp, UpstreamInput):
                edges.append((f"s_{inp.stage}", sid))
                continue
            for path in inp.source.paths:
                src = sources.setdefault(path, f"src_{len(sources)}")
                nodes.setdefault(src, GraphNode(src, path, inp.source.format.value, "source"))
                edges.append((src, sid))
        if isinstance(stage.output, SinkOutput):
            sink = stage.output.sink
            parts = f"partition_by {', '.join(sink.partition_by)}" if sink.partition_by else "unpartitioned"
            nodes[f"sink_{stage.id}"] = GraphNode(f"sink_{stage.id}", sink.path, f"{sink.mode}, {parts}", "sink")
            edges.append((sid, f"sink_{stage.id}"))
    return list(nodes.values()), list(dict.fromkeys(edges))


def _stage_detail(stage: Stage) -> str:
    parts = "auto" if stage.npartitions == 0 else str(stage.npartitions)
    out = stage.output
    if isinstance(out, ExchangeOutput):
        keys = ", ".join(out.keys) or out.expr or ""
        return f"{parts} partitions → {out.method.value}({keys}) × {out.npartitions}"
    return f"{parts} partitions → {out.kind}"


def to_mermaid(plan: PhysicalPlan) -> str:
    nodes, edges = plan_graph(plan)
    lines = ["flowchart TD"]
    for n in nodes:
        text = _mermaid_text(f"{n.label}<br/><small>{n.detail}</small>")
        lines.append(f'    {n.id}[("{text}")]' if n.kind != "stage" else f'    {n.id}["{text}"]')
    lines.extend(f"    {a} --> {b}" for a, b in edges)
    lines.append("    classDef source fill:#eef6ff,stroke:#4a7ab5")
    lines.append("    classDef sink fill:#eefbea,stroke:#3f8f3a")
    for kind in ("source", "sink"):
        ids = [n.id for n in nodes if n.kind == kind]
        if ids:
            lines.append(f"    class {','.join(ids)} {kind}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


# -- SVG ---------------------------------------------------------------------------------------

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 260, 46, 30, 46, 20
FILL = {"source": "#eef6ff", "stage": "#ffffff", "sink": "#eefbea"}


def to_svg(plan: PhysicalPlan) -> str:
    nodes, edges = plan_graph(plan)
    layers = _layers(nodes, edges)
    width = MARGIN * 2 + max(len(layer) for layer in layers) * (BOX_W + GAP_X) - GAP_X
    height = MARGIN * 2 + len(layers) * (BOX_H + GAP_Y) - GAP_Y
    pos = {n.id: _position(i, j, len(layer), width) for i, layer in enumerate(layers) for j, n in enumerate(layer)}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f"<title>{escape(plan.pipeline or 'pond plan')}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    for a, b in edges:
        (ax, ay), (bx, by) = pos[a], pos[b]
        parts.append(f'<line class="edge" data-from="{a}" data-to="{b}" x1="{ax + BOX_W / 2}" y1="{ay + BOX_H}" '
                     f'x2="{bx + BOX_W / 2}" y2="{by}" stroke="#555" marker-end="url(#arrow)"/>')
    for layer in layers:
        parts.extend(_svg_node(n, *pos[n.id]) for n in layer)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _layers(nodes: list[GraphNode], edges: list[tuple[str, str]]) -> list[list[GraphNode]]:
    """Longest-path layering: a node sits one row below its deepest parent."""
    depth: dict[str, int] = {}
    parents: dict[str, list[str]] = {n.id: [] for n in nodes}
    for a, b in edges:
        parents[b].append(a)

    def level(node_id: str) -> int:
        if node_id not in depth:
            depth[node_id] = 1 + max((level(p) for p in parents[node_id]), default=-1)
        return depth[node_id]

    layers: list[list[GraphNode]] = [[] for _ in range(1 + max(level(n.id) for n in nodes))]
    for n in nodes:
        layers[depth[n.id]].append(n)
    return layers


def _position(row: int, col: int, count: int, width: int) -> tuple[float, float]:
    row_width = count * (BOX_W + GAP_X) - GAP_X
    return (width - row_width) / 2 + col * (BOX_W + GAP_X), MARGIN + row * (BOX_H + GAP_Y)


def _svg_node(node: GraphNode, x: float, y: float) -> str:
    radius = 14 if node.kind != "stage" else 4
    label = node.label if len(node.label) <= 38 else "…" + node.label[-37:]
    return (
        f'<g class="node {node.kind}" id="{node.id}"><title>{escape(node.label)}</title>'
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="{radius}" fill="{FILL[node.kind]}" stroke="#333"/>'
        f'<text x="{x + BOX_W / 2}" y="{y + 19}" text-anchor="middle" font-size="13">{escape(label)}</text>'
        f'<text x="{x + BOX_W / 2}" y="{y + 36}" text-anchor="middle" font-size="10" fill="#555">{escape(node.detail)}</text></g>'
    )
