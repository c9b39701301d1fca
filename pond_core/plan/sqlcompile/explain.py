"""The text of a distributed plan: operators as a tree, each with its layout and the reason for
every exchange, broadcast and fallback. Shared sub-plans (a CTE read twice) print once.
"""

from __future__ import annotations

from collections.abc import Sequence

from pond_core.plan.sqlcompile.model import Fallback, PlanNode


def render(root: PlanNode, npartitions: int, fallbacks: Sequence[Fallback], header: str) -> str:
    lines = [f"== distributed plan ({npartitions} partition{'s' if npartitions != 1 else ''}) ==", header]
    if fallbacks:
        lines.append("one-partition fallbacks:")
        lines.extend(f"  - {f.where}: {f.reason}" for f in fallbacks)
    else:
        lines.append("fallbacks: none")
    seen: dict[int, int] = {}
    counter = [0]

    def visit(node: PlanNode, depth: int) -> None:
        pad = "  " * depth
        if node.ident in seen:
            lines.append(f"{pad}(#{seen[node.ident]}, shown above)")
            return
        counter[0] += 1
        seen[node.ident] = counter[0]
        what = node.exchange.value.upper() if node.exchange is not None else node.op.value.upper()
        est = f", est. {_rows(node.rows)} rows" if node.rows is not None else ""
        lines.append(f"{pad}#{counter[0]} {what} {node.detail}  [{node.part.describe()}{est}]")
        if node.reason:
            lines.append(f"{pad}     why: {node.reason}")
        for child in node.inputs:
            visit(child, depth + 1)

    visit(root, 0)
    return "\n".join(lines)


def _rows(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.0f}k"
    return f"{n:.0f}"
