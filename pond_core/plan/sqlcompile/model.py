"""The typed description of a distributed SQL plan: partitionings, operators, exchanges, reasons.

The planner records every decision it makes as plan nodes, so `explain()` can say what runs
where and why (an exchange and the rule that needed it, a broadcast and the size that allowed
it, a fallback to one partition and what could not be distributed). These are plain frozen
dataclasses and enums; nothing here touches pond or DuckDB.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools


class PartKind(enum.Enum):
    """How a relation's rows are spread over its partitions."""

    SINGLE = "single"  # one partition holding every row
    SPLIT = "split"  # n partitions, any row anywhere (files or row ranges of the input)
    HASH = "hash"  # n partitions, rows with equal key values in the same partition
    CLUSTERED = "clustered"  # n partitions holding disjoint key ranges (files sorted by key)
    RANGE = "range"  # n partitions in sort order: partition k sorts before partition k+1


@dataclasses.dataclass(frozen=True)
class Partitioning:
    kind: PartKind
    n: int
    # HASH: alternative key tuples that each describe the layout (after an inner join on
    # a = b, hashed on (a) and hashed on (b) are both true). Column names of the relation.
    keys: tuple[tuple[str, ...], ...] = ()
    # CLUSTERED: SQL literals s_1 < ... < s_{n-1}; partition k holds keys in [s_k, s_{k+1}).
    bounds: tuple[str, ...] = ()

    @staticmethod
    def single() -> Partitioning:
        return Partitioning(PartKind.SINGLE, 1)

    @staticmethod
    def split(n: int) -> Partitioning:
        return Partitioning.single() if n == 1 else Partitioning(PartKind.SPLIT, n)

    @staticmethod
    def hashed(n: int, keys: tuple[str, ...]) -> Partitioning:
        return Partitioning.single() if n == 1 else Partitioning(PartKind.HASH, n, (tuple(keys),))

    @staticmethod
    def clustered(n: int, key: str, bounds: tuple[str, ...]) -> Partitioning:
        return Partitioning.single() if n == 1 else Partitioning(PartKind.CLUSTERED, n, ((key,),), bounds)

    @property
    def is_single(self) -> bool:
        return self.kind is PartKind.SINGLE

    @property
    def keyed(self) -> bool:
        """Rows with equal key values share a partition (HASH or CLUSTERED)."""
        return self.kind in (PartKind.HASH, PartKind.CLUSTERED)

    def same_scheme(self, other: Partitioning) -> bool:
        """Equal key values land in the same partition index on both sides."""
        return self.keyed and self.kind is other.kind and self.n == other.n and self.bounds == other.bounds

    def hashed_on(self, cols: tuple[str, ...]) -> bool:
        """Rows with equal values of exactly `cols` (in this order) share a partition."""
        return self.keyed and tuple(cols) in self.keys

    def groups_on(self, cols: set[str] | frozenset[str]) -> bool:
        """Every group of equal `cols` values lies in one partition (SINGLE, or hashed on a
        subset of them)."""
        if self.is_single:
            return True
        return self.keyed and any(k and set(k) <= set(cols) for k in self.keys)

    def renamed(self, mapping: dict[str, str]) -> Partitioning:
        """The layout after a projection that keeps (and renames) the columns in `mapping`."""
        if not self.keyed:
            return self
        keys = tuple(tuple(mapping[c] for c in k) for k in self.keys if all(c in mapping for c in k))
        if not keys:
            return Partitioning(PartKind.SPLIT, self.n)
        return Partitioning(self.kind, self.n, keys, self.bounds)

    def with_alternatives(self, extra: tuple[tuple[str, ...], ...]) -> Partitioning:
        if not self.keyed:
            return self
        merged = tuple(dict.fromkeys(self.keys + tuple(tuple(k) for k in extra)))
        return Partitioning(self.kind, self.n, merged, self.bounds)

    def describe(self) -> str:
        if self.kind is PartKind.SINGLE:
            return "1 partition"
        if self.keyed:
            alts = " = ".join("(" + ", ".join(k) + ")" for k in self.keys)
            return f"{self.kind.value}{alts} x{self.n}"
        return f"{self.kind.value} x{self.n}"


class ExchangeKind(enum.Enum):
    HASH = "hash exchange"  # repartition(n, hash_by=keys)
    KEY_RANGES = "key-range exchange"  # repartition(n, by=bucket of the key in another side's ranges)
    GATHER = "gather"  # repartition(1)
    BROADCAST = "broadcast"  # a 1-partition input read by every partition
    SPLIT = "split"  # repartition(n) by files or rows of an input
    RANGE = "range exchange"  # repartition(n, by=bucket from sampled boundaries)


class Op(enum.Enum):
    SCAN = "scan"
    FILTER = "filter"
    PROJECT = "project"
    JOIN = "join"
    AGGREGATE = "aggregate"
    PARTIAL_AGGREGATE = "partial aggregate"
    FINAL_AGGREGATE = "final aggregate"
    DISTINCT = "distinct"
    WINDOW = "window"
    SORT = "sort"
    TOP_N = "top-n"
    LIMIT = "limit"
    SET_OP = "set operation"
    SAMPLE = "sample"
    EXCHANGE = "exchange"
    SUBQUERY = "subquery"
    SINGLE_PARTITION = "single partition"
    RESULT = "result"


_ids = itertools.count(1)


@dataclasses.dataclass(frozen=True, eq=False)
class PlanNode:
    """One operator of the distributed plan, with the layout it produces and why it is there."""

    op: Op
    detail: str
    part: Partitioning
    inputs: tuple[PlanNode, ...] = ()
    reason: str = ""
    exchange: ExchangeKind | None = None
    rows: float | None = None  # the planner's estimate
    bytes: float | None = None
    ident: int = dataclasses.field(default_factory=lambda: next(_ids))

    def walk(self) -> list[PlanNode]:
        """Distinct nodes reachable from this one, inputs first."""
        out: dict[int, PlanNode] = {}
        stack: list[tuple[PlanNode, bool]] = [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                out.setdefault(node.ident, node)
                continue
            if node.ident in out:
                continue
            stack.append((node, True))
            stack.extend((i, False) for i in reversed(node.inputs))
        return list(out.values())


@dataclasses.dataclass(frozen=True)
class Fallback:
    """A part of the query that runs in one partition, and why."""

    where: str
    reason: str

    def describe(self) -> str:
        return f"{self.where} runs in one partition: {self.reason}"

    def sql_comment(self) -> str:
        """The fallback as a comment heading the step's SQL: so the stage's description, its
        lineage record in the catalog and any error naming the step say why it is one task."""
        text = self.describe().replace("*/", "* /").replace("{", "(").replace("}", ")")
        return f"/* pond: {text} */ "


@dataclasses.dataclass(frozen=True)
class PlanOptions:
    """Knobs of the planner; every one has a default chosen from the inputs and the cluster."""

    npartitions: int | None = None  # None: from input sizes and cluster cores
    broadcast_threshold: int = 32 * 2**20  # estimated bytes under which a join side is broadcast
    single_read_threshold: int = 8 * 2**20  # a table this small is read as one partition
    partition_bytes: int = 256 * 2**20  # target bytes per partition when choosing counts
    max_partitions: int | None = None  # cap for the chosen count; default 2 x cluster cores
    distribute: bool = True  # False: plan the whole query as one partition (a reference)
    strict: bool = False  # True: a part that would run in one partition is an error instead
