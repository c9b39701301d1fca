"""Checks before publish: data-quality rules run on a sink's staged files before its commit.

A sink takes checks (`write_parquet(..., checks=[...])`, `write_iceberg(..., checks=[...])`).
When every task of the stage has written its files, and before anything is published, each
check runs as one DuckDB query over the staged files (the relation `staged`). A failing
error-level check fails the stage with `PondCheckError` (a data error: never retried) whose
message is a table of what failed, with counts and a few sample rows; the sink is aborted, so
the dataset or table keeps its previous contents. Warn-level checks record their result and
let the commit go on. Results travel in the stage result (and so the catalog, lineage's
DataQualityAssertions facet, the Airflow task log and a Prefect artifact).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from pond_core.errors import PondConfigError, PondDataError
from pond_core.sql_quote import quote_ident, sql_literal
from pond_core.textenum import TextEnum

SAMPLE_ROWS = 5
RELATION = "staged"


class CheckKind(TextEnum):
    ROW_COUNT = "row_count"
    NOT_NULL = "not_null"
    UNIQUE = "unique"
    ACCEPTED_VALUES = "accepted_values"
    EXPRESSION = "expression"  # a predicate every row must satisfy
    QUERY = "query"  # a query over `staged` that must return no rows


class Severity(TextEnum):
    ERROR = "error"
    WARN = "warn"


@dataclasses.dataclass(frozen=True)
class Check:
    kind: CheckKind
    columns: tuple[str, ...] = ()
    values: tuple[Any, ...] = ()
    min_rows: int | None = None
    max_rows: int | None = None
    sql: str | None = None
    severity: Severity = Severity.ERROR
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CheckKind(self.kind))
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "values", tuple(self.values))
        needs_columns = self.kind in (CheckKind.NOT_NULL, CheckKind.UNIQUE, CheckKind.ACCEPTED_VALUES)
        if needs_columns and not self.columns:
            raise PondConfigError(f"check {self.kind} needs at least one column")
        if self.kind is CheckKind.ACCEPTED_VALUES and (len(self.columns) != 1 or not self.values):
            raise PondConfigError("check accepted_values takes one column and a non-empty list of values")
        if self.kind in (CheckKind.EXPRESSION, CheckKind.QUERY) and not (self.sql or "").strip():
            raise PondConfigError(f"check {self.kind} needs SQL")
        if self.kind is CheckKind.ROW_COUNT and self.min_rows is None and self.max_rows is None:
            raise PondConfigError("check row_count needs min= or max=")
        if not self.name:
            object.__setattr__(self, "name", self._default_name())

    def _default_name(self) -> str:
        if self.kind is CheckKind.ROW_COUNT:
            if self.max_rows is None:
                return f"row_count at least {self.min_rows}"
            if self.min_rows is None:
                return f"row_count at most {self.max_rows}"
            return f"row_count between {self.min_rows} and {self.max_rows}"
        if self.kind is CheckKind.ACCEPTED_VALUES:
            return f"accepted_values({self.columns[0]})"
        if self.kind in (CheckKind.EXPRESSION, CheckKind.QUERY):
            return f"{self.kind}: {' '.join(str(self.sql).split())[:60]}"
        return f"{self.kind}({', '.join(self.columns)})"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(kind=self.kind.value, severity=self.severity.value, columns=list(self.columns), values=list(self.values))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        return cls(**dict(data))


# --- the checks a user writes -------------------------------------------------------------------


def _severity(warn: bool) -> Severity:
    return Severity.WARN if warn else Severity.ERROR


def row_count(min: int | None = None, max: int | None = None, *, warn: bool = False, name: str = "") -> Check:
    return Check(CheckKind.ROW_COUNT, min_rows=min, max_rows=max, severity=_severity(warn), name=name)


def not_null(*columns: str, warn: bool = False, name: str = "") -> Check:
    return Check(CheckKind.NOT_NULL, columns=columns, severity=_severity(warn), name=name)


def unique(*columns: str, warn: bool = False, name: str = "") -> Check:
    """No two rows share these columns' values (one key set)."""
    return Check(CheckKind.UNIQUE, columns=columns, severity=_severity(warn), name=name)


def accepted_values(column: str, values: Sequence[Any], *, warn: bool = False, name: str = "") -> Check:
    return Check(CheckKind.ACCEPTED_VALUES, columns=(column,), values=tuple(values), severity=_severity(warn), name=name)


def expression(predicate: str, *, warn: bool = False, name: str = "") -> Check:
    """A SQL predicate every row must satisfy (NULL counts as failing)."""
    return Check(CheckKind.EXPRESSION, sql=predicate, severity=_severity(warn), name=name)


def query(sql: str, *, warn: bool = False, name: str = "") -> Check:
    """A SQL query over the relation `staged` that must return no rows."""
    return Check(CheckKind.QUERY, sql=sql, severity=_severity(warn), name=name)


def as_checks(checks: Sequence[Check | Mapping[str, Any]]) -> tuple[Check, ...]:
    out = []
    for c in checks:
        if isinstance(c, Check):
            out.append(c)
        elif isinstance(c, Mapping):
            out.append(Check.from_dict(c))
        else:
            raise PondConfigError(f"a check is a pond_core.checks.Check (not_null(...), unique(...), ...), not {type(c).__name__}")
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise PondConfigError(f"two checks share a name: {names}; give name=")
    return tuple(out)


