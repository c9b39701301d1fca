"""DuckDB's SQL errors told on the SQL the user wrote, not on the statement pond wrapped it in.

pond runs a user's query inside statements of its own (`CREATE VIEW "s0" AS ...` in a task,
`DESCRIBE ...` when planning), so DuckDB's `LINE 1: ...` excerpt and its caret point into text
the user never wrote, and a wrapper can even change which token a parser error names
(`DESCRIBE SELEC a` fails "at or near a"). A parser error is therefore found again by parsing
the user's text alone (cheap, and only on the error path); any other error keeps DuckDB's
message without the wrapper's excerpt, since the caller shows the user's SQL beside it.
"""

from __future__ import annotations

import re

import duckdb

_PLACEHOLDER = re.compile(r"\{\d+\}")  # partial_sql's {0}, {1}: not SQL until pond names them
_EXCERPT = re.compile(r"\n*LINE \d+: [^\n]*(\n *\^)?")


def on_user_sql(message: str, sql: str) -> str:
    """DuckDB's error `message` about a statement that wraps `sql`, told on `sql` itself."""
    if not sql:
        return message
    if message.startswith("Parser Error"):
        return parse_error(sql) or message  # the user's text parses: the wrapper is at fault
    return _EXCERPT.sub("", message).rstrip()


def parse_error(sql: str) -> str | None:
    """DuckDB's parser error on `sql` alone, its excerpt showing the user's own line; None when
    `sql` parses. `{n}` placeholders parse as names of the same width, so the caret stays put."""
    parsable = _PLACEHOLDER.sub(lambda m: "_" * len(m.group(0)), sql)
    con = duckdb.connect()
    try:
        con.extract_statements(parsable)
    except duckdb.Error as exc:
        message = str(exc).strip()
    else:
        return None
    finally:
        con.close()
    for original, parsed in zip(sql.splitlines(), parsable.splitlines()):
        if original != parsed:
            message = message.replace(f": {parsed}\n", f": {original}\n", 1)
    return message
