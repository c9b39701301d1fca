"""pond's neutral lineage records as OpenLineage facets and Airflow asset events.

Dataset naming follows OpenLineage's conventions: a local path is namespace `file` with the
absolute path as name; `s3://bucket/key` is namespace `s3://bucket`, name `key`; pond's
intermediate outputs `pond://<pipeline>/<stage>` are namespace `pond://<pipeline>`. A glob
names the directory above its first wildcard: the dataset, not one listing of it.
An output carries pond's column lineage as the columnLineage facet: each column with the
source dataset columns it is computed from, traced through every stage of the plan.
OpenLineage is imported lazily so the provider works without it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

_GLOB = set("*?[{")


def dataset_uri(path: str) -> str:
    """The dataset a path or glob belongs to, as a URI (`file:///abs`, `s3://b/k`, `pond://p/s`)."""
    if "://" not in path:
        path = os.path.abspath(path)
    parts = path.split("/")
    for i, part in enumerate(parts):
        if _GLOB & set(part):
            path = "/".join(parts[:i]) or "/"
            break
    path = path.rstrip("/") or path
    return path if "://" in path else f"file://{path}"


def ol_name(uri: str) -> tuple[str, str]:
    """(namespace, name) of a dataset URI, per OpenLineage's naming spec."""
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        return "file", rest or "/"
    bucket, _, key = rest.partition("/")
    return f"{scheme}://{bucket}", key or "/"


def _facets(item: dict[str, Any]) -> dict[str, Any]:
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacet, SchemaDatasetFacetFields

    facets: dict[str, Any] = {}
    schema = item.get("schema")
    if schema:
        facets["schema"] = SchemaDatasetFacet(fields=[SchemaDatasetFacetFields(name=f["name"], type=f["type"]) for f in schema])
    if item.get("assertions"):
        facets["dataQualityAssertions"] = _assertions(item["assertions"])
    if item.get("column_lineage"):
        facets["columnLineage"] = _column_lineage(item["column_lineage"])
    return facets


def _column_lineage(columns: dict[str, list[dict[str, str]]]) -> Any:
    """pond's column lineage (each output column -> the source columns it is computed from) as
    OpenLineage's columnLineage facet; source datasets named as the event's inputs are, each
    with its DIRECT transformation (IDENTITY, TRANSFORMATION or AGGREGATION)."""
    from airflow.providers.common.compat.openlineage.facet import ColumnLineageDatasetFacet, Fields, InputField
    from openlineage.client.generated.column_lineage_dataset import Transformation

    def field(source: dict[str, str]) -> Any:
        namespace, name = ol_name(dataset_uri(source["dataset"]))
        how = source.get("transformation")
        transformations = [Transformation(type="DIRECT", subtype=how.upper())] if how else None
        return InputField(namespace=namespace, name=name, field=source["column"], transformations=transformations)

    return ColumnLineageDatasetFacet(
        fields={column: Fields(inputFields=[field(s) for s in sources], transformationType="", transformationDescription="")
                for column, sources in columns.items()}
    )


def _assertions(assertions: list[dict[str, Any]]) -> Any:
    """pond's checks before publish as OpenLineage's DataQualityAssertions facet."""
    from openlineage.client.generated.data_quality_assertions_dataset import Assertion, DataQualityAssertionsDatasetFacet

    return DataQualityAssertionsDatasetFacet(
        assertions=[
            Assertion(
                assertion=a["assertion"], success=a["success"], column=a.get("column"), severity=a.get("severity"),
                name=a.get("name"), actual=a.get("actual"),
            )
            for a in assertions
        ]
    )


def _datasets(items: Iterable[dict[str, Any]], output: bool) -> list[Any]:
    from airflow.providers.common.compat.openlineage.facet import (
        InputDataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )

    seen: dict[tuple[str, str], Any] = {}
    for item in items:
        namespace, name = ol_name(dataset_uri(item["uri"]))
        if (namespace, name) in seen:
            continue
        if output:
            stats: dict[str, Any] = {}
            if item.get("rows") is not None:
                stats["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=item["rows"], size=item.get("bytes"))
            seen[(namespace, name)] = OutputDataset(namespace=namespace, name=name, facets=_facets(item), outputFacets=stats)
        else:
            seen[(namespace, name)] = InputDataset(namespace=namespace, name=name, facets=_facets(item))
    return list(seen.values())


def operator_lineage(record: dict[str, Any], error: BaseException | None = None) -> Any:
    """An OperatorLineage from pond's record: {"inputs", "outputs", "sql", "run_id", "stage_id"}."""
    from airflow.providers.common.compat.openlineage.facet import (
        ErrorMessageRunFacet,
        ExternalQueryRunFacet,
        SQLJobFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    run_facets: dict[str, Any] = {}
    if record.get("run_id"):
        query_id = f"{record['run_id']}/{record.get('stage_id') or ''}".rstrip("/")
        run_facets["externalQuery"] = ExternalQueryRunFacet(externalQueryId=query_id, source="pond")
    if error is not None:
        run_facets["errorMessage"] = ErrorMessageRunFacet(message=str(error), programmingLanguage="python")
    job_facets = {"sql": SQLJobFacet(query=record["sql"])} if record.get("sql") else {}
    return OperatorLineage(
        inputs=_datasets(record.get("inputs") or [], output=False),
        outputs=_datasets(record.get("outputs") or [], output=True),
        run_facets=run_facets,
        job_facets=job_facets,
    )


def asset_event_extra(result: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What an asset event says about the write: rows, bytes, files, partitions, the pond run."""
    from pond_airflow.runs import MAX_LISTED_PARTITIONS, partition_keys

    keys = partition_keys(result)
    extra: dict[str, Any] = {
        "pond_run_id": run_id,
        "stage": result.get("stage"),
        "rows": (result.get("sink") or {}).get("rows", result.get("rows")),
        "bytes": result.get("bytes"),
        "files": result.get("files"),
    }
    if keys:
        extra["partitions"] = keys[:MAX_LISTED_PARTITIONS]
    return extra


def emit_asset_events(context: Any, outlets: Iterable[Any], uri: str, extra: dict[str, Any], match: bool = True) -> None:
    """Attach `extra` to this task's outlet events for the dataset at `uri`.

    A static Asset outlet gets the extra when it names this dataset (or always, with
    match=False: the operator's outlets are what the user said it writes); an AssetAlias outlet
    gains an event for `Asset(uri)`, for outputs whose URI is known only at run time. Written
    partitions go in the extra, not in the event's partition keys: those belong to the DAG
    run (a partitioned run's key), and downstream partition mapping relies on that.
    """
    from airflow.sdk import Asset, AssetAlias

    events = context["outlet_events"]
    target = dataset_uri(uri)
    for outlet in outlets:
        if isinstance(outlet, AssetAlias):
            events[outlet].add(Asset(target), extra=extra)
        elif isinstance(outlet, Asset) and (not match or outlet.uri.rstrip("/") == Asset(target).uri.rstrip("/")):
            events[outlet].extra.update(extra)
