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

from pond_core.io import manifest as mf
from pond_core.io.fs import FileSystem, join_path

COPY_THREADS = 16


def copy_into_place(fs: FileSystem, staged: list[tuple[str, str]], root: str) -> None:
    def copy(item: tuple[str, str]) -> None:
        fs.link_or_copy(item[0], join_path(root, item[1]))

    with ThreadPoolExecutor(max_workers=min(COPY_THREADS, max(1, len(staged)))) as pool:
        list(pool.map(copy, staged))


def mark_pending(fs: FileSystem, root: str, key: str, job_id: str, rels: list[str]) -> str:
    """Before a first commit copies objects in, name them, so readers (and later writers) can
    tell them from the data that was there before, even if this writer dies mid-copy."""
    marker = join_path(root, mf.LOG_DIR, key + mf.PENDING_SUFFIX)
    fs.write_bytes(marker, json.dumps({"job_id": job_id, "files": rels}).encode())
    return marker


def commit_record(fs: FileSystem, root: str, record: dict[str, Any]) -> mf.DatasetState:
    """The atomic step: one PUT. Then refresh the manifest snapshot."""
    mf.write_record(fs, root, record)
    loaded = mf.load_state(fs, root)
    mf.write_manifest(fs, root, loaded.state)
    mf.prune_records(fs, root, loaded.state, loaded.record_names)
    return loaded.state


def delete_objects(fs: FileSystem, urls: list[str]) -> None:
    if not urls:
        return
    with ThreadPoolExecutor(max_workers=min(COPY_THREADS, len(urls))) as pool:
        list(pool.map(fs.delete, urls))
