"""Stage names people read: the user's (`df.alias(name)`, `name=`) or derived from what a stage does.

Orchestrators show stage names as task ids (Airflow and Prefect alike, by this one rule), so a
name says what the stage computes and is the same at every parse: `orders_by_customer_id` (a
hash exchange of orders on customer_id), `join_aggregate_customers_orders` (a join of the two,
aggregated in the same stage), `aggregate_orders`, `write_daily_revenue` (the sink of the
pipeline `daily_revenue`). A sink is named after the pipeline's step, never its output path:
moving the output must not rename the task and cut it from its history. Names are built only
from the plan (source paths, keys, SQL keywords, the pipeline), never from data or the clock,
and made unique within a plan by a numeric suffix in plan order. Ids stay content hashes; a
name is a label and never changes an id.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pond_core.errors import PondConfigError

if TYPE_CHECKING:
    from pond_core.plan.physical import Stage

MAX_NAME = 64
_USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_NOT_NAME = re.compile(r"[^a-z0-9]+")
_HIVE_DIR = re.compile(r"^[^=/]+=[^/]*$")
_GLOB = re.compile(r"[*?\[]")
# Run parameters often pick a file or folder (a day, a batch number): such components are not
# names, or a stage's name would change from one run (and from the parse) to the next.
_RUN_VALUE = re.compile(r"\d{4}-?\d{2}-?\d{2}|^[\d_.:T-]+$|^[0-9a-f]{12,}$")  # ... or a content hash
_JOIN = re.compile(r"\bjoin\b", re.IGNORECASE)
_AGGREGATE = re.compile(r"\bgroup\s+by\b|\b(count|sum|avg|min|max|any_value|approx_count_distinct)\s*\(", re.IGNORECASE)
_PIPELINE_PART = re.compile(r"[:.]")
_WHERE = re.compile(r"\bwhere\b", re.IGNORECASE)
_LIMIT = re.compile(r"\blimit\s+\d+", re.IGNORECASE)
_ORDER = re.compile(r"\border\s+by\b", re.IGNORECASE)


def check_name(name: str) -> str:
    """A user's stage name: letters, digits, `_` and `-`, starting with a letter or `_`."""
    if not isinstance(name, str) or not _USER_NAME.match(name) or len(name) > MAX_NAME:
        raise PondConfigError(
            f"a stage name takes letters, digits, _ and - (starting with a letter or _, at most {MAX_NAME} characters), got {name!r}"
        )
    return name


def slug(text: str) -> str:
    """`text` as a name fragment: lower case, runs of other characters as one `_`."""
    return _NOT_NAME.sub("_", text.lower()).strip("_")


def source_name(paths: Sequence[str]) -> str:
    """What a source is called: the last path component that is neither a glob nor a hive
    `k=v` folder nor a run value (a date, a number), without its extension
    (`.../orders/dt=2026-11-20/*.parquet` and `.../orders/20261120.parquet` -> `orders`)."""
    for path in paths[:1]:
        parts = [p for p in path.rstrip("/").split("/") if p and not p.endswith(":")]
        for part in reversed(parts):
            stem = part.split(".", 1)[0] if "." in part[1:] else part
            if _GLOB.search(part) or _HIVE_DIR.match(part) or _RUN_VALUE.search(stem):
                continue
            if slug(stem):
                return slug(stem)
    return "source"


def joined(names: Iterable[str]) -> str:
    """One name for several relations: their distinct names, sorted (so order does not matter)."""
    return "_".join(sorted(set(names))) or "input"


def exchange_name(relation: str, method: str, keys: Sequence[str], expr: str | None) -> str:
    if method == "hash":
        return f"{relation}_by_{slug('_'.join(keys))}"
    if method == "value":
        return f"{relation}_by_{slug(expr or 'value')}"
    return f"{relation}_shuffled"


def compute_name(relation: str, queries: Sequence[str], python_methods: Sequence[str], reads_sources: bool = True) -> str:
    """A stage that computes something per partition, named after what it does: a Python step's
    method; a join and an aggregate both (`join_aggregate_...`); else its first telling operation."""
    sql = " ".join(queries)
    if python_methods:
        verb = python_methods[0]
    elif _JOIN.search(sql):
        verb = "join_aggregate" if _AGGREGATE.search(sql) else "join"
    elif _AGGREGATE.search(sql):
        verb = "aggregate"
    elif _LIMIT.search(sql):
        verb = "limit"
    elif _ORDER.search(sql):
        verb = "sort"
    elif _WHERE.search(sql):
        verb = "filter"
    elif queries:
        verb = "select"
    else:
        verb = "read" if reads_sources else "gather"
    return f"{verb}_{relation}"


def sink_name(pipeline: str | None, relation: str) -> str:
    """A sink's stage: `write_` and the pipeline's function (`pond_core.examples:daily_revenue`
    -> `write_daily_revenue`), or for a plan built in a session, what it writes (its relation)."""
    step = slug(_PIPELINE_PART.split(pipeline)[-1]) if pipeline else ""
    return f"write_{step or relation}"


def trim(name: str) -> str:
    return name[:MAX_NAME].rstrip("_-") or "stage"


def unique(stages: Sequence[Stage]) -> list[Stage]:
    """The stages with repeated names suffixed `_2`, `_3`, ... in plan order."""
    seen: set[str] = set()
    out = []
    for stage in stages:
        name = base = trim(stage.name)
        n = 1
        while name in seen:
            n += 1
            name = f"{base[: MAX_NAME - len(str(n)) - 1]}_{n}"
        seen.add(name)
        out.append(dataclasses.replace(stage, name=name) if name != stage.name else stage)
    return out
