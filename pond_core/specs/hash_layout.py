"""A dataset's hash partitioning, as its writer knew it and its readers may trust it.

A dataset written from `repartition(n, hash_by=keys)` holds in partition k exactly the rows an
exchange would send to bucket k. Recording that (keys, bucket count, the bucketing expression
and the DuckDB version that evaluated it) in the dataset manifest lets a later join or
aggregate on those keys read bucket k's file as its partition k instead of shuffling again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

# The bucket of a row, exactly as pond's exchanges compute it (execute/task.py
# bucket_expression): `(hash(k1, k2, ...) % n)::BIGINT`. Change both together, and this name.
HASH_FUNCTION = "duckdb:hash(keys)%n/1"


def duckdb_version() -> str:
    import duckdb

    return str(duckdb.__version__)


@dataclasses.dataclass(frozen=True)
class HashLayout:
    """Rows hashed on `keys` into `npartitions` buckets by `function` under DuckDB `duckdb`.

    DuckDB's hash() is not promised stable across releases, so a reader trusts a layout only
    when both `function` and `duckdb` equal its own."""

    keys: tuple[str, ...]
    npartitions: int
    function: str = HASH_FUNCTION
    duckdb: str = dataclasses.field(default_factory=duckdb_version)

    def to_dict(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "npartitions": self.npartitions, "function": self.function, "duckdb": self.duckdb}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HashLayout:
        return cls(tuple(str(k) for k in data["keys"]), int(data["npartitions"]), str(data["function"]), str(data["duckdb"]))

    def matches_this_engine(self) -> bool:
        return self.function == HASH_FUNCTION and self.duckdb == duckdb_version()
