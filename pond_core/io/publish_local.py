"""Publishing a staged write on a POSIX filesystem (local disk, NFS, Lustre, 3FS).

Staging is a hidden sibling of the dataset, on the same mount, so every step is a rename:
a new dataset appears in one rename, an overwrite swaps the directory, overwrite_partitions
swaps each partition directory, and append renames files in. Metadata (log record, then
manifest) lands last, and for whole-directory moves it travels inside the renamed tree.

Crash safety: each commit attempt assembles its tree in a fresh folder of staging by hard
links (the tasks' files stay where the task records say they are), so a commit killed at any
point leaves nothing a resumed commit trips over; a fallback swap killed between its two
renames is rolled forward from its intent file. `crashpoints.reached` marks every step.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from pond_core.errors import PondConfigError
from pond_core.io import crashpoints, swap
from pond_core.io import manifest as mf
from pond_core.io.fs import FileSystem, visible


def assemble(fs: FileSystem, staged: list[tuple[str, str]], new_root: str) -> None:
    """Link each task's winning files (staged path, relative path) into one new tree."""
    for src, rel in staged:
        dst = os.path.join(new_root, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        try:
            os.link(src, dst)
        except OSError as exc:
            # A mount without hard links (some FUSE filesystems): move instead. A commit killed
            # after this step then re-runs the stage's tasks on resume (their files moved).
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            fs.rename(src, dst)
    os.makedirs(new_root, exist_ok=True)
    crashpoints.reached("tree assembled")


def publish_fresh(fs: FileSystem, new_root: str, root: str, record: dict[str, Any], mode: str) -> bool:
    """A target that is absent or empty: the whole dataset appears in one rename. False when
    another writer created the dataset first (the rename finds it not empty): the caller then
    commits into the dataset that now exists, as it would have if it had been there before."""
    _seal(fs, new_root, record)
    crashpoints.reached("tree sealed")
    try:
        os.rename(new_root, root)  # replaces an empty directory; refuses a non-empty one
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        if mode == "error":
            raise PondConfigError(
                f"{root} already exists and is not empty (mode='error'): another writer got there first"
            ) from None
        for name in os.listdir(new_root):  # the sealed metadata: this commit writes its own
            if not visible(os.path.join(new_root, name), new_root):
                fs.delete(os.path.join(new_root, name), recursive=True)
        return False
    return True


def publish_overwrite(fs: FileSystem, new_root: str, root: str, trash: str, record: dict[str, Any]) -> None:
    """Replace the whole dataset: one atomic exchange, or (without one) files moved in beside
    the old ones, the record, then the old files unlinked; the root is never absent."""
    _seal(fs, new_root, record)
    crashpoints.reached("tree sealed")
    if swap.exchange(new_root, root):
        crashpoints.reached("exchanged")
        os.rename(new_root, os.path.join(trash, "root"))  # `new_root` now holds the old dataset
        crashpoints.reached("old contents to trash")
        return
    old = _data_files(fs, root)
    moved = _move_in(fs, new_root, root)
    _commit_metadata(fs, root, record)
    _unlink(fs, root, [rel for rel in old if rel not in moved])


def publish_partitions(
    fs: FileSystem, new_root: str, root: str, trash: str, partitions: list[str], record: dict[str, Any]
) -> None:
    """Swap in exactly the partition directories present in the new data.

    Each new partition directory also holds hard links to the files it replaces, so until
    the commit record lands, a pond reader's current manifest still finds every old file at
    its old path, even if this writer is killed between two swaps. Once the record is
    written, those old names are unlinked. New files carry the job tag, so names never clash.
    Without an atomic exchange the new files are moved in beside the old ones instead: a
    partition directory is never absent, whatever instant the writer is killed at.
    """
    old_names: dict[str, list[str]] = {}
    for i, part in enumerate(partitions):
        new_dir, target = os.path.join(new_root, part), os.path.join(root, part)
        if not os.path.isdir(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(new_dir, target)  # a new partition appears whole
            old_names[part] = []
            crashpoints.reached(f"new partition {part} in place")
            continue
        old_names[part] = _link_existing(fs, target, new_dir)
        crashpoints.reached(f"old files of {part} linked")
        if swap.exchange(new_dir, target):
            crashpoints.reached(f"{part} exchanged")
            os.rename(new_dir, os.path.join(trash, str(i)))  # `new_dir` now holds the old files
            crashpoints.reached(f"old files of {part} to trash")
        else:
            _move_in(fs, new_dir, target, skip=set(old_names[part]))
    _commit_metadata(fs, root, record)
    for part, names in old_names.items():
        _unlink(fs, os.path.join(root, part), names)


def _data_files(fs: FileSystem, root: str) -> list[str]:
    """The visible files under `root`, relative to it (not logs, manifests or staging)."""
    return [os.path.relpath(f.path, root) for f in fs.list_files(root) if visible(f.path, root)]


def _move_in(fs: FileSystem, src_root: str, dst_root: str, skip: set[str] = frozenset()) -> set[str]:  # type: ignore[assignment]
    """Rename every visible file of `src_root` (but `skip`) to the same place under `dst_root`."""
    moved = set()
    for rel in _data_files(fs, src_root):
        if rel in skip:
            continue
        dst = os.path.join(dst_root, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(os.path.join(src_root, rel), dst)
        moved.add(rel)
        crashpoints.reached("a new file moved in")
    return moved


def _unlink(fs: FileSystem, folder: str, names: list[str]) -> None:
    for rel in names:
        fs.delete(os.path.join(folder, rel))
        crashpoints.reached("an old file unlinked")
    _remove_empty_dirs(folder)


def _remove_empty_dirs(folder: str) -> None:
    for current, dirs, files in os.walk(folder, topdown=False):
        if current != folder and not dirs and not files and visible(current, folder):
            try:
                os.rmdir(current)
            except OSError:
                pass  # another writer put something there meanwhile


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
        crashpoints.reached("a file appended")
    _commit_metadata(fs, root, record)


def _seal(fs: FileSystem, tree: str, record: dict[str, Any]) -> None:
    """Write record and manifest inside a tree that will be renamed into place whole."""
    state = mf.DatasetState()
    state.apply(record)
    mf.write_record(fs, tree, record)
    mf.write_manifest(fs, tree, state)


def _commit_metadata(fs: FileSystem, root: str, record: dict[str, Any]) -> None:
    mf.write_record(fs, root, record)
    crashpoints.reached("commit record written")
    loaded = mf.load_state(fs, root)
    mf.write_manifest(fs, root, loaded.state)
    crashpoints.reached("manifest written")
    mf.prune_records(fs, root, loaded.state, loaded.record_names)

