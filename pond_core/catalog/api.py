"""`Catalog`: the one object the engine, the CLI and the providers talk to.

Every method takes and returns plain data (str, int, float, dicts and lists of them), runs as
one short transaction, and is safe to call from many processes at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import URL, Connection
from sqlalchemy.exc import DBAPIError

from pond_core.catalog import convert, datasets, engine, leases, lineage, migrate, runs
from pond_core.catalog.convert import Timestamp, count, now, to_datetime
from pond_core.catalog.models import FINAL_STATES
from pond_core.catalog.transactions import Transactions
from pond_core.errors import PondConfigError, PondRunBusyError
from pond_core.heartbeat import MISSED_BEATS, stale_before


class Catalog:
    """The SQL catalog of runs, stage runs, datasets and their partitions, and lineage."""

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        self._url = engine.parse_url(url)
        self._echo = echo
        self._tx = Transactions(engine.create_catalog_engine(self._url, echo=echo))
        try:
            self._tx.ping()
            migrate.upgrade(self._tx.engine)
        except DBAPIError as exc:
            self._tx.engine.dispose()
            if self._tx.disk_full(exc):
                raise self._tx.failed(exc) from None
            raise PondConfigError(
                f"catalog at {self.url} cannot be upgraded to schema {migrate.head_revision()}: "
                f"{self._tx.cause(exc)}"
            ) from None
        except BaseException:
            self._tx.engine.dispose()
            raise

    @staticmethod
    def default_url(storage_root: str) -> str:
        """`sqlite:///<root>/catalog.sqlite` for a local root.

        An object-store root (`s3://bucket/prefix`) cannot hold a SQLite file, so its catalog is
        `~/.pond/catalog-s3-bucket-prefix.sqlite` on this machine; a deployment where several
        machines run one pipeline must set a PostgreSQL URL instead.
        """
        return engine.default_url(storage_root)

    # -- connection -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The catalog URL with its password masked."""
        return engine.mask(self._url)

    @property
    def backend(self) -> str:
        return self._url.get_backend_name()

    def __repr__(self) -> str:
        return f"Catalog({self.url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Ray and multiprocessing ship the catalog to workers: they reopen it by URL.
        return (_reopen, (self._url.render_as_string(hide_password=False), self._echo))

    def ping(self) -> None:
        """Raise PondConfigError (within ~5 s) when the catalog does not answer."""
        self._tx.ping()

    def close(self) -> None:
        self._tx.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- runs and stage runs --------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        pipeline: str,
        params: Mapping[str, Any] | None = None,
        plan_fingerprint: str | None = None,
        executor: str = "local",
    ) -> None:
        """Mark a run running. Starting a finished run again (a rerun) bumps its `attempts`;
        starting one that is still running changes nothing, so each stage task may call it."""
        _name(run_id, "run_id")
        _name(pipeline, "pipeline")
        at = now()
        self._tx.write(
            lambda c: runs.start_run(
                c, run_id, pipeline, dict(params or {}), plan_fingerprint, executor, at
            )
        )

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        _final(status)
        at = now()
        self._tx.write(lambda c: runs.finish_run(c, run_id, status, error, at))

    def start_stage(self, run_id: str, stage_id: str, stage_name: str, npartitions: int, position: int | None = None) -> int:
        """Mark a stage running and return its attempt number (1 on the first start).
        `position`: the stage's index in its plan, which orders a run's stages."""
        _name(stage_id, "stage_id", 128)
        _name(stage_name, "stage_name")
        count(npartitions, f"npartitions of stage {stage_id!r}")
        at = now()
        return self._tx.write(
            lambda c: runs.start_stage(c, run_id, stage_id, stage_name, npartitions, at, position)
        )

    def finish_stage(
        self,
        run_id: str,
        stage_id: str,
        status: str,
        *,
        rows: int | None = None,
        bytes: int | None = None,
        files: int | None = None,
        duration_s: float | None = None,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
        task_retries: int = 0,
        node_failures: int = 0,
        speculative_attempts: int = 0,
    ) -> None:
        """Record how a stage attempt ended. The three counters add up over attempts."""
        _final(status)
        values = {
            "status": status,
            "row_count": count(rows, "rows"),
            "byte_count": count(bytes, "bytes"),
            "file_count": count(files, "files"),
            "duration_s": None if duration_s is None else float(duration_s),
            "result": None if result is None else dict(result),
            "error": error,
            "task_retries": count(task_retries, "task_retries"),
            "node_failures": count(node_failures, "node_failures"),
            "speculative_attempts": count(speculative_attempts, "speculative_attempts"),
        }
        at = now()
        self._tx.write(lambda c: runs.finish_stage(c, run_id, stage_id, dict(values), at))

    def stage_result(self, run_id: str, stage_id: str) -> dict[str, Any] | None:
        """The result recorded by the stage's last attempt if it succeeded, else None."""
        return self._tx.read(lambda c: runs.stage_result(c, run_id, stage_id))

    def heartbeat(self, run_id: str, stage_id: str) -> None:
        """Stamp a running stage as alive (see `pond_core.heartbeat`)."""
        at = now()
        self._tx.write(lambda c: runs.heartbeat(c, run_id, stage_id, at))

    # -- leases (one live driver per stage; see leases.py) -----------------------------------

    def acquire_stage_lease(
        self, run_id: str, stage_id: str, holder: str, stage_name: str | None = None, gone: Callable[[str], bool] | None = None
    ) -> str | None:
        """Hold the stage's lease as `holder`; returns the stale holder taken over, if any.
        Raises PondRunBusyError naming the live holder when another driver runs the stage.
        `gone(holder)`: True when that holder is known dead (a process of this machine)."""
        at = now()
        cutoff = stale_before(at)
        outcome = self._tx.write(lambda c: leases.acquire(c, run_id, stage_id, holder, at, cutoff, gone))
        if not outcome.acquired:
            assert outcome.holder is not None
            held = outcome.holder
            raise PondRunBusyError(
                f"stage {stage_name or stage_id} of run {run_id} is being run by another driver, {held.holder} "
                f"(since {convert.iso(held.acquired_at)}, alive at {convert.iso(held.renewed_at)}); wait for it "
                "to finish, or resume the run once that driver is gone (its lease goes stale after "
                f"{MISSED_BEATS} missed heartbeats)"
            )
        return outcome.took_over.holder if outcome.took_over else None

    def renew_stage_lease(self, run_id: str, stage_id: str, holder: str) -> bool:
        """Stamp the lease; False when another driver took it over (this one was stale)."""
        at = now()
        return self._tx.write(lambda c: leases.renew(c, run_id, stage_id, holder, at))

    def release_stage_lease(self, run_id: str, stage_id: str, holder: str) -> None:
        self._tx.write(lambda c: leases.release(c, run_id, stage_id, holder))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run with its stage runs under "stages", or None. Running stages and runs carry
        `stale`: no heartbeat for three intervals, so whatever ran them is gone."""
        cutoff = stale_before(now())
        return self._tx.read(lambda c: runs.get_run(c, run_id, cutoff))

    def list_runs(
        self, limit: int = 20, pipeline: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """The most recently started runs first."""
        count(limit, "limit")
        cutoff = stale_before(now())
        return self._tx.read(lambda c: runs.list_runs(c, limit, pipeline, status, cutoff))

    # -- datasets and partitions ----------------------------------------------------------

    def record_partitions(
        self,
        dataset_uri: str,
        partitions: Sequence[Mapping[str, Any]],
        run_id: str,
        stage_id: str,
        *,
        mode: str = "overwrite_partitions",
    ) -> None:
        """Record committed partitions: {"key", "values", "files", "rows", "bytes"} each.

        mode follows the sink: "overwrite_partitions" replaces the keys given, "overwrite" and
        "error" replace the whole dataset, "append" adds to the keys (a retry of the same run
        and stage replaces its own earlier append instead of counting it twice).
        """
        if mode not in datasets.MODES:
            raise PondConfigError(f"partition mode must be one of {datasets.MODES}, not {mode!r}")
        uri, rows, at = convert.dataset_uri(dataset_uri), datasets.partition_rows(partitions), now()
        self._with_datasets(
            [uri],
            at,
            lambda c, ids: datasets.record_partitions(
                c, ids[uri], rows, run_id, stage_id, mode, at
            ),
        )

    def list_partitions(self, dataset_uri: str) -> list[dict[str, Any]]:
        """Committed partitions sorted by key; appended keys show totals and their writer count."""
        uri = convert.dataset_uri(dataset_uri)
        return self._tx.read(lambda c: datasets.list_partitions(c, uri))

    def has_partition(self, dataset_uri: str, key: str) -> bool:
        uri = convert.dataset_uri(dataset_uri)
        return self._tx.read(lambda c: datasets.has_partition(c, uri, key))

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset the catalog has seen, with its last recorded schema."""
        return self._tx.read(datasets.list_datasets)

    def _with_datasets(
        self, uris: list[str], at: dt.datetime, work: Callable[[Connection, dict[str, int]], None]
    ) -> None:
        """Run `work(conn, ids)` in one transaction once the datasets exist.

        Missing datasets are created in a transaction of their own (they are never deleted), so
        the recording transaction holds no insert locks on them; usually they exist already
        and the whole call is a single transaction.
        """

        def attempt(conn: Connection) -> bool:
            ids = datasets.find_datasets(conn, uris)
            if len(ids) < len(set(uris)):
                return False
            work(conn, ids)
            return True

        if not self._tx.write(attempt):
            self._tx.write(lambda c: datasets.create_datasets(c, uris, at))
            self._tx.write(lambda c: work(c, datasets.find_datasets(c, uris)))

    # -- lineage --------------------------------------------------------------------------

    def record_lineage(
        self,
        run_id: str,
        stage_id: str,
        inputs: Sequence[Mapping[str, Any]],
        outputs: Sequence[Mapping[str, Any]],
        sql: str | None = None,
        started_at: Timestamp | None = None,
        finished_at: Timestamp | None = None,
    ) -> None:
        """Record what a stage read and wrote: datasets are {"uri", "schema", "rows"} dicts."""
        ins, outs = lineage.dataset_refs(inputs, "input"), lineage.dataset_refs(outputs, "output")
        times = (to_datetime(started_at, "started_at"), to_datetime(finished_at, "finished_at"))
        schemas = {ref["uri"]: ref["schema"] for ref in ins + outs if ref["schema"]}
        at = now()

        def record(conn: Connection, ids: dict[str, int]) -> None:
            lineage.record_lineage(conn, run_id, stage_id, ids, ins, outs, sql, times, at)
            datasets.set_schemas(conn, ids, schemas, at)

        self._with_datasets([r["uri"] for r in ins + outs], at, record)

    def lineage(
        self, dataset_uri: str, *, limit: int | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """{"upstream": [...], "downstream": [...]}: neighbouring datasets with the run, stage,
        SQL and timings of the stage that linked them, newest first."""
        uri = convert.dataset_uri(dataset_uri)
        return self._tx.read(lambda c: lineage.lineage(c, uri, limit))

    def column_lineage(self, dataset_uri: str) -> dict[str, Any] | None:
        """The newest column lineage of a dataset: {"uri", "run_id", "stage_id", "finished_at",
        "columns": {column: [{"dataset", "column"}]}}; None when none was recorded."""
        uri = convert.dataset_uri(dataset_uri)
        return self._tx.read(lambda c: lineage.column_lineage(c, uri))

    def run_lineage(self, run_id: str) -> list[dict[str, Any]]:
        """The run's lineage records: {"run_id", "stage_id", "inputs", "outputs", "sql", ...}."""
        return self._tx.read(lambda c: lineage.run_lineage(c, run_id))

    # -- retention ------------------------------------------------------------------------

    def delete_run(self, run_id: str) -> bool:
        """Delete a run with its stage runs and lineage; committed partitions stay listed."""
        return self._tx.write(lambda c: runs.delete_run(c, run_id))

    def runs_older_than(self, timestamp: Timestamp) -> list[str]:
        """Ids of runs last active (finished, else started) before `timestamp`, oldest first."""
        cutoff = to_datetime(timestamp, "timestamp")
        if cutoff is None:
            raise PondConfigError("runs_older_than needs a timestamp")
        return self._tx.read(lambda c: runs.runs_older_than(c, cutoff))


def _reopen(url: str, echo: bool) -> Catalog:
    return Catalog(url, echo=echo)


def _name(value: Any, what: str, longest: int = 255) -> None:
    # Checked here so SQLite (which ignores column lengths) fails like PostgreSQL would.
    if not isinstance(value, str) or not value.strip() or len(value) > longest:
        raise PondConfigError(
            f"{what} must be a non-empty string of at most {longest} characters, not {value!r}"
        )


def _final(status: str) -> None:
    if status not in FINAL_STATES:
        raise PondConfigError(f"status must be one of {FINAL_STATES}, not {status!r}")
