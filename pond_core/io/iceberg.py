"""Iceberg sinks: pond writes Parquet as usual, then registers those files as one snapshot.

The tasks' files are written and published by the ordinary `SinkWriter` into a directory of
this write under the table's location (`<location>/data/pond-<job>/dt=.../part-....parquet`,
with the partition columns kept inside the files). No Iceberg reader looks there until the
snapshot that lists them is committed: one pyiceberg transaction adds the files (no rewrite,
as `add_files` does), evolves the schema when the data brings new columns, removes what the
mode replaces, and swaps the catalog's metadata pointer. That swap is the only visible step,
so a writer killed at any earlier point leaves the previous snapshot current; the files it
published are orphans that `expire_snapshots`/orphan clean-up removes.

Idempotence: the snapshot carries `pond.write-id`; a rerun of the same write that finds it
returns the recorded result instead of committing again.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from pond_core.errors import PondConfigError, PondDataError, PondStorageError, PondTransientError
from pond_core.io.fs import join_path
from pond_core.io.options import StorageOptions
from pond_core.io.sink import SinkWriter
from pond_core.io.written import PartitionFiles, SinkCommit
from pond_core.specs.iceberg_table import IcebergTable
from pond_core.specs.sink import SinkSpec, job_tag

if TYPE_CHECKING:
    import pyarrow as pa

WRITE_ID = "pond.write-id"
COMMIT_ATTEMPTS = 5


def open_catalog(table: IcebergTable, options: StorageOptions | None) -> Any:
    """The pyiceberg catalog of `table`, with pond's S3 settings for its FileIO."""
    try:
        from pyiceberg.catalog import load_catalog
    except ImportError as exc:
        raise PondConfigError(f"Iceberg tables need pyiceberg: pip install 'pond-core[iceberg]' ({exc})") from None
    props = dict(table.properties)
    props.update(_s3_properties(options))
    try:
        return load_catalog(table.catalog, **props)
    except Exception as exc:
        raise PondConfigError(f"cannot open Iceberg catalog {table.catalog!r}: {exc}") from None


def _s3_properties(options: StorageOptions | None) -> dict[str, str]:
    if options is None:
        return {}
    out: dict[str, str] = {"s3.region": options.effective_region}
    if options.endpoint_url:
        out["s3.endpoint"] = options.endpoint_url
    if options.access_key_id:
        out["s3.access-key-id"] = options.access_key_id
    if options.secret_access_key:
        out["s3.secret-access-key"] = options.secret_access_key
    if options.session_token:
        out["s3.session-token"] = options.session_token
    if options.effective_url_style == "vhost" and options.endpoint_url:
        out["s3.force-virtual-addressing"] = "true"
    return out


def load_table(catalog: Any, table: IcebergTable) -> Any | None:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return catalog.load_table(table.identifier)
    except NoSuchTableError:
        return None


def local_path(location: str) -> str:
    """pond's form of an Iceberg location: `file:///x` is `/x`; s3:// stays."""
    if location.startswith("file://"):
        return location[len("file://"):]
    if location.startswith("s3a://"):
        return "s3://" + location[len("s3a://"):]
    return location


def table_location(catalog: Any, table: IcebergTable, existing: Any | None) -> str:
    if existing is not None:
        return str(existing.location())
    catalog.create_namespace_if_not_exists(table.namespace)  # a new table's default location is its namespace's
    resolve = getattr(catalog, "_resolve_table_location", None)
    if resolve is None:
        raise PondConfigError(
            f"catalog {table.catalog!r} cannot tell where a new table goes; create {table.identifier} first"
        )
    return str(resolve(None, table.namespace, table.name))


def identity_columns(tbl: Any) -> list[str]:
    """The table's partition columns, when every partition field is an identity transform."""
    from pyiceberg.transforms import IdentityTransform

    schema = tbl.schema()
    out = []
    for field in tbl.spec().fields:
        if not isinstance(field.transform, IdentityTransform):
            raise PondConfigError(f"{tbl.name()} is partitioned by {field.transform}({field.name}); pond writes identity partitions only")
        out.append(schema.find_field(field.source_id).name)
    return out


def prior_snapshot(tbl: Any | None, write_id: str) -> Any | None:
    """The snapshot an earlier run of this same write committed, if any."""
    if tbl is None:
        return None
    for snapshot in tbl.snapshots():
        if snapshot.summary is not None and snapshot.summary.get(WRITE_ID) == write_id:
            return snapshot
    return None


