"""Hive layouts: `k=v/` directories as columns, with types, pruning, and safe values on write."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from pond_core.errors import PondDataError, PondInputError
from pond_core.sql_quote import quote_str

MAX_DIR_NAME_BYTES = 255

NULL_VALUE = "__HIVE_DEFAULT_PARTITION__"
_SEGMENT = re.compile(r"^([^=/]+)=([^/]*)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_partition_value(value: Any, column: str | None = None) -> None:
    """Refuse a value that could not be a safe, single directory name under the dataset."""
    if value is None:
        return  # written as __HIVE_DEFAULT_PARTITION__ and read back as NULL
    text = str(value)
    problem = None
    if text == "":
        problem = "it is empty"
    elif "/" in text or "\\" in text:
        problem = "it contains a path separator"
    elif ".." in text:
        problem = "it contains '..'"
    elif _CONTROL.search(text):
        problem = "it contains a control character"
    elif len(text.encode()) > MAX_DIR_NAME_BYTES - len((column or "").encode()) - 1:
        problem = f"too long: a partition directory name is at most {MAX_DIR_NAME_BYTES} bytes"
    if problem:
        where = f" for column {column!r}" if column else ""
        raise PondDataError(f"invalid partition key value{where}: {text!r} ({problem})")


def partition_check_sql(column_sql: str, column: str) -> str:
    """A SQL predicate that is true for a valid value and raises (via error()) otherwise."""
    v = f"CAST({column_sql} AS VARCHAR)"
    bad = (
        f"{v} = '' OR contains({v}, '/') OR contains({v}, '\\') OR contains({v}, '..') "
        f"OR regexp_matches({v}, '[[:cntrl:]]')"
    )
    prefix = quote_str(f'pond: invalid partition key value for column "{column}": \'')
    rule = quote_str("' (a partition value may not be empty or contain / or \\ or .. or control characters)")
    # A directory name is at most 255 bytes on every common filesystem: say so, rather than
    # letting the COPY fail with "Failed to create directory".
    limit = MAX_DIR_NAME_BYTES - len(urllib.parse.quote(column, safe="").encode()) - 1
    too_long = quote_str(f"' (too long: a partition directory name is at most {MAX_DIR_NAME_BYTES} bytes)")
    shown = f"regexp_replace(left({v}, 60), '[[:cntrl:]]', '?', 'g')"  # one line, short
    return (
        f"(CASE WHEN {v} IS NOT NULL AND ({bad}) THEN error({prefix} || {shown} || {rule}) "
        f"WHEN strlen({v}) > {limit} THEN error({prefix} || {shown} || '...' || {too_long}) "
        "ELSE true END)"
    )


def parse_partition_dir(rel_dir: str) -> list[tuple[str, str | None]] | None:
    """[(column, value)] for a relative directory made only of k=v segments, else None."""
    if not rel_dir:
        return []
    out = []
    for segment in rel_dir.split("/"):
        m = _SEGMENT.match(segment)
        if not m:
            return None
        raw = urllib.parse.unquote(m.group(2))
        out.append((m.group(1), None if raw == NULL_VALUE else raw))
    return out


def _rel_dir(path: str, root: str | None) -> str:
    if root is None:
        # Like DuckDB: any k=v directory on the path counts, wherever the dataset root is.
        segments = path.split("://", 1)[-1].split("/")[:-1]
        return "/".join(s for s in segments if _SEGMENT.match(s))
    root = root.rstrip("/")
    rel = path[len(root) + 1:] if path.startswith(root + "/") else path
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def partition_values(files: list[str], root: str | None = None) -> list[dict[str, str | None]] | None:
    """Per file, its partition values; None unless every file sits in the same k=v layout."""
    rows, columns = [], None
    for path in files:
        parsed = parse_partition_dir(_rel_dir(path, root))
        if not parsed:
            return None
        names = [k for k, _ in parsed]
        if columns is None:
            columns = names
        elif names != columns:
            return None
        rows.append(dict(parsed))
    return rows if columns else None


def detect_hive_partitioning(files: list[str], root: str | None = None) -> list[str] | None:
    """Partition column names when every file sits below the same k=v directories.

    With `root`, only directories below it count; without, any k=v directory on the path.
    """
    rows = partition_values(files, root)
    return list(rows[0]) if rows else None


_TYPE_PATTERNS = (
    ("BIGINT", re.compile(r"^-?\d{1,18}$")),
    ("DOUBLE", re.compile(r"^-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")),
    ("BOOLEAN", re.compile(r"^(true|false)$", re.IGNORECASE)),
    ("DATE", re.compile(r"^\d{4}-\d{2}-\d{2}$")),
    ("TIMESTAMP", re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")),
)


def _infer(values: list[str]) -> str:
    if not values:
        return "VARCHAR"
    for name, pattern in _TYPE_PATTERNS:
        if all(pattern.match(v) for v in values):
            return name
    return "VARCHAR"


def infer_hive_types(files: list[str], root: str | None = None) -> dict[str, str]:
    """One DuckDB type per partition column, judged over *all* files so every task agrees."""
    rows = partition_values(files, root)
    if not rows:
        return {}
    return {col: _infer(sorted({v for r in rows if (v := r[col]) is not None})) for col in rows[0]}


def hive_read_options(
    files: list[str], root: str | None = None, hive_partitioning: bool | None = None, label: str | None = None
) -> str:
    """The read_parquet/read_csv arguments for these files: ", hive_partitioning=..., hive_types=...

    `label` names the input in an error (the path the user gave), since `files` are expanded."""
    types = infer_hive_types(files, root) if hive_partitioning is not False else {}
    if hive_partitioning is True and not types:
        where = root or (files[0].rsplit("/", 1)[0] if files else "the input")
        named = f"input {label}" if label else f"the files under {where}"
        example = f" (e.g. {files[0]})" if label and files else ""
        raise PondInputError(
            f"hive_partitioning=True but {named} is not in k=v directories{example}; set it only for inputs that are "
            "hive datasets (named inputs take a mapping, e.g. hive_partitioning={'orders': True})"
        )
    if not types:
        return ", hive_partitioning=false"
    body = ", ".join(f"{quote_str(c)}: {t}" for c, t in types.items())
    return f", hive_partitioning=true, hive_types={{{body}}}"


def prune_files(
    files: list[str], predicate_sql: str, root: str | None = None, types: dict[str, str] | None = None
) -> list[str]:
    """Keep the files whose partition values satisfy `predicate_sql` (SQL on partition columns).

    The predicate is evaluated once on the tiny table of partition values, so whole
    directories are dropped before any task opens a file in them.
    """
    import duckdb

    rows = partition_values(files, root)
    if not rows:
        return list(files)
    types = types or infer_hive_types(files, root)
    cols = list(rows[0])
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE parts (__pond_i BIGINT, "
            + ", ".join(f'"{c}" VARCHAR' for c in cols) + ")"
        )
        con.executemany(
            f"INSERT INTO parts VALUES (?, {', '.join('?' for _ in cols)})",
            [[i, *(r[c] for c in cols)] for i, r in enumerate(rows)],
        )
        typed = ", ".join(f'TRY_CAST("{c}" AS {types.get(c, "VARCHAR")}) AS "{c}"' for c in cols)
        keep = con.execute(
            f"SELECT __pond_i FROM (SELECT __pond_i, {typed} FROM parts) WHERE {predicate_sql}"
        ).fetchall()
    finally:
        con.close()
    wanted = {i for (i,) in keep}
    return [f for i, f in enumerate(files) if i in wanted]
