"""Publishing a staged write on a POSIX filesystem (local disk, NFS, Lustre, 3FS).

Staging is a hidden sibling of the dataset, on the same mount, so every step is a rename:
a new dataset appears in one rename, an overwrite swaps the directory, overwrite_partitions
swaps each partition directory, and append renames files in. Metadata (log record, then
manifest) lands last, and for whole-directory moves it travels inside the renamed tree.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from pond_core.errors import PondConfigError
from pond_core.io import manifest as mf
from pond_core.io.fs import FileSystem
from pond_core.io.swap import replace_dir


def assemble(fs: FileSystem, staged: list[tuple[str, str]], new_root: str) -> None:
    """Move each task's winning files (staged path, relative path) into one new tree."""
    for src, rel in staged:
        fs.rename(src, os.path.join(new_root, rel))
    os.makedirs(new_root, exist_ok=True)


def publish_fresh(fs: FileSystem, new_root: str, root: str, record: dict[str, Any], mode: str) -> None:
    """A target that is absent or empty: the whole dataset appears in one rename."""
    _seal(fs, new_root, record)
    try:
        os.rename(new_root, root)  # replaces an empty directory; refuses a non-empty one
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and mode == "error":
            raise PondConfigError(
                f"{root} already exists and is not empty (mode='error'): another writer got there first"
            ) from None
        raise


def publish_overwrite(fs: FileSystem, new_root: str, root: str, trash: str, record: dict[str, Any]) -> None:
    _seal(fs, new_root, record)
    replace_dir(new_root, root, os.path.join(trash, "root"), intent_dir=os.path.dirname(trash))


def publish_partitions(
    fs: FileSystem, new_root: str, root: str, trash: str, partitions: list[str], record: dict[str, Any]
) -> None:
    """Swap in exactly the partition directories present in the new data.

    Each new partition directory also holds hard links to the files it replaces, so until
    the commit record lands, a pond reader's current manifest still finds every old file at
    its old path, even if this writer is killed between two swaps. Once the record is
    written, those old names are unlinked. New files carry the job tag, so names never clash.
    """
    old_names: dict[str, list[str]] = {}
    for i, part in enumerate(partitions):
        new_dir, target = os.path.join(new_root, part), os.path.join(root, part)
        old_names[part] = _link_existing(fs, target, new_dir)
        replace_dir(new_dir, target, os.path.join(trash, str(i)))
    _commit_metadata(fs, root, record)
    for part, names in old_names.items():
        for rel in names:
            fs.delete(os.path.join(root, part, rel))


def _link_existing(fs: FileSystem, target: str, new_dir: str) -> list[str]:
    if not os.path.isdir(target):
        return []
    names = []
    for info in fs.list_files(target):
        rel = os.path.relpath(info.path, target)
        if not os.path.lexists(os.path.join(new_dir, rel)):
            fs.link_or_copy(info.path, os.path.join(new_dir, rel))
            names.append(rel)
    return names


def publish_append(fs: FileSystem, new_root: str, root: str, files: list[str], record: dict[str, Any]) -> None:
    for rel in files:
        fs.rename(os.path.join(new_root, rel), os.path.join(root, rel))
    _commit_metadata(fs, root, record)


def _seal(fs: FileSystem, tree: str, record: dict[str, Any]) -> None:
    """Write record and manifest inside a tree that will be renamed into place whole."""
    state = mf.DatasetState()
    state.apply(record)
    mf.write_record(fs, tree, record)
    mf.write_manifest(fs, tree, state)


def _commit_metadata(fs: FileSystem, root: str, record: dict[str, Any]) -> None:
    mf.write_record(fs, root, record)
    loaded = mf.load_state(fs, root)
    mf.write_manifest(fs, root, loaded.state)
    mf.prune_records(fs, root, loaded.state, loaded.record_names)
