"""Publishing a staged write on S3, which has no rename and no atomic multi-object change.

Objects are server-side copied from the staging prefix to their final keys (names carry the
job tag whenever an old object could share the name, so nothing a current reader uses is
touched), then one PUT of the commit record switches pond readers to the new state, the
manifest is refreshed, and only then are superseded objects deleted.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pond_core.io import crashpoints
from pond_core.io import manifest as mf
from pond_core.io.fs import FileSystem, join_path

COPY_THREADS = 16


def copy_into_place(fs: FileSystem, staged: list[tuple[str, str]], root: str) -> None:
    def copy(item: tuple[str, str]) -> None:
        fs.link_or_copy(item[0], join_path(root, item[1]))
        crashpoints.reached("an object copied in")

    with ThreadPoolExecutor(max_workers=min(COPY_THREADS, max(1, len(staged)))) as pool:
        list(pool.map(copy, staged))


def mark_pending(fs: FileSystem, root: str, key: str, job_id: str, rels: list[str]) -> str:
    """Before a first commit copies objects in, name them, so readers (and later writers) can
    tell them from the data that was there before, even if this writer dies mid-copy."""
    marker = join_path(root, mf.LOG_DIR, key + mf.PENDING_SUFFIX)
    fs.write_bytes(marker, json.dumps({"job_id": job_id, "files": rels}).encode())
    return marker


def write_record(fs: FileSystem, root: str, record: dict[str, Any]) -> None:
    """The commit point: one PUT."""
    mf.write_record(fs, root, record)


def refresh_manifest(fs: FileSystem, root: str) -> mf.DatasetState:
    loaded = mf.load_state(fs, root)
    mf.write_manifest(fs, root, loaded.state)
    mf.prune_records(fs, root, loaded.state, loaded.record_names)
    return loaded.state


def delete_objects(fs: FileSystem, urls: list[str]) -> None:
    if urls:
        fs.delete_files(urls)  # type: ignore[attr-defined]  # batched DeleteObjects


def pending_debris(fs: FileSystem, root: str, loaded: mf.LoadedState | None) -> list[str]:
    """Objects earlier interrupted first commits copied in, now that this one is the first."""
    if loaded is None or loaded.has_commits or not loaded.pending:
        return []
    return [join_path(root, r) for r in mf.pending_files(fs, root, loaded.pending)]


def superseded(
    root: str, before: list[str], loaded: mf.LoadedState | None, state: mf.DatasetState, replaces: Any
) -> list[str]:
    """Objects this commit replaced and nobody references any more: only those are deleted.

    `before` was listed before this commit copied anything, so objects a concurrent writer is
    still copying in are never among them.
    """
    known = set(before) | {join_path(root, p) for p in (loaded.state.files if loaded else {})}
    out = []
    for path in sorted(known):
        rel = path[len(root) + 1:]
        folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
        in_scope = replaces == "all" or (isinstance(replaces, list) and folder in replaces)
        if in_scope and rel not in state.files:
            out.append(path)
    return out
