"""What a dataset contains, as pond readers see it: commit records merged into a manifest.

Every commit writes one immutable record, `_pond_log/<key>.json` (a unique name, so two
writers never overwrite each other), and then refreshes `_pond_manifest.json`, a snapshot of
the merged records. Records merge order-independently (last writer wins per partition, by
key): a file from record R is live unless a record with a larger key replaced R's partition
or the whole dataset. So a reader that takes the manifest plus any records it does not yet
cover sees every commit, whatever order concurrent writers landed in, and no lock is needed
on any backend (S3 has no atomic create-if-absent that pyarrow or DuckDB can issue).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pond_core.errors import PondTransientError
from pond_core.io.fs import FileInfo, FileSystem, basename_of, join_path, visible
from pond_core.specs.hash_layout import HashLayout

MANIFEST_NAME = "_pond_manifest.json"
LOG_DIR = "_pond_log"
PENDING_SUFFIX = ".pending"
PRUNE_AFTER_SECONDS = 3600.0


def new_record_key(job_tag: str) -> str:
    return f"{time.time_ns():020d}-{job_tag}"


@dataclass
class DatasetState:
    """The live files of a dataset (paths relative to its root) and who replaced what."""

    partition_by: list[str] | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    reset_key: str = ""
    replaced: dict[str, str] = field(default_factory=dict)
    covered: list[str] = field(default_factory=list)
    # The hash partitioning the last whole-dataset commit recorded (specs/hash_layout.py), and
    # the key of the latest commit that set or dropped it: a later commit of other files
    # (append, overwrite_partitions) drops it, whatever order the records are merged in.
    hash_layout: dict[str, Any] | None = None
    layout_key: str = ""

    def apply(self, record: dict[str, Any]) -> None:
        key = record["key"]
        if key in self.covered:
            return
        self.covered.append(key)
        if record.get("partition_by") is not None:
            self.partition_by = record["partition_by"]
        replaces = record.get("replaces", [])
        if replaces == "all" and key > self.reset_key:
            self.reset_key = key
        elif isinstance(replaces, list):
            for part in replaces:
                if key > self.replaced.get(part, ""):
                    self.replaced[part] = key
        self._apply_layout(record, key)
        for f in record.get("files", []):
            # The same relative path can be rewritten by a later commit: the larger key wins.
            if key >= self.files.get(f["path"], {}).get("key", ""):
                self.files[f["path"]] = {**f, "key": key}
        self.files = {p: f for p, f in self.files.items() if self._live(f)}

    def _apply_layout(self, record: dict[str, Any], key: str) -> None:
        if record.get("replaces") == "all" and key >= self.layout_key:
            self.hash_layout, self.layout_key = record.get("hash_layout"), key
        elif record.get("files") and key > self.layout_key:
            self.hash_layout, self.layout_key = None, key

    def _live(self, f: dict[str, Any]) -> bool:
        return f["key"] >= self.reset_key and f["key"] >= self.replaced.get(f.get("partition", ""), "")

    def sorted_files(self) -> list[dict[str, Any]]:
        return [self.files[p] for p in sorted(self.files)]

    def to_manifest(self) -> dict[str, Any]:
        files = self.sorted_files()
        return {
            "pond_manifest": 1,
            "partition_by": self.partition_by,
            "files": files,
            "rows": sum(int(f.get("rows") or 0) for f in files),
            "bytes": sum(int(f.get("bytes") or 0) for f in files),
            "partitions": sorted({f.get("partition", "") for f in files} - {""}),
            "reset_key": self.reset_key,
            "replaced": dict(sorted(self.replaced.items())),
            "covered": sorted(k for k in self.covered if _key_time(k) >= _horizon(2)),
            "hash_layout": self.hash_layout,
            "layout_key": self.layout_key,
        }

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> DatasetState:
        return cls(
            partition_by=data.get("partition_by"),
            files={f["path"]: f for f in data.get("files", [])},
            reset_key=data.get("reset_key", ""),
            replaced=dict(data.get("replaced", {})),
            covered=list(data.get("covered", [])),
            hash_layout=data.get("hash_layout"),
            layout_key=data.get("layout_key", ""),
        )


@dataclass
class LoadedState:
    state: DatasetState
    has_commits: bool
    pending: list[str]
    record_names: list[str]


def _read_manifest(fs: FileSystem, path: str, root: str, tries: int = 5) -> DatasetState:
    """The manifest, read whole. It is always replaced whole (a rename, or one S3 PUT), but an
    S3 read is a HEAD for the size and then a ranged GET: a replacement in between yields a cut
    document. Such a read is retried; one that keeps failing is reported as transient."""
    for attempt in range(tries):
        try:
            return DatasetState.from_manifest(json.loads(fs.read_bytes(path)))
        except FileNotFoundError:
            raise PondTransientError(f"the dataset at {root} was replaced while being read; retry") from None
        except json.JSONDecodeError:
            time.sleep(0.05 * (attempt + 1))
    raise PondTransientError(f"the manifest of the dataset at {root} changed on each of {tries} reads (or is corrupt); retry")


def load_state(fs: FileSystem, root: str, listing: list[FileInfo] | None = None) -> LoadedState:
    """Merge the manifest with every record it does not cover yet.

    `listing` (a recursive listing of `root`, if the caller has one) saves the lookups.
    """
    manifest_path, log_dir = join_path(root, MANIFEST_NAME), join_path(root, LOG_DIR)
    if listing is None:
        present = fs.exists(manifest_path)
        log_files = fs.list_files(log_dir, recursive=False)
    else:
        present = any(f.path == manifest_path for f in listing)
        log_files = [f for f in listing if f.path.startswith(log_dir + "/") and "/" not in f.path[len(log_dir) + 1:]]
    state = DatasetState()
    if present:
        state = _read_manifest(fs, manifest_path, root)
    has_manifest = present
    names = [basename_of(f.path) for f in log_files]
    records = sorted(n for n in names if n.endswith(".json"))
    pending = sorted(n for n in names if n.endswith(PENDING_SUFFIX))
    covered = set(state.covered)
    for name in records:
        if name[: -len(".json")] not in covered:
            try:
                state.apply(json.loads(fs.read_bytes(join_path(root, LOG_DIR, name))))
            except FileNotFoundError:
                continue  # pruned (the manifest covers it) or swapped away with an old tree
    return LoadedState(state, has_manifest or bool(records), pending, records)


def pending_files(fs: FileSystem, root: str, pending: list[str]) -> set[str]:
    """Relative paths that interrupted first commits were copying in (S3): not data yet."""
    out: set[str] = set()
    for name in pending:
        try:
            out.update(json.loads(fs.read_bytes(join_path(root, LOG_DIR, name))).get("files", []))
        except (FileNotFoundError, ValueError):
            continue  # finished (and removed) meanwhile, or unreadable: nothing to hide
    return out


def write_record(fs: FileSystem, root: str, record: dict[str, Any]) -> None:
    fs.write_bytes(join_path(root, LOG_DIR, record["key"] + ".json"), _dumps(record))


def write_manifest(fs: FileSystem, root: str, state: DatasetState) -> dict[str, Any]:
    manifest = state.to_manifest()
    fs.write_bytes(join_path(root, MANIFEST_NAME), _dumps(manifest))
    return manifest


def prune_records(fs: FileSystem, root: str, state: DatasetState, record_names: list[str]) -> None:
    """Drop records the manifest covers once they are old enough that no writer still merges
    from a snapshot without them."""
    horizon = _horizon(1)
    covered = set(state.covered)
    for name in record_names:
        key = name[: -len(".json")]
        if key in covered and _key_time(key) < horizon:
            fs.delete(join_path(root, LOG_DIR, name))


def _horizon(multiple: int) -> int:
    # Re-applying a record is harmless (merging is idempotent), so forgetting old keys is safe.
    return time.time_ns() - int(multiple * PRUNE_AFTER_SECONDS * 1e9)


def _key_time(key: str) -> int:
    try:
        return int(key.split("-", 1)[0])
    except ValueError:
        return 0


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=1, sort_keys=True).encode()


def dataset_filter(fs: FileSystem, root: str) -> Callable[[str], bool] | None:
    """For paths inside `root`: a test that keeps committed files only; None if pond never
    wrote there. Costs the manifest lookup and one log listing, not a listing of the dataset."""
    if not fs.isdir(root):
        return None
    loaded = load_state(fs, root)
    if loaded.has_commits:
        live = {join_path(root, p) for p in loaded.state.files}
        return live.__contains__
    if loaded.pending:
        debris = {join_path(root, rel) for rel in pending_files(fs, root, loaded.pending)}
        return lambda path: path not in debris
    return None


def read_dataset_files(path: str, options: Any = None, fs: FileSystem | None = None) -> list[str] | None:
    """The committed files of the pond dataset at `path`, or None if pond never committed there."""
    from pond_core.io.filesystems import get_filesystem
    from pond_core.io.fs import normalize_path

    root = normalize_path(path)
    fs = fs or get_filesystem(root, options)
    listing = fs.list_files(root)
    return committed_files(fs, root, listing) if listing else None


def committed_files(fs: FileSystem, root: str, listing: list[FileInfo]) -> list[str] | None:
    """read_dataset_files for a root already listed (recursively) by the caller."""
    loaded = load_state(fs, root, listing)
    if loaded.has_commits:
        return [join_path(root, f["path"]) for f in loaded.state.sorted_files()]
    if not loaded.pending:
        return None
    # Only an interrupted first commit was here: what was there before it is the dataset.
    hidden = {join_path(root, rel) for rel in pending_files(fs, root, loaded.pending)}
    return [f.path for f in listing if visible(f.path, root) and f.path not in hidden]


@dataclass(frozen=True)
class BucketedFiles:
    """A dataset whose manifest records hash partitioning, verified: `files` in bucket order,
    the same number of files in every bucket."""

    layout: HashLayout
    files: tuple[str, ...]


def bucketed_files(path: str, options: Any = None) -> BucketedFiles | None:
    """The dataset at `path` as hash buckets, or None unless that can be trusted: a recorded
    layout this DuckDB computes the same way, and files exactly the manifest's (none added,
    removed or rewritten by hand since: the sizes match), as many in every bucket."""
    from pond_core.io.filesystems import get_filesystem
    from pond_core.io.fs import normalize_path

    root = normalize_path(path)
    fs = get_filesystem(root, options)
    listing = fs.list_files(root)
    if not listing:
        return None
    state = load_state(fs, root, listing).state
    if state.hash_layout is None or state.partition_by:
        return None
    layout = HashLayout.from_dict(state.hash_layout)
    if not layout.matches_this_engine():
        return None
    on_disk = {f.path: f.size for f in listing if visible(f.path, root)}
    recorded = {join_path(root, rel): f for rel, f in state.files.items()}
    if set(on_disk) != set(recorded) or any(on_disk[p] != f.get("bytes") for p, f in recorded.items()):
        return None
    by_bucket: dict[Any, list[str]] = {}
    for p, f in sorted(recorded.items()):
        by_bucket.setdefault(f.get("bucket"), []).append(p)
    # Readers split a file list into n contiguous groups of equal size (execute/inputs.py
    # even_groups): with as many files in every bucket, group k is exactly bucket k.
    counts = {len(files) for files in by_bucket.values()}
    if set(by_bucket) != set(range(layout.npartitions)) or len(counts) != 1:
        return None
    return BucketedFiles(layout, tuple(p for k in range(layout.npartitions) for p in by_bucket[k]))
