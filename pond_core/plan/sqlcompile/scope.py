"""What a query block can see while it is planned: CTEs planned so far, and how to plan a
nested query (a derived table, a CTE, an uncorrelated subquery) with its own fallback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sqlglot import exp

from pond_core.plan.sqlcompile.rel import Rel


@dataclasses.dataclass(frozen=True)
class Planned:
    """A planned query: a relation whose columns are the query's output names, in order."""

    rel: Rel
    names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Env:
    ctes: dict[str, Planned]
    plan: Callable[[exp.Expression, Env, str], Planned]  # plans a nested query

    def with_cte(self, name: str, planned: Planned) -> Env:
        return Env({**self.ctes, name: planned}, self.plan)