class IcebergSinkWriter:
    """Writes one Iceberg table for one job: the SinkWriter's lifecycle, plus the snapshot."""

    def __init__(self, spec: SinkSpec, job_id: str, options: StorageOptions | None = None) -> None:
        assert spec.table is not None
        self.outer = spec
        self.table = spec.table
        self.job_id = str(job_id)
        self.options = options
        self._inner: SinkWriter | None = None
        self._done: SinkCommit | None = None
        self._catalog: Any = None

    # The parts of SinkWriter that a stage run uses, answered by the Parquet writer beneath.
    @property
    def inner(self) -> SinkWriter:
        if self._inner is None:
            raise PondConfigError("IcebergSinkWriter used before prepare()")
        return self._inner

    @property
    def spec(self) -> SinkSpec:
        return self.inner.spec

    @property
    def staging(self) -> str:
        return self.inner.staging

    @property
    def fs(self) -> Any:
        return self.inner.fs

    @property
    def already_committed(self) -> bool:
        return self._done is not None

    def base_name(self, partition: int) -> str:
        return self.inner.base_name(partition)

    def copy_statement(self, select_sql: str, partition: int, attempt: str) -> str:
        return self.inner.copy_statement(select_sql, partition, attempt)

    def run_copy(self, con: Any, select_sql: str, partition: int, attempt: str = "a1") -> PartitionFiles:
        return self.inner.run_copy(con, select_sql, partition, attempt)

    def describe_copy_error(self, exc: BaseException) -> Any:
        return self.inner.describe_copy_error(exc)

    # --- prepare ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check the mode against the table (before any task runs); set up the Parquet writer."""
        self._catalog = open_catalog(self.table, self.options)
        existing = load_table(self._catalog, self.table)
        prior = prior_snapshot(existing, self.job_id)
        if existing is not None and prior is None:
            self._check_mode(existing)
        data_root = join_path(local_path(table_location(self._catalog, self.table, existing)), "data", f"pond-{job_tag(self.job_id)}")
        inner_spec = dataclasses.replace(self.outer, path=data_root, mode="error", table=None, write_partition_columns=True)
        self._inner = SinkWriter(inner_spec, self.job_id, self.options)
        self._inner.prepare()
        if prior is not None:
            self._done = self._result(existing, prior, self._inner)

    def _check_mode(self, tbl: Any) -> None:
        if self.outer.mode == "error":
            raise PondConfigError(f"Iceberg table {self.table.identifier} already exists (mode='error')")
        have = identity_columns(tbl)
        want = list(self.outer.partition_by or [])
        if have != want:
            raise PondConfigError(
                f"Iceberg table {self.table.identifier} is partitioned by {have or 'nothing'}, not {want or 'nothing'}; "
                "pond does not change a table's partition spec"
            )

    # --- commit -----------------------------------------------------------------------------
    def commit(self, task_outputs: list[PartitionFiles]) -> SinkCommit:
        if self._done is not None:
            self.inner.abort()
            return self._done
        staged = [f.path for o in task_outputs for f in o.files]
        try:
            arrow_schema = _file_schema(self.inner, staged[0]) if staged else None
            existing = load_table(self._catalog, self.table)
            if existing is not None and arrow_schema is not None:
                check_schema(existing, arrow_schema, self.table.identifier)  # before anything is published
            published = self.inner.commit(task_outputs)
        except BaseException:
            self.abort()
            raise
        try:
            return self._commit_snapshot(list(published.files), arrow_schema)
        except PondDataError:
            # Refused before any commit: no snapshot will ever list this write's files.
            self.inner.fs.delete(self.inner.root, recursive=True)
            raise

    def abort(self) -> None:
        if self._inner is not None:
            self._inner.abort()

    def _commit_snapshot(self, files: list[str], arrow_schema: pa.Schema | None) -> SinkCommit:
        from pyiceberg.exceptions import CommitFailedException

        for attempt in range(COMMIT_ATTEMPTS):
            existing = load_table(self._catalog, self.table)
            prior = prior_snapshot(existing, self.job_id)
            if prior is not None:
                return self._result(existing, prior, self.inner)
            if existing is None and arrow_schema is None:
                return self._empty_result()  # nothing written and no table: nothing to commit
            try:
                snapshot_table = self._transaction(existing, files, arrow_schema)
            except CommitFailedException:
                time.sleep(0.05 * (attempt + 1))  # another writer committed first: rebase on it
                continue
            except (ValueError, TypeError, NotImplementedError) as exc:  # pyiceberg's word on the data
                raise PondDataError(f"cannot commit to Iceberg table {self.table.identifier}: {exc}; nothing was committed") from None
            current = snapshot_table.current_snapshot()
            return self._result(snapshot_table, current, self.inner)
        raise PondTransientError(f"Iceberg table {self.table.identifier}: commit kept conflicting with other writers")

    def _transaction(self, existing: Any | None, files: list[str], arrow_schema: pa.Schema | None) -> Any:
        from pyiceberg.table import TableProperties

        if existing is None:
            assert arrow_schema is not None
            self._catalog.create_namespace_if_not_exists(self.table.namespace)
            tx = self._catalog.create_table_transaction(self.table.identifier, schema=arrow_schema)
            if self.outer.partition_by:
                with tx.update_spec() as spec:
                    for column in self.outer.partition_by:
                        spec.add_identity(column)
        else:
            tx = existing.transaction()
            if arrow_schema is not None and _new_columns(existing, arrow_schema):
                with tx.update_schema() as update:
                    update.union_by_name(arrow_schema)
        if tx.table_metadata.name_mapping() is None:
            # pond's files carry no Iceberg field ids: readers resolve columns by name.
            mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
            tx.set_properties(**{TableProperties.DEFAULT_NAME_MAPPING: mapping})
        data_files = _data_files(tx, files, self.table.identifier)
        props = {WRITE_ID: self.job_id, "pond.mode": self.outer.mode}
        current = tx.table_metadata.current_snapshot()
        if self.outer.mode in ("append", "error") or current is None:
            with tx.update_snapshot(snapshot_properties=props).fast_append() as append:
                for data_file in data_files:
                    append.append_data_file(data_file)
        else:
            replaced = {f.partition for f in data_files} if self.outer.mode == "overwrite_partitions" else None
            with tx.update_snapshot(snapshot_properties=props).overwrite() as overwrite:
                for old in _live_files(tx, current):
                    if replaced is None or old.partition in replaced:
                        overwrite.delete_data_file(old)
                for data_file in data_files:
                    overwrite.append_data_file(data_file)
        return tx.commit_transaction()

    # --- result -----------------------------------------------------------------------------
    def _result(self, tbl: Any, snapshot: Any, inner: SinkWriter) -> SinkCommit:
        summary = snapshot.summary if snapshot is not None else None
        added = inner._done  # what the Parquet writer published (or had, for a rerun)
        rows = int(summary.get("added-records", 0)) if summary is not None else 0
        return SinkCommit(
            path=self.table.uri,
            mode=self.outer.mode,
            job_id=self.job_id,
            files=added.files if added is not None else (),
            rows=rows,
            bytes=int(summary.get("added-files-size", 0)) if summary is not None else 0,
            partitions=added.partitions if added is not None else (),
            manifest=str(tbl.metadata_location),
        )

    def _empty_result(self) -> SinkCommit:
        return SinkCommit(self.table.uri, self.outer.mode, self.job_id, (), 0, 0, (), "")


