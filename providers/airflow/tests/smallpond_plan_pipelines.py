"""A pipeline written with smallpond's low-level API: it returns a LogicalPlan, which pond
renders as one task per stage, named from the nodes' output_name."""

from __future__ import annotations

from typing import Any

from pond_core.compat.smallpond.logical.dataset import ParquetDataSet
from pond_core.compat.smallpond.logical.node import (
    Context,
    DataSetPartitionNode,
    DataSinkNode,
    DataSourceNode,
    HashPartitionNode,
    LogicalPlan,
    SqlEngineNode,
)


def host_counts(sp: Any, source: str, output: str) -> LogicalPlan:
    ctx = Context()
    urls = DataSetPartitionNode(ctx, (DataSourceNode(ctx, ParquetDataSet([source])),), npartitions=2)
    by_host = HashPartitionNode(ctx, (urls,), npartitions=3, hash_columns=["host"], output_name="urls_by_host")
    counts = SqlEngineNode(ctx, (by_host,), "select host, count(*) as n from {0} group by host", output_name="host_counts")
    return LogicalPlan(ctx, DataSinkNode(ctx, (counts,), output_path=output))
