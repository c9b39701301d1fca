"""Datasets, committed partitions and lineage in the catalog, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from pond_core.catalog import Catalog
from pond_core.errors import PondConfigError

OUT = "s3://lake/sales_daily"


@pytest.fixture
def catalog(catalog_db_url: str):
    with Catalog(catalog_db_url) as cat:
        cat.start_run("r1", "daily", {}, None, "local")
        cat.start_run("r2", "daily", {}, None, "local")
        yield cat


def _part(day: str, rows: int, files: int = 1) -> dict:
    return {
        "key": f"dt={day}",
        "values": {"dt": day},
        "files": files,
        "rows": rows,
        "bytes": rows * 10,
    }


def _summary(catalog: Catalog, uri: str = OUT) -> dict:
    return {
        p["key"]: (p["rows"], p["files"], p["run_id"], p["commits"])
        for p in catalog.list_partitions(uri)
    }


def test_recorded_partitions_are_listed_by_key_with_their_values_and_writer(catalog):
    catalog.record_partitions(
        OUT, [_part("2026-11-21", 7), _part("2026-11-20", 5, files=2)], "r1", "s1"
    )

    listed = catalog.list_partitions(OUT)
    assert [p["key"] for p in listed] == ["dt=2026-11-20", "dt=2026-11-21"]
    first = listed[0]
    assert {k: first[k] for k in first if k != "committed_at"} == {
        "key": "dt=2026-11-20",
        "values": {"dt": "2026-11-20"},
        "files": 2,
        "rows": 5,
        "bytes": 50,
        "run_id": "r1",
        "stage_id": "s1",
        "commits": 1,
    }
    assert dt.datetime.fromisoformat(first["committed_at"]).utcoffset() == dt.timedelta(0)
    assert catalog.has_partition(OUT, "dt=2026-11-20") is True
    assert catalog.has_partition(OUT, "dt=2026-11-19") is False


def test_overwriting_partitions_replaces_only_the_keys_written(catalog):
    catalog.record_partitions(OUT, [_part("2026-11-20", 5), _part("2026-11-21", 7)], "r1", "s1")
    catalog.record_partitions(
        OUT, [_part("2026-11-21", 9)], "r2", "s1", mode="overwrite_partitions"
    )
    assert _summary(catalog) == {"dt=2026-11-20": (5, 1, "r1", 1), "dt=2026-11-21": (9, 1, "r2", 1)}


@pytest.mark.parametrize("mode", ["overwrite", "error"])
def test_overwriting_the_dataset_replaces_every_partition(catalog, mode):
    catalog.record_partitions(OUT, [_part("2026-11-20", 5), _part("2026-11-21", 7)], "r1", "s1")
    catalog.record_partitions(OUT, [_part("2026-11-22", 3)], "r2", "s1", mode=mode)
    assert _summary(catalog) == {"dt=2026-11-22": (3, 1, "r2", 1)}


def test_appending_adds_to_a_key_and_a_retried_append_does_not_count_twice(catalog):
    catalog.record_partitions(OUT, [_part("2026-11-20", 5)], "r1", "s1")
    catalog.record_partitions(
        OUT, [_part("2026-11-20", 2), _part("2026-11-21", 4)], "r2", "s1", mode="append"
    )
    catalog.record_partitions(
        OUT, [_part("2026-11-20", 2), _part("2026-11-21", 4)], "r2", "s1", mode="append"
    )
    assert _summary(catalog) == {"dt=2026-11-20": (7, 2, "r2", 2), "dt=2026-11-21": (4, 1, "r2", 1)}

    catalog.record_partitions(OUT, [_part("2026-11-20", 1)], "r1", "s2")  # overwrite again
    assert _summary(catalog)["dt=2026-11-20"] == (1, 1, "r1", 1)


def test_an_unpartitioned_dataset_has_one_partition_with_the_empty_key(catalog):
    catalog.record_partitions(
        "/lake/dim", [{"key": "", "files": 3, "rows": 30, "bytes": 300}], "r1", "s1"
    )
    assert _summary(catalog, "/lake/dim") == {"": (30, 3, "r1", 1)}
    assert catalog.list_partitions("/lake/dim")[0]["values"] == {}
    assert catalog.has_partition("/lake/dim", "") is True


def test_unknown_counts_stay_unknown_and_duplicate_keys_in_one_call_add_up(catalog):
    catalog.record_partitions(
        OUT,
        [
            {"key": "dt=1", "files": 1, "rows": 2},
            {"key": "dt=1", "files": 2, "rows": 3},
            {"key": "dt=2", "files": 1},
        ],
        "r1",
        "s1",
    )
    listed = {p["key"]: p for p in catalog.list_partitions(OUT)}
    assert (listed["dt=1"]["files"], listed["dt=1"]["rows"], listed["dt=1"]["bytes"]) == (
        3,
        5,
        None,
    )
    assert (listed["dt=2"]["rows"], listed["dt=2"]["bytes"]) == (None, None)


def test_more_partitions_than_one_statement_binds_are_recorded_and_replaced(catalog):
    days = [f"k={i:05d}" for i in range(1200)]
    catalog.record_partitions(OUT, [{"key": k, "files": 1, "rows": 1} for k in days], "r1", "s1")
    catalog.record_partitions(OUT, [{"key": k, "files": 1, "rows": 2} for k in days], "r2", "s1")
    listed = catalog.list_partitions(OUT)
    assert [p["key"] for p in listed] == days
    assert {(p["rows"], p["run_id"], p["commits"]) for p in listed} == {(2, "r2", 1)}


def test_dataset_uris_are_keyed_without_credentials_or_a_trailing_slash(catalog):
    catalog.record_partitions(
        "s3://AKIA:secret@lake/sales_daily/", [_part("2026-11-20", 5)], "r1", "s1"
    )
    assert _summary(catalog) == {"dt=2026-11-20": (5, 1, "r1", 1)}
    assert [d["uri"] for d in catalog.list_datasets()] == [OUT]
    assert catalog.list_partitions("s3://lake/other") == []
    assert catalog.has_partition("s3://lake/other", "") is False


def test_bad_partitions_are_refused_before_anything_is_recorded(catalog):
    with pytest.raises(PondConfigError, match="partition mode must be one of"):
        catalog.record_partitions(OUT, [_part("2026-11-20", 5)], "r1", "s1", mode="upsert")
    with pytest.raises(
        PondConfigError, match="rows of partition 'dt=x' must be a non-negative integer"
    ):
        catalog.record_partitions(OUT, [{"key": "dt=x", "files": 1, "rows": -4}], "r1", "s1")
    with pytest.raises(PondConfigError, match="values of partition 'dt=x' must be a dict"):
        catalog.record_partitions(OUT, [{"key": "dt=x", "values": "dt=x"}], "r1", "s1")
    with pytest.raises(PondConfigError, match="partition key must be text"):
        catalog.record_partitions(OUT, [{"key": 7}], "r1", "s1")
    with pytest.raises(PondConfigError, match="dataset URI must be a non-empty string"):
        catalog.record_partitions("", [], "r1", "s1")
    assert catalog.list_partitions(OUT) == []


SCHEMA = [{"name": "dt", "type": "DATE"}, {"name": "amount", "type": "DECIMAL(12,2)"}]


def _chain(catalog: Catalog) -> None:
    """raw → (r1/clean) → clean → (r1/agg, joined with dim) → daily."""
    catalog.record_lineage(
        "r1",
        "clean",
        [{"uri": "/lake/raw/*.parquet", "schema": SCHEMA, "rows": 100}],
        [{"uri": "/lake/clean", "schema": SCHEMA, "rows": 90}],
        "SELECT * FROM raw WHERE amount > 0",
        started_at=1_790_000_000.0,
        finished_at="2026-09-21T14:13:25+00:00",
    )
    catalog.record_lineage(
        "r1",
        "agg",
        [{"uri": "/lake/clean", "schema": SCHEMA, "rows": 90}, {"uri": "/lake/dim", "rows": 3}],
        [{"uri": "/lake/daily", "schema": [{"name": "dt", "type": "DATE"}], "rows": 12}],
        "SELECT dt, sum(amount) FROM clean JOIN dim USING (k) GROUP BY dt",
    )


def test_lineage_walks_upstream_and_downstream_with_run_stage_and_sql(catalog):
    _chain(catalog)

    clean = catalog.lineage("/lake/clean")
    assert clean["upstream"] == [
        {
            "uri": "/lake/raw/*.parquet",
            "schema": SCHEMA,
            "rows": 100,
            "run_id": "r1",
            "stage_id": "clean",
            "sql": "SELECT * FROM raw WHERE amount > 0",
            "started_at": "2026-09-21T14:13:20+00:00",
            "finished_at": "2026-09-21T14:13:25+00:00",
        }
    ]
    assert [(e["uri"], e["stage_id"], e["rows"]) for e in clean["downstream"]] == [
        ("/lake/daily", "agg", 12)
    ]
    daily = catalog.lineage("/lake/daily")
    assert [(e["uri"], e["rows"]) for e in daily["upstream"]] == [
        ("/lake/clean", 90),
        ("/lake/dim", 3),
    ]
    assert daily["downstream"] == []
    assert catalog.lineage("/lake/unknown") == {"upstream": [], "downstream": []}


def test_recording_a_stage_again_replaces_its_lineage_and_other_runs_add_theirs(catalog):
    _chain(catalog)
    catalog.record_lineage(
        "r1", "clean", [{"uri": "/lake/raw2"}], [{"uri": "/lake/clean", "rows": 95}], "SELECT 2"
    )
    assert [(e["uri"], e["sql"]) for e in catalog.lineage("/lake/clean")["upstream"]] == [
        ("/lake/raw2", "SELECT 2")
    ]
    assert catalog.lineage("/lake/raw/*.parquet") == {"upstream": [], "downstream": []}

    catalog.record_lineage(
        "r2", "clean", [{"uri": "/lake/raw3"}], [{"uri": "/lake/clean"}], "SELECT 3"
    )
    upstream = catalog.lineage("/lake/clean")["upstream"]
    assert [(e["uri"], e["run_id"]) for e in upstream] == [
        ("/lake/raw3", "r2"),
        ("/lake/raw2", "r1"),
    ]
    assert catalog.lineage("/lake/clean", limit=1)["upstream"] == upstream[:1]


def test_a_runs_lineage_records_come_back_as_recorded(catalog):
    _chain(catalog)
    records = catalog.run_lineage("r1")
    assert [r["stage_id"] for r in records] == ["clean", "agg"]
    assert records[1] == {
        "run_id": "r1",
        "stage_id": "agg",
        "inputs": [
            {"uri": "/lake/clean", "schema": SCHEMA, "rows": 90},
            {"uri": "/lake/dim", "schema": [], "rows": 3},
        ],
        "outputs": [{"uri": "/lake/daily", "schema": [{"name": "dt", "type": "DATE"}], "rows": 12}],
        "sql": "SELECT dt, sum(amount) FROM clean JOIN dim USING (k) GROUP BY dt",
        "started_at": None,
        "finished_at": None,
    }
    assert catalog.run_lineage("r2") == []


def test_datasets_remember_the_last_schema_recorded_for_them(catalog):
    _chain(catalog)
    schemas = {d["uri"]: d["schema"] for d in catalog.list_datasets()}
    assert schemas == {
        "/lake/clean": SCHEMA,
        "/lake/daily": [{"name": "dt", "type": "DATE"}],
        "/lake/dim": [],
        "/lake/raw/*.parquet": SCHEMA,
    }


def test_bad_lineage_is_refused(catalog):
    with pytest.raises(PondConfigError, match="each lineage input needs a 'uri'"):
        catalog.record_lineage("r1", "s1", [{"path": "/x"}], [], None)
    with pytest.raises(PondConfigError, match="schema of /x must be a list of"):
        catalog.record_lineage("r1", "s1", [], [{"uri": "/x", "schema": "a INT"}], None)
    with pytest.raises(PondConfigError, match="run 'nope' was never started"):
        catalog.record_lineage("nope", "s1", [], [{"uri": "/x"}], None)
    assert catalog.run_lineage("r1") == []
