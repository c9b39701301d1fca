"""Set-up statements: the earlier queries of smallpond's `partial_sql([...])` list.

smallpond runs every statement of the list in the partition's DuckDB connection and keeps the
last one's rows. pond runs the earlier ones as set-up before the step (execute/task.py) and keeps
its rule that SQL text given to a step may not write files, attach databases or install
anything: a task writes only through its committed outputs. Each set-up entry is one statement
of a kind that changes only the connection (SET, CREATE MACRO or TEMP TABLE, LOAD, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

from pond_core.errors import PondConfigError

_REFUSED = {
    "COPY": "writes files",
    "COPY_DATABASE": "writes a database",
    "EXPORT": "writes files",
    "ATTACH": "attaches a database",
    "DETACH": "detaches a database",
}
# SET of these would point the task at other files than its own.
_REFUSED_SETTINGS = ("temp_directory", "extension_directory", "secret_directory", "search_path", "schema")


def check_setup(statements: Sequence[str], ninputs: int) -> None:
    """Refuse, naming it, a set-up entry that is not one statement or may write or attach.

    `statements` still hold pond's placeholders (`{0}`, `{{`); they are checked as bound."""
    import duckdb

    names = [f"__input{i}" for i in range(ninputs)]
    for text in statements:
        try:
            parsed = duckdb.extract_statements(text.format(*names))
        except duckdb.Error as exc:
            raise PondConfigError(f"partial_sql set-up statement does not parse ({exc}): {text}") from exc
        if len(parsed) != 1:
            raise PondConfigError(
                f"partial_sql takes one statement per list entry; this entry has {len(parsed)}: {text}"
            )
        kind = parsed[0].type.name
        words = text.split()
        first = words[0].lower() if words else ""
        if kind in _REFUSED:
            raise PondConfigError(
                f"partial_sql set-up statements may not write files or attach databases ({kind} {_REFUSED[kind]}); "
                f"write results with write_parquet: {text}"
            )
        if first == "install":
            raise PondConfigError(f"partial_sql set-up statements may not install extensions (INSTALL writes files); install it beforehand, LOAD it here: {text}")
        if kind == "SET" and len(words) > 1 and words[1].split("=")[0].lower() in _REFUSED_SETTINGS:
            raise PondConfigError(f"partial_sql set-up statements may not change {words[1].split('=')[0]}: the task owns it: {text}")