def _file_schema(inner: SinkWriter, path: str) -> pa.Schema:
    import pyarrow.parquet as pq

    fs = inner.fs
    try:
        return pq.read_schema(_arrow_file(fs, path))
    except OSError as exc:
        raise PondStorageError(f"cannot read the schema of {path}: {exc}") from None


def _arrow_file(fs: Any, path: str) -> Any:
    """A file object pyarrow can read: the local path, or the bytes of an S3 object."""
    if path.startswith("s3://"):
        import pyarrow as pa

        return pa.BufferReader(fs.read_bytes(path))
    return path


def _new_columns(tbl: Any, arrow_schema: pa.Schema) -> list[str]:
    have = {f.name for f in tbl.schema().fields}
    return [name for name in arrow_schema.names if name not in have]


def check_schema(tbl: Any, arrow_schema: pa.Schema, identifier: str) -> None:
    """Raise PondDataError unless the data's columns fit the table (new columns may be added;
    an existing column must keep its type or widen it the way Iceberg allows)."""
    from pyiceberg.exceptions import ResolveError
    from pyiceberg.io.pyarrow import _ConvertToIcebergWithoutIDs, visit_pyarrow
    from pyiceberg.schema import promote

    problems = []
    table_schema = tbl.schema()
    for field in arrow_schema:
        try:
            existing = table_schema.find_field(field.name)
        except ValueError:
            continue  # a new column: added as optional
        try:
            data_type: Any = visit_pyarrow(field.type, _ConvertToIcebergWithoutIDs())
        except (TypeError, ValueError) as exc:
            problems.append(f"{field.name}: {field.type} has no Iceberg type ({exc})")
            continue
        if data_type == existing.field_type:
            continue
        try:
            promote(data_type, existing.field_type)
        except ResolveError:
            problems.append(f"{field.name}: the table has {existing.field_type}, the data has {data_type}")
    if problems:
        raise PondDataError(
            f"cannot write to Iceberg table {identifier}: the data's schema does not fit the table "
            f"({'; '.join(problems)}); nothing was committed"
        )


def _data_files(tx: Any, files: list[str], identifier: str) -> list[Any]:
    from pyiceberg.table import _parquet_files_to_data_files

    try:
        return list(_parquet_files_to_data_files(tx.table_metadata, files, tx._table.io))
    except ValueError as exc:
        raise PondDataError(f"cannot add pond's files to Iceberg table {identifier}: {exc}; nothing was committed") from None


def _live_files(tx: Any, snapshot: Any) -> list[Any]:
    io = tx._table.io
    return [e.data_file for m in snapshot.manifests(io) for e in m.fetch_manifest_entry(io, discard_deleted=True)]


DatasetWriter = SinkWriter | IcebergSinkWriter


def open_writer(spec: SinkSpec, job_id: str, options: StorageOptions | None) -> DatasetWriter:
    """The writer of a sink: an Iceberg table's, or a Parquet dataset's."""
    if spec.table is not None:
        return IcebergSinkWriter(spec, job_id, options)
    return SinkWriter(spec, job_id, options)
