"""Where a run keeps its stage outputs, and the records that say what is committed.

Layout under a run's root (`<data_root>/jobs/<run_id>/staging/`):

    <stage_id>/p00003-a1-<token>.parquet      a task attempt's output (files kind)
    <stage_id>/p00003-a1-<token>/__pond_bucket=K/data_0.parquet   (exchange kind)
    <stage_id>/_tasks/p00003.json             the attempt that won partition 3
    <stage_id>/_running/p00003-a1.json        the node a long-running attempt runs on (Ray)
    <stage_id>/_inputs.json                   what the partitions committed so far read (InputKey)
    <stage_id>/_manifest.json                 the stage is committed

Readers trust only `_manifest.json` and `_tasks/*.json`, which are written atomically after the
files they list, so an attempt that died half-way is never read; its files are swept on commit.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from pond_core.execute.input_key import InputKey
from pond_core.execute.results import CommittedPartition, StageManifest
from pond_core.io.filesystems import get_filesystem
from pond_core.io.fs import FileSystem, join_path
from pond_core.io.options import StorageOptions
from pond_core.layout import RunLayout

MANIFEST = "_manifest.json"
INPUTS = "_inputs.json"
TASKS = "_tasks"
RUNNING = "_running"


class StageStore:
    def __init__(self, fs: FileSystem, staging_root: str) -> None:
        self.fs = fs
        self.root = staging_root

    @classmethod
    def of(cls, layout: RunLayout, storage: StorageOptions | None) -> StageStore:
        return cls(get_filesystem(layout.staging, storage), layout.staging)

    def stage_dir(self, stage_id: str) -> str:
        return join_path(self.root, stage_id)

    def attempt_path(self, stage_id: str, partition: int, attempt: int, suffix: str = "") -> str:
        token = uuid.uuid4().hex[:8]
        return join_path(self.stage_dir(stage_id), f"p{partition:05d}-a{attempt}-{token}{suffix}")

    def manifest(self, stage_id: str) -> StageManifest | None:
        data = self._read_json(join_path(self.stage_dir(stage_id), MANIFEST))
        return None if data is None else StageManifest.from_dict(data)

    def broken_files(self, manifest: StageManifest) -> list[str]:
        """The files of a committed manifest, under this run's staging, that are missing or of
        another size (another driver's clean-up, a hand-deleted folder): such a manifest is
        not trusted and its stage runs again. Files outside staging (a sink's dataset) are
        governed by the dataset's own manifest, which a later write may rightly replace."""
        prefix = self.root.rstrip("/") + "/"
        ours = [f for f in manifest.files if f.path.startswith(prefix)]
        if not ours:
            return []
        sizes = {info.path: info.size for info in self.fs.list_files(self.stage_dir(manifest.stage_id), recursive=True)}
        for f in ours:
            if f.path not in sizes and not f.path.startswith(self.stage_dir(manifest.stage_id) + "/") and self.fs.exists(f.path):
                sizes[f.path] = f.bytes  # another stage's folder (a reference): present is enough
        return [f.path for f in ours if sizes.get(f.path) != f.bytes]

    def write_manifest(self, manifest: StageManifest) -> None:
        self._write_json(join_path(self.stage_dir(manifest.stage_id), MANIFEST), manifest.to_dict())

    def task_record(self, stage_id: str, partition: int) -> CommittedPartition | None:
        data = self._read_json(self._task_path(stage_id, partition))
        if data is None:
            return None
        record = CommittedPartition.from_dict(data)
        # A record whose files were cleaned away is not a commit any more.
        if all(self.fs.exists(f.path) for f in record.files):
            return record
        return None

    def task_records(self, stage_id: str, npartitions: int) -> dict[int, CommittedPartition]:
        """The committed partitions of a stage of `npartitions`, from one listing of `_tasks/`
        (not one look-up per partition: a fresh 10,000-partition stage costs one directory read)."""
        found = {}
        for info in self.fs.list_files(join_path(self.stage_dir(stage_id), TASKS)):
            name = info.path.rsplit("/", 1)[-1]
            if not (name.startswith("p") and name.endswith(".json") and name[1:-5].isdigit()):
                continue  # a temporary file of a write in flight, or a stranger
            partition = int(name[1:-5])
            if partition < npartitions and (record := self.task_record(stage_id, partition)) is not None:
                found[partition] = record
        return found

    def running_path(self, stage_id: str, partition: int, attempt: int) -> str:
        return join_path(self.stage_dir(stage_id), RUNNING, f"p{partition:05d}-a{attempt}.json")

    def running_node(self, stage_id: str, partition: int, attempt: int) -> str | None:
        """The node a running attempt said it runs on, or None if it has not said (yet)."""
        record = self._read_json(self.running_path(stage_id, partition, attempt))
        return record.get("node") if record else None

    def commit_task(self, stage_id: str, record: CommittedPartition) -> None:
        # Not fsynced: losing a task record to a power cut only runs that partition again (the
        # stage manifest, which readers trust, is durable).
        self._write_json(self._task_path(stage_id, record.partition), record.to_dict(), durable=False)

    @contextlib.contextmanager
    def task_committer(self, stage_id: str) -> Iterator[Callable[[CommittedPartition], None]]:
        """`commit(record)` for a stage's tasks, written by a thread of its own: a record costs
        the file system a file creation (milliseconds on some disks), which the driver's
        settling of the next tasks need not wait for. Every record is written when the block
        ends (before the stage's manifest can be); a driver killed before that loses only the
        records not yet written, whose partitions run again. A failed write ends the stage."""
        pending: queue.SimpleQueue[CommittedPartition | None] = queue.SimpleQueue()
        failed: list[BaseException] = []

        def write() -> None:
            while (record := pending.get()) is not None:
                if not failed:
                    try:
                        self.commit_task(stage_id, record)
                    except BaseException as exc:
                        failed.append(exc)

        writer = threading.Thread(target=write, name="pond-task-records", daemon=True)
        writer.start()

        def commit(record: CommittedPartition) -> None:
            if failed:
                raise failed[0]
            pending.put(record)

        try:
            yield commit
        finally:
            pending.put(None)
            writer.join()
        if failed:
            raise failed[0]

    def prepare(self, stage_id: str, inputs: InputKey) -> None:
        """Make the stage's folder for a run over `inputs`. Partitions an earlier attempt
        committed over other inputs (a source changed between a kill and the resume) are
        dropped: only work over these inputs may be resumed."""
        path = join_path(self.stage_dir(stage_id), INPUTS)
        recorded = self._read_json(path)
        if recorded is not None and InputKey.from_dict(recorded).changed(inputs):
            self.forget(stage_id)
        self.fs.makedirs(self.stage_dir(stage_id))
        if recorded is None or InputKey.from_dict(recorded).changed(inputs):
            self._write_json(path, inputs.to_dict())

    def sweep(self, stage_id: str, keep: set[str]) -> None:
        """Delete attempt outputs that lost (failed, duplicated or superseded), and running records."""
        stage_dir = self.stage_dir(stage_id)
        for info in self.fs.list_files(stage_dir, recursive=True):
            name = info.path[len(stage_dir) + 1 :]
            if name.startswith((MANIFEST, TASKS)) or info.path in keep:
                continue
            self.fs.delete(info.path)

    def forget(self, stage_id: str) -> None:
        self.fs.delete(self.stage_dir(stage_id), recursive=True)

    def _task_path(self, stage_id: str, partition: int) -> str:
        return join_path(self.stage_dir(stage_id), TASKS, f"p{partition:05d}.json")

    def _read_json(self, path: str) -> dict[str, Any] | None:
        if not self.fs.exists(path):
            return None
        return json.loads(self.fs.read_bytes(path))

    def _write_json(self, path: str, data: dict[str, Any], durable: bool = True) -> None:
        self.fs.write_bytes(path, json.dumps(data, sort_keys=True, default=str).encode(), durable=durable)