# --- results ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CheckResult:
    name: str
    kind: CheckKind
    severity: Severity
    passed: bool
    failing: int  # rows (or groups) that broke the rule; for row_count, the row count
    detail: str  # what was observed, in words
    sample_columns: tuple[str, ...] = ()
    sample: tuple[tuple[str, ...], ...] = ()  # a few failing rows, as text
    columns_checked: str = ""  # the column a single-column check is about

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind.value, "severity": self.severity.value, "passed": self.passed,
            "failing": self.failing, "detail": self.detail, "sample_columns": list(self.sample_columns),
            "sample": [list(r) for r in self.sample], "columns_checked": self.columns_checked,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckResult:
        return cls(
            d["name"], CheckKind(d["kind"]), Severity(d["severity"]), bool(d["passed"]), int(d["failing"]), d.get("detail", ""),
            tuple(d.get("sample_columns") or ()), tuple(tuple(r) for r in d.get("sample") or ()), d.get("columns_checked", ""),
        )


class PondCheckError(PondDataError):
    """Error-level checks failed on the staged output: nothing was published."""

    def __init__(self, message: str, results: tuple[CheckResult, ...]) -> None:
        super().__init__(message)
        self.results = results


def render(results: Sequence[CheckResult]) -> str:
    """The results as a plain-text table, then the sample rows of each failed check."""
    rows = [("check", "severity", "status", "failing", "detail")]
    for r in results:
        status = "passed" if r.passed else ("FAILED" if r.severity is Severity.ERROR else "warned")
        rows.append((r.name, r.severity.value, status, str(r.failing), r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        if not r.passed and r.sample:
            lines.append(f"sample rows failing {r.name}:")
            lines.append("  " + " | ".join(r.sample_columns))
            lines += ["  " + " | ".join(row) for row in r.sample]
    return "\n".join(lines)


# --- running ------------------------------------------------------------------------------------


def run_checks(con: Any, checks: Sequence[Check]) -> tuple[CheckResult, ...]:
    """Run each check against the relation `staged` on `con`."""
    return tuple(_run(con, c) for c in checks)


def _failing_rows_sql(check: Check) -> str | None:
    """A query returning the offending rows (or groups), or None for row_count."""
    if check.kind is CheckKind.NOT_NULL:
        return f"SELECT * FROM {RELATION} WHERE " + " OR ".join(f"{quote_ident(c)} IS NULL" for c in check.columns)
    if check.kind is CheckKind.UNIQUE:
        keys = ", ".join(quote_ident(c) for c in check.columns)
        return f"SELECT {keys}, count(*) AS duplicates FROM {RELATION} GROUP BY ALL HAVING count(*) > 1 ORDER BY duplicates DESC, {keys}"
    if check.kind is CheckKind.ACCEPTED_VALUES:
        column = quote_ident(check.columns[0])
        allowed = ", ".join(sql_literal(v) for v in check.values)
        return f"SELECT * FROM {RELATION} WHERE {column} IS NULL OR {column} NOT IN ({allowed})"
    if check.kind is CheckKind.EXPRESSION:
        return f"SELECT * FROM {RELATION} WHERE ({check.sql}) IS NOT TRUE"
    if check.kind is CheckKind.QUERY:
        return str(check.sql).strip().rstrip(";")
    return None


def _run(con: Any, check: Check) -> CheckResult:
    return dataclasses.replace(_measure(con, check), columns_checked=check.columns[0] if len(check.columns) == 1 else "")


def _measure(con: Any, check: Check) -> CheckResult:
    import duckdb

    try:
        if check.kind is CheckKind.ROW_COUNT:
            (count,) = con.execute(f"SELECT count(*) FROM {RELATION}").fetchone()
            ok = (check.min_rows is None or count >= check.min_rows) and (check.max_rows is None or count <= check.max_rows)
            return CheckResult(check.name, check.kind, check.severity, ok, int(count), f"{count} rows")
        sql = _failing_rows_sql(check)
        (count,) = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
        sample_cursor = con.execute(f"SELECT * FROM ({sql}) LIMIT {SAMPLE_ROWS}") if count else None
    except duckdb.Error as exc:
        raise PondConfigError(f"check {check.name!r} cannot run: {str(exc).splitlines()[0]}") from None
    columns: tuple[str, ...] = ()
    sample: tuple[tuple[str, ...], ...] = ()
    if sample_cursor is not None:
        columns = tuple(d[0] for d in sample_cursor.description)
        sample = tuple(tuple("NULL" if v is None else str(v) for v in row) for row in sample_cursor.fetchall())
    noun = "duplicate keys" if check.kind is CheckKind.UNIQUE else "rows"
    return CheckResult(check.name, check.kind, check.severity, count == 0, int(count), f"{count} {noun} failing", columns, sample)


def verdict(stage: str, target: str, results: tuple[CheckResult, ...]) -> None:
    """Raise PondCheckError when an error-level check failed."""
    failed = [r for r in results if not r.passed and r.severity is Severity.ERROR]
    if failed:
        raise PondCheckError(
            f"stage {stage}: {len(failed)} check(s) failed on the output for {target}; nothing was published\n{render(results)}",
            results,
        )


render_checks = render  # the name pond_core.api exports
