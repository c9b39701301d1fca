"""smallpond's copy nodes: a partition copied through Arrow, whole or batch by batch."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pond_core.compat.smallpond.execution.task import RuntimeContext
from pond_core.compat.smallpond.logical.node import ArrowComputeNode, ArrowStreamNode

log = logging.getLogger("pond.smallpond")


class CopyArrowTable(ArrowComputeNode):
    def process(self, runtime_ctx: RuntimeContext, input_tables: list[Any]) -> Any:
        log.info("copying table: %d rows ...", input_tables[0].num_rows)
        return input_tables[0]


class StreamCopy(ArrowStreamNode):
    def process(self, runtime_ctx: RuntimeContext, input_readers: list[Any]) -> Iterable[Any]:
        import pyarrow as pa

        for batch in input_readers[0]:
            log.info("copying batch: %d rows ...", batch.num_rows)
            yield pa.Table.from_batches([batch])
