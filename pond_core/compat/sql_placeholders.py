"""The placeholders smallpond fills in a SQL node's query, filled for pond.

smallpond formats each query of a `SqlEngineNode` with its inputs (`{0}`, `{1}` …) and with
`{batch_index}`, `{query_index}`, `{cpu_limit}`, `{memory_limit}`, `{rand_seed}`,
`{output_filename}` and the partition index of each partition dimension (`{__data_partition__}`
by default). pond keeps `{i}` for its own binding and fills the rest here, when the DataFrame is
built, so the stage's SQL is the same text on every parse (stage ids stay stable):

- `{__data_partition__}` becomes `getvariable('pond_partition')`, which every task sets to its
  partition index (execute/task.py);
- `{rand_seed}` becomes a 31-bit integer literal derived from the query text: a constant, as
  DuckDB's `USING SAMPLE ... (reservoir, seed)` requires, the same on every partition;
- `{batch_index}` is 0 (a pond task is one batch), `{query_index}` the statement's index in the
  list, `{cpu_limit}`/`{memory_limit}` the operation's options (smallpond's defaults 1 and 0
  when unset), `{output_filename}` a name unique to the query.
"""

from __future__ import annotations

import hashlib
import string

from pond_core.errors import PondConfigError
from pond_core.plan.physical import PARTITION_VARIABLE

PARTITION_SQL = f"getvariable('{PARTITION_VARIABLE}')"
DATA_PARTITION = "__data_partition__"


def fill(query: str, query_index: int = 0, cpu_limit: int | None = None, memory_limit: int | None = None) -> str:
    """`query` with smallpond's named placeholders filled; `{i}` and `{{`/`}}` kept for pond."""
    digest = hashlib.sha256(query.encode()).hexdigest()
    values = {
        DATA_PARTITION: PARTITION_SQL,
        "rand_seed": str(int(digest[:8], 16) & 0x7FFFFFFF),
        "batch_index": "0",
        "query_index": str(query_index),
        "cpu_limit": str(cpu_limit or 1),
        "memory_limit": str(memory_limit or 0),
        "output_filename": f"pond-{digest[:12]}-0.{query_index}",
    }
    try:
        parsed = list(string.Formatter().parse(query))
    except ValueError as exc:
        raise PondConfigError(f"cannot parse placeholders in SQL ({exc}); write literal braces as '{{{{' and '}}}}': {query}") from exc
    out = []
    for literal, field, spec, conversion in parsed:
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        if field.isdigit():
            out.append("{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
        elif field in values:
            out.append(values[field])
        else:
            known = ", ".join("{" + k + "}" for k in ("0", *values))
            raise PondConfigError(f"placeholder {{{field}}} is not one smallpond fills ({known}); write literal braces as '{{{{' and '}}}}': {query}")
    return "".join(out)
