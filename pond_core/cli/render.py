"""Human output: rich tables on stdout, numbers and times made short."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

NUMERIC_COLUMNS = ("ROWS", "FILES", "BYTES", "SIZE", "PARTS", "SECONDS", "DURATION", "ATTEMPTS", "RETRIES", "NODES LOST", "SPECULATIVE")
STATUS_STYLE = {"success": "green", "ran": "green", "failed": "red", "running": "yellow", "skipped": "cyan", "stale": "magenta"}


def console() -> Console:
    # Wide enough that ids and paths are not cut when stdout is a pipe or a file.
    return Console(highlight=False, soft_wrap=False, width=None if Console().is_terminal else 200)


def err_console() -> Console:
    """Progress and notes go to stderr, so stdout stays clean for tables and JSON."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A table; its title is a caption line above it that never wraps."""
    out = Table(title=title, title_justify="left", title_style="bold", show_edge=False, header_style="bold", min_width=len(title or ""))
    for name in columns:
        out.add_column(name, overflow="fold", justify="right" if name in NUMERIC_COLUMNS else "left")
    for row in rows:
        out.add_row(*(cell(v) for v in row))
    return out


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str) and value in STATUS_STYLE:
        return f"[{STATUS_STYLE[value]}]{value}[/]"
    return str(value).replace("[", "\\[")


def size(n: int | None) -> str | None:
    if n is None:
        return None
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return None


def seconds(value: float | None) -> str | None:
    if value is None:
        return None
    if value < 60:
        return f"{value:.2f}s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{secs:02d}s"


def when(iso: str | None) -> str | None:
    """ISO time to 'YYYY-MM-DD HH:MM:SS' (UTC), short enough for a table."""
    return iso[:19].replace("T", " ") if iso else None


def compact(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(params.items()))


def one_line(text: str | None, limit: int = 160) -> str | None:
    if not text:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
