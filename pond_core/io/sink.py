"""Writing a dataset: tasks COPY into a hidden staging area, one commit publishes atomically.

Lifecycle (docs/storage.md has the per-backend guarantees):
  prepare()         check the mode against what exists, before any task runs; create staging
  copy_statement()  the DuckDB COPY each task runs into its own attempt directory
  commit(outputs)   move the winning attempts' files into place, then the commit record
  abort()           drop staging; the dataset is untouched
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any

from pond_core.errors import PondConfigError, PondDataError, PondError, PondStorageError
from pond_core.io import crashpoints, publish_local, publish_s3, swap
from pond_core.io import manifest as mf
from pond_core.io.filesystems import get_filesystem
from pond_core.io.fs import basename_of, check_path_length, fsync_dir, is_s3, join_path, normalize_path, parent_of, shorten, visible
from pond_core.io.hive import parse_partition_dir, partition_check_sql, validate_partition_value
from pond_core.io.options import StorageOptions
from pond_core.io.written import PartitionFiles, SinkCommit, WrittenFile
from pond_core.specs.sink import NO_ROTATION, S3_STAGING, SinkSpec, job_tag
from pond_core.sql_quote import quote_ident, quote_str


class SinkWriter:
    """Writes one dataset for one job. Not thread-safe; one instance per job and target."""

    def __init__(self, spec: SinkSpec, job_id: str, options: StorageOptions | None = None) -> None:
        self.spec = spec
        self.job_id = str(job_id)
        self.options = options
        self.root = normalize_path(spec.path)
        self.fs = get_filesystem(self.root, options)
        self.on_s3 = is_s3(self.root)
        self.tag = job_tag(self.job_id)
        self.staging = staging_path(self.root, self.tag)
        self._prepared = False
        self._done: SinkCommit | None = None

    # --- prepare ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Fail now, before any task runs, if the mode forbids this write; create staging."""
        self._check_target()
        loaded = self._load()
        self._done = self._prior_result(loaded)
        if self._done is None:
            self._check_mode(loaded)
        # Staging even when this job already committed: a run killed between this commit and
        # its stage manifest runs its tasks again, and they need somewhere to write (commit()
        # then keeps the earlier result and drops what they wrote).
        self._make_staging()
        self._prepared = True

    def _check_target(self) -> None:
        check_sink_path(self.root, self.tag)
        if self.on_s3:
            from pond_core.io.s3 import S3FileSystem

            assert isinstance(self.fs, S3FileSystem)
            self.fs.check_bucket(self.root)
            if not self.root.split("://", 1)[1].strip("/").count("/"):
                raise PondConfigError(f"write to a prefix inside the bucket, not the bucket root: {self.root}")
            return
        parent = parent_of(self.root)
        self._finish_interrupted_swaps(parent)
        if self.root == parent:
            raise PondConfigError("cannot write a dataset at the filesystem root")
        if os.path.isfile(self.root):
            raise PondConfigError(f"{self.root} is a file; a dataset needs a directory")
        os.makedirs(parent, exist_ok=True)
        if os.path.isdir(self.root) and os.stat(self.root).st_dev != os.stat(parent).st_dev:
            raise PondConfigError(
                f"{self.root} is a mount point: pond stages next to the dataset and renames it into "
                "place, which cannot cross mounts; write to a directory inside it"
            )

    def _finish_interrupted_swaps(self, parent: str) -> None:
        """A writer killed between the two renames of a fallback swap left the dataset (or one
        partition of it) absent and its complete replacement in staging: put it in place
        before anything else looks."""
        if not os.path.isdir(parent):
            return
        prefix = f".{basename_of(self.root)}.pond-staging-"
        for name in sorted(os.listdir(parent)):
            if name.startswith(prefix):
                swap.finish_interrupted_swap(os.path.join(parent, name))

    def _load(self) -> mf.LoadedState | None:
        return mf.load_state(self.fs, self.root) if self.fs.isdir(self.root) else None

    def _visible_files(self, loaded: mf.LoadedState | None = None) -> list[str]:
        """Data files under the root, without the debris of interrupted first commits."""
        hidden: set[str] = set()
        if loaded is not None and loaded.pending and not loaded.has_commits:
            hidden = {join_path(self.root, r) for r in mf.pending_files(self.fs, self.root, loaded.pending)}
        return [f.path for f in self.fs.list_files(self.root) if visible(f.path, self.root) and f.path not in hidden]

    def _nonempty(self, loaded: mf.LoadedState | None) -> bool:
        if loaded is None:
            return False
        if not self.on_s3:
            return bool(os.listdir(self.root))  # staging is a sibling: anything inside is someone's
        return bool(loaded.state.files) or bool(self._visible_files(loaded))

    def _check_mode(self, loaded: mf.LoadedState | None) -> None:
        if loaded is None:
            return
        if self.spec.mode == "error" and self._nonempty(loaded):
            raise PondConfigError(
                f"{self.root} already exists and is not empty (mode='error'); use mode='overwrite', "
                "'overwrite_partitions' or 'append'"
            )
        old = loaded.state.partition_by
        if self.spec.mode in ("append", "overwrite_partitions") and loaded.has_commits and old != self.spec.partition_by:
            raise PondConfigError(
                f"{self.root} is partitioned by {old or 'nothing'}, not {self.spec.partition_by or 'nothing'}; "
                f"mode={self.spec.mode!r} must keep the layout (use mode='overwrite' to change it)"
            )

    def _make_staging(self) -> None:
        # A rerun of the same job keeps its staging: finished tasks' files live there.
        self.fs.makedirs(join_path(self.staging, "tasks"))
        if not self.on_s3:
            parent = parent_of(self.root)
            if os.stat(self.staging).st_dev != os.stat(parent).st_dev:
                raise PondStorageError(f"staging {self.staging} is not on the same mount as {self.root}")
        info = {"job_id": self.job_id, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        # On S3 this is also the earliest proof that we may write here.
        self.fs.write_bytes(join_path(self.staging, "_pond_job.json"), json.dumps(info).encode())

    def _prior_result(self, loaded: mf.LoadedState | None) -> SinkCommit | None:
        """The result of an earlier run of this same job that already committed (idempotence)."""
        if loaded is None:
            return None
        mine = [k for k in loaded.state.covered if k.split("-", 1)[-1] == self.tag]
        files = [f for f in loaded.state.sorted_files() if f["key"].split("-", 1)[-1] == self.tag]
        if not mine and not files:
            return None
        return self._result(files)

    @property
    def already_committed(self) -> bool:
        """An earlier run of this same job committed (prepare() found it)."""
        return self._done is not None

    # --- the tasks' statement -----------------------------------------------------------------
    def base_name(self, partition: int) -> str:
        """part-00003 for a new dataset; part-<job>-00003 when old files may exist, so a new
        file never takes an old file's name and a reader of the previous manifest either
        finds the old bytes or fails loudly, but never reads new bytes by mistake."""
        middle = f"-{self.tag}" if self.spec.mode != "error" else ""
        return f"{self.spec.file_prefix}{middle}-{partition:05d}"

    def copy_statement(self, select_sql: str, partition: int, attempt: str) -> str:
        """The COPY a task runs to write its partition into its own attempt directory."""
        safe_attempt = re.sub(r"[^A-Za-z0-9_]", "_", str(attempt))[:32]
        dest = join_path(self.staging, "tasks", f"p{partition:05d}-{safe_attempt}-{uuid.uuid4().hex[:8]}")
        spec = self.spec
        opts = ["FORMAT parquet", f"COMPRESSION {spec.compression}"]
        if spec.compression_level is not None:
            opts.append(f"COMPRESSION_LEVEL {int(spec.compression_level)}")
        if spec.row_group_size:
            opts.append(f"ROW_GROUP_SIZE {spec.row_group_size}")
        source = select_sql
        if spec.partition_by:
            cols = [quote_ident(c) for c in spec.partition_by]
            checks = " AND ".join(partition_check_sql(q, c) for q, c in zip(cols, spec.partition_by))
            source = f"SELECT * FROM ({select_sql}) AS _pond_sink WHERE {checks}"
            opts.append(f"PARTITION_BY ({', '.join(cols)})")
            if spec.write_partition_columns:
                opts.append("WRITE_PARTITION_COLUMNS true")
        else:
            # DuckDB cannot rotate files and partition at once, so target_file_size applies here.
            opts.append(f"FILE_SIZE_BYTES {spec.target_file_size or NO_ROTATION}")
        opts += [f"FILENAME_PATTERN {quote_str(self.base_name(partition) + '-{i}')}", "RETURN_STATS true"]
        return f"COPY ({source}) TO {quote_str(dest)} ({', '.join(opts)})"

    def run_copy(self, con: Any, select_sql: str, partition: int, attempt: str = "a1") -> PartitionFiles:
        """Run copy_statement on `con` and return the task output that commit() expects."""
        try:
            cursor = con.execute(self.copy_statement(select_sql, partition, attempt))
        except Exception as exc:
            mapped = self.describe_copy_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return PartitionFiles(partition, written_files(cursor))

    def describe_copy_error(self, exc: BaseException) -> PondError | None:
        """A clear pond error for a COPY failure this sink caused (bad partition value, missing
        partition column); None for anything else, which the caller reports as it would."""
        text = str(exc)
        if "invalid partition key value" in text:
            detail = text.split("pond: ", 1)[-1].split("\n", 1)[0]
            return PondDataError(f"cannot write {self.root}: {detail}")
        for column in self.spec.partition_by or []:
            quoted = quote_ident(column)
            if "Binder Error" in text and f"column {quoted} not found" in text:
                found = re.search(r"Candidate bindings: (.*)", text)
                hint = f" (the data has: {found.group(1).strip()})" if found else ""
                return PondConfigError(
                    f"partition_by column {column!r} is not a column of the data written to {self.root}{hint}"
                )
        return None

    # --- commit -------------------------------------------------------------------------------
    def commit(self, task_outputs: list[PartitionFiles]) -> SinkCommit:
        """Publish the tasks' files atomically per the mode; returns what was committed."""
        if not self._prepared:
            raise PondConfigError("SinkWriter.commit() called before prepare()")
        if self._done is not None:
            if self.spec.mode in ("overwrite", "overwrite_partitions"):
                self._sweep_replaced()
            self.fs.delete(self.staging, recursive=True)
            return self._done
        staged = self._staged_files(task_outputs)
        key = mf.new_record_key(self.tag)
        try:
            if self.on_s3:
                self._publish_s3(staged, key)
            else:
                key = self._publish_local(staged, key)
                fsync_dir(parent_of(self.root))  # the renames above are durable from here on
        except BaseException:
            self.abort()
            raise
        self.fs.delete(self.staging, recursive=True)
        entries = [{"path": rel, "rows": rows, "bytes": size, "partition": _dir(rel), "key": key} for _, rel, rows, size in staged]
        self._done = self._result(entries)
        return self._done

    def _sweep_replaced(self) -> None:
        """This job committed before a kill: finish deleting what its commit replaced (old
        files, or a killed attempt's copies), so plain glob readers see only the new data."""
        loaded = self._load()
        if loaded is None:
            return
        mine = {_dir(f["path"]) for f in loaded.state.sorted_files() if f["key"].split("-", 1)[-1] == self.tag}
        if not mine:
            return
        prefix = self.root.rstrip("/") + "/"
        stale = []
        for path in self._visible_files(loaded):
            rel = path[len(prefix):]
            if rel not in loaded.state.files and (self.spec.mode == "overwrite" or _dir(rel) in mine):
                stale.append(path)
        if self.on_s3:
            publish_s3.delete_objects(self.fs, stale)
        else:
            for path in stale:
                self.fs.delete(path)

    def abort(self) -> None:
        """Remove staging. The dataset keeps its previous contents."""
        self.fs.delete(self.staging, recursive=True)

    def _staged_files(self, task_outputs: list[PartitionFiles]) -> list[tuple[str, str, int, int]]:
        tasks_dir = join_path(self.staging, "tasks") + "/"
        out = []
        for output in sorted(task_outputs, key=lambda o: o.partition):
            for f in output.files:
                path = normalize_path(f.path)
                if not path.startswith(tasks_dir):
                    raise PondConfigError(f"task file {path} is not in this job's staging area {tasks_dir}")
                rel = path[len(tasks_dir):].split("/", 1)[1]
                self._check_rel(rel, f.partition_keys)
                out.append((path, rel, f.rows, f.bytes))
        names = [rel for _, rel, _, _ in out]
        if len(set(names)) != len(names):
            raise PondConfigError("two task outputs would publish the same file name; was a partition reported twice?")
        return out

    def _check_rel(self, rel: str, keys: Mapping[str, str] | None) -> None:
        parsed = parse_partition_dir(_dir(rel))
        expected = self.spec.partition_by or []
        if parsed is None or [k for k, _ in parsed] != expected or ".." in rel.split("/"):
            raise PondConfigError(f"unexpected file layout {rel!r} for partition_by={expected}")
        for column, value in (keys or {}).items():
            validate_partition_value(value, column)

    def _baseline(self, loaded: mf.LoadedState | None, replaced: set[str], listing: list[str]) -> list[dict[str, Any]]:
        """Files already in a dataset pond never committed to: adopt them so they stay visible."""
        if loaded is None or loaded.has_commits:
            return []
        out = []
        for path in listing:
            rel = path[len(self.root) + 1:]
            if _dir(rel) not in replaced:
                out.append({"path": rel, "rows": None, "bytes": None, "partition": _dir(rel)})
        return out

    def _record(self, key: str, staged: list, replaces: Any, baseline: list[dict[str, Any]]) -> dict[str, Any]:
        files = [{"path": rel, "rows": rows, "bytes": size, "partition": _dir(rel)} for _, rel, rows, size in staged]
        return {
            "key": key,
            "job_id": self.job_id,
            "mode": self.spec.mode,
            "partition_by": self.spec.partition_by,
            "replaces": replaces,
            "files": baseline + files,
            "committed_at": time.time(),
        }

    def _replaces(self, staged: list) -> Any:
        if self.spec.mode in ("error", "overwrite"):
            return "all"
        if self.spec.mode == "overwrite_partitions":
            return sorted({_dir(rel) for _, rel, _, _ in staged})
        return []

    # --- backends -----------------------------------------------------------------------------
    def _publish_local(self, staged: list, key: str) -> str:
        """Publish per the mode; returns the record key the commit landed under."""
        # A fresh folder per commit attempt: what a killed attempt left never collides.
        attempt = join_path(self.staging, f"commit-{uuid.uuid4().hex[:8]}")
        new_root, trash = join_path(attempt, "new"), join_path(attempt, "trash")
        publish_local.assemble(self.fs, [(src, rel) for src, rel, _, _ in staged], new_root)
        os.makedirs(trash, exist_ok=True)
        mode = self.spec.mode
        if not os.path.isdir(self.root) or not os.listdir(self.root):
            # The record replaces what the mode replaces, not "all": a writer of other partitions
            # that found the dataset just created may commit under an earlier key than this
            # one, and its files must stay live.
            record = self._record(key, staged, self._replaces(staged), [])
            if publish_local.publish_fresh(self.fs, new_root, self.root, record, mode):
                return key
            # Another writer created the dataset meanwhile: commit into it. A new key, later than
            # the creator's, keeps record order the order of commits (an overwrite wins last).
            key = mf.new_record_key(self.tag)
            self._check_mode(self._load())
        elif mode == "error":
            raise PondConfigError(f"{self.root} already exists and is not empty (mode='error')")
        self._publish_into_existing(staged, key, new_root, trash)
        return key

    def _publish_into_existing(self, staged: list, key: str, new_root: str, trash: str) -> None:
        mode = self.spec.mode
        if mode == "overwrite":
            publish_local.publish_overwrite(self.fs, new_root, self.root, trash, self._record(key, staged, "all", []))
            return
        replaces = self._replaces(staged)
        loaded = self._load()
        baseline = self._baseline(loaded, set(replaces), self._visible_files(loaded) if loaded else [])
        record = self._record(key, staged, replaces, baseline)
        if mode == "overwrite_partitions":
            publish_local.publish_partitions(self.fs, new_root, self.root, trash, replaces, record)
        else:
            rels = [rel for _, rel, _, _ in staged]
            publish_local.publish_append(self.fs, new_root, self.root, rels, record)

    def _publish_s3(self, staged: list, key: str) -> None:
        loaded = self._load()
        before = self._visible_files(loaded) if loaded else []
        if self.spec.mode == "error" and (before or (loaded and loaded.state.files)):
            raise PondConfigError(f"{self.root} already exists and is not empty (mode='error')")
        replaces = self._replaces(staged)
        rels = [rel for _, rel, _, _ in staged]
        marker = None
        if loaded is None or not loaded.has_commits:
            marker = publish_s3.mark_pending(self.fs, self.root, key, self.job_id, rels)
        baseline = self._baseline(loaded, set(replaces) if isinstance(replaces, list) else set(), before)
        record = self._record(key, staged, replaces, [b for b in baseline if b["path"] not in set(rels)])
        try:
            publish_s3.copy_into_place(self.fs, [(src, rel) for src, rel, _, _ in staged], self.root)
            publish_s3.write_record(self.fs, self.root, record)
            crashpoints.reached("commit record written")
        except BaseException:
            # Not committed (a PUT that timed out may still have landed: look): take back what
            # was copied in; no earlier commit uses these names.
            if not self.fs.exists(join_path(self.root, mf.LOG_DIR, key + ".json")):
                copied = [join_path(self.root, rel) for rel in rels]
                publish_s3.delete_objects(self.fs, copied + ([marker] if marker else []))
            raise
        state = publish_s3.refresh_manifest(self.fs, self.root)
        crashpoints.reached("manifest written")
        for name in loaded.pending if loaded else []:
            self.fs.delete(join_path(self.root, mf.LOG_DIR, name))  # superseded by this commit
        if marker:
            self.fs.delete(marker)
        debris = publish_s3.pending_debris(self.fs, self.root, loaded)
        publish_s3.delete_objects(self.fs, publish_s3.superseded(self.root, before + debris, loaded, state, replaces))
        crashpoints.reached("replaced objects deleted")

    # --- result -------------------------------------------------------------------------------
    def _result(self, entries: list[dict[str, Any]]) -> SinkCommit:
        return SinkCommit(
            path=self.root,
            mode=self.spec.mode,
            job_id=self.job_id,
            files=tuple(join_path(self.root, e["path"]) for e in entries),
            rows=sum(int(e.get("rows") or 0) for e in entries),
            bytes=sum(int(e.get("bytes") or 0) for e in entries),
            partitions=tuple(sorted({e.get("partition", "") for e in entries} - {""})),
            manifest=join_path(self.root, mf.MANIFEST_NAME),
        )


# What a write adds below the dataset path: staging, task folders, file names (not counting
# the values of partition columns, which are checked as the data is written).
SINK_ROOM = 128
LONGEST_TAG = "x" * 24  # job_tag() is at most this long


def staging_path(root: str, tag: str) -> str:
    """Where a job stages its write: below the dataset on S3, a hidden sibling on POSIX (the
    same mount, so publishing is a rename)."""
    if is_s3(root):
        return join_path(root, S3_STAGING, tag)
    return join_path(parent_of(root), f".{basename_of(root)}.pond-staging-{tag}")


def check_sink_path(path: str, tag: str = LONGEST_TAG) -> None:
    """PondConfigError unless the storage can hold the dataset path and its staging (a sibling
    with a longer name); checked before any folder is made."""
    root = normalize_path(path)
    if is_s3(root) and "?" in root:
        raise PondConfigError(f"dataset path {shorten(root)}: an S3 key cannot hold '?' (DuckDB's S3 client reads it as a query string)")
    check_path_length(root, "dataset path", room=SINK_ROOM)
    check_path_length(staging_path(root, tag), f"dataset path {shorten(root)}: its staging folder", room=SINK_ROOM)


def written_files(cursor: Any) -> tuple[WrittenFile, ...]:
    """The files a `COPY ... RETURN_STATS true` reports, sorted by bucket and path."""
    names = [d[0] for d in cursor.description]
    files = []
    for row in cursor.fetchall():
        rec = dict(zip(names, row))
        keys = {str(k): str(v) for k, v in (rec.get("partition_keys") or {}).items()}
        bucket = keys.pop("__pond_bucket", None)
        files.append(
            WrittenFile(
                path=rec["filename"],
                rows=int(rec["count"]),
                bytes=int(rec["file_size_bytes"]),
                bucket=None if bucket is None else int(bucket),
                partition_keys=keys or None,
            )
        )
    return tuple(sorted(files, key=lambda f: (f.bucket or 0, f.path)))


def _dir(rel: str) -> str:
    return rel.rsplit("/", 1)[0] if "/" in rel else ""
