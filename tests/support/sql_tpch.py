"""TPC-H Parquet for the SQL planner's tests, generated once into the system temp directory
(reused by later sessions), DuckDB's reference results, and one pond session per executor."""

from __future__ import annotations

import pathlib
import tempfile
import threading

import pytest

_LOCK = threading.Lock()
TPCH_CACHE = pathlib.Path(tempfile.gettempdir()) / "pond-sql-tpch"


def tpch_dir(sf: float, parts: int = 8) -> pathlib.Path:
    from tests.tpch_queries import ensure_data

    with _LOCK:
        return ensure_data(sf, TPCH_CACHE, parts)


class Reference:
    """DuckDB's single-process answer for (scale, query), computed once."""

    def __init__(self) -> None:
        self._cache: dict[tuple, tuple[list[str], list[tuple]]] = {}
        self._lock = threading.Lock()

    def result(self, sf: float, query: str) -> tuple[list[str], list[tuple]]:
        import duckdb

        from tests.tpch_queries import table_paths

        key = (sf, query)
        with self._lock:
            if key not in self._cache:
                con = duckdb.connect()
                for t, p in table_paths(tpch_dir(sf)).items():
                    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{p}')")
                cur = con.execute(query)
                rows = cur.fetchall()
                self._cache[key] = ([d[0] for d in cur.description], rows)
                con.close()
            return self._cache[key]


@pytest.fixture(scope="session")
def tpch_reference() -> Reference:
    return Reference()


@pytest.fixture(scope="session")
def sql_sessions(request, tmp_path_factory):
    """executor -> a pond session shared by the SQL tests (Ray through the session's instance)."""
    import pond_core

    made: dict[str, object] = {}

    def get(executor: str):
        if executor not in made:
            if executor == "ray":
                request.getfixturevalue("ray_instance")
            root = tmp_path_factory.mktemp(f"sql-{executor}")
            made[executor] = pond_core.init(data_root=str(root), executor=executor)
        return made[executor]

    yield get
    for s in made.values():
        s.shutdown()
