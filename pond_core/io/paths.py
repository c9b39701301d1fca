"""Turn what a user wrote (paths, directories, globs; local or s3://) into a list of files."""

from __future__ import annotations

from pond_core.errors import PondInputError
from pond_core.io.filesystems import get_filesystem
from pond_core.io.fs import FileInfo, FileSystem, check_path_length, has_glob, is_s3, normalize_path, visible
from pond_core.io.manifest import committed_files, dataset_filter
from pond_core.io.options import StorageOptions


def glob_root(pattern: str) -> str:
    """The literal directory part of a glob, before the first component with a wildcard."""
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        if has_glob(part):
            return "/".join(parts[:i])
    return "/".join(parts[:-1])


def resolve_paths(
    paths: str | list[str], recursive: bool = True, options: StorageOptions | None = None
) -> list[str]:
    """The files named by `paths`, in order, each listed once.

    A directory that holds a committed pond dataset yields exactly its manifest's files;
    any other directory yields its visible files (recursively if asked). Hidden names
    (`_...`, `.`...) are skipped, so staging areas, logs and markers are never read.
    """
    return [f.path for f in resolve_files(paths, recursive, options)]


def resolve_files(
    paths: str | list[str], recursive: bool = True, options: StorageOptions | None = None
) -> list[FileInfo]:
    """resolve_paths with each file's size and modification time, from the same listing."""
    items = [paths] if isinstance(paths, str) else list(paths)
    if not items:
        raise PondInputError("no input paths given")
    out: list[FileInfo] = []
    seen: set[str] = set()
    for item in items:
        for info in _resolve_one(normalize_path(item), recursive, options):
            if is_s3(info.path) and "?" in info.path:
                raise PondInputError(f"cannot read {info.path}: DuckDB's S3 client reads '?' in a key as a query string; rename the object")
            if info.path not in seen:
                seen.add(info.path)
                out.append(info)
    return out


def _resolve_one(path: str, recursive: bool, options: StorageOptions | None) -> list[FileInfo]:
    fs = get_filesystem(path, options)
    check_path_length(path, "input path", error=PondInputError)
    # One recursive listing tells a file from a directory and holds the dataset's metadata. A
    # path with glob characters is a pattern only when nothing exists under its literal spelling:
    # paths are data (a dataset may be named `ds[x]`), so what exists is read as it is named.
    listing = fs.list_files(path, recursive=True)
    if not listing and has_glob(_key_part(path)):
        root = glob_root(path)
        found = [f for f in fs.glob_files(path) if visible(f.path, root)]
        if not found:
            _check_bucket(fs, path)
            raise PondInputError(f"no files match {path}")
        return _committed_only(fs, root, found, root_resolved=False)
    if len(listing) == 1 and listing[0].path == path:
        return listing
    if listing:
        return _committed_only(fs, path, _resolve_dir(fs, path, recursive, listing), root_resolved=True)
    if fs.isdir(path):
        raise PondInputError(f"no files in directory {path}")
    _check_bucket(fs, path)
    raise PondInputError(f"path not found: {path}")


def _resolve_dir(fs: FileSystem, path: str, recursive: bool, listing: list[FileInfo]) -> list[FileInfo]:
    committed = committed_files(fs, path, listing)
    if committed is not None:
        by_path = {f.path: f for f in listing}
        # A manifest names only files it committed, which the listing holds (else: gone, size -1).
        return [by_path.get(p, FileInfo(p, -1)) for p in committed]
    files = [f for f in listing if visible(f.path, path) and (recursive or "/" not in f.path[len(path) + 1:])]
    if not files:
        how = "" if recursive else " (non-recursive; subdirectories were not searched)"
        raise PondInputError(f"no files in directory {path}{how}")
    return files


def _committed_only(fs: FileSystem, root: str, files: list[FileInfo], root_resolved: bool) -> list[FileInfo]:
    """Inside a committed dataset (a glob over it, or a directory below its `k=v/` folders),
    keep only committed files, so debris of an interrupted writer is never read."""
    parts = root.rstrip("/").split("/")
    depth = 0
    while depth < len(parts) - 1 and "=" in parts[-1 - depth]:
        depth += 1
    if depth == 0 and root_resolved:
        return files  # the directory itself was already resolved through its manifest
    keep = dataset_filter(fs, "/".join(parts[: len(parts) - depth]))
    return files if keep is None else [f for f in files if keep(f.path)]


def _key_part(path: str) -> str:
    # The bucket name cannot be a glob; only look for wildcards after it.
    return path.split("/", 3)[-1] if is_s3(path) else path


def _check_bucket(fs: FileSystem, path: str) -> None:
    """A missing bucket is a storage problem, not a missing input: say which."""
    check = getattr(fs, "check_bucket", None)
    if check is not None:
        check(path)
