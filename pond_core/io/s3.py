"""S3 (and S3-compatible stores) through pyarrow's S3 filesystem, with errors pond can explain.

pyarrow is a core dependency and speaks to any S3-compatible endpoint with path-style
addressing, so listing, small reads/writes, server-side copies and deletes go through it.
Bulk data never flows here: DuckDB's httpfs reads and writes Parquet (see duckdb_setup.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import TypeVar

import pyarrow.fs as pafs

from pond_core.errors import PondStorageError
from pond_core.io.fs import GLOB_CHARS, FileInfo, FileSystem
from pond_core.io.options import StorageOptions
from pond_core.io.s3_delete import delete_keys

T = TypeVar("T")


def split_url(url: str) -> tuple[str, str]:
    """('bucket', 'key/part') of an s3:// URL."""
    rest = url.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key.strip("/")


def bucket_of(url: str) -> str:
    return split_url(url)[0]


@functools.lru_cache(maxsize=32)
def _cached(options: StorageOptions) -> S3FileSystem:
    return S3FileSystem(options)


def s3_filesystem(options: StorageOptions, url: str) -> S3FileSystem:
    if not options.has_credentials and not options.anonymous:
        raise PondStorageError(
            f"no S3 credentials for s3://{bucket_of(url)}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass StorageOptions(anonymous=True) "
            "for a public bucket"
        )
    return _cached(options)


class S3FileSystem(FileSystem):
    """s3:// URLs. "Directories" are key prefixes; rename is copy-then-delete, not atomic."""

    scheme = "s3"

    def __init__(self, options: StorageOptions) -> None:
        self.options = options
        kwargs = dict(
            region=options.effective_region,
            connect_timeout=options.connect_timeout,
            request_timeout=options.request_timeout,
            scheme="https" if options.effective_use_ssl else "http",
            endpoint_override=options.endpoint_host,
            force_virtual_addressing=options.effective_url_style == "vhost" and bool(options.endpoint_url),
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=options.max_attempts),
        )
        if options.anonymous:
            kwargs["anonymous"] = True
        else:
            kwargs.update(
                access_key=options.access_key_id,
                secret_key=options.secret_access_key,
                session_token=options.session_token,
            )
        self._fs = pafs.S3FileSystem(**kwargs)

    @property
    def endpoint(self) -> str:
        return self.options.endpoint_url or f"AWS S3 ({self.options.effective_region})"

    def _call(self, action: str, url: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise storage_error(exc, action, url, self.options) from None

    # --- FileSystem ------------------------------------------------------------------------
    def glob_files(self, pattern: str) -> list[FileInfo]:
        bucket, key = split_url(pattern)
        if not any(c in GLOB_CHARS for c in key):
            info = self._info(pattern)
            return [_file_info(info)] if info.type == pafs.FileType.File else []
        parts = key.split("/")
        first = next(i for i, p in enumerate(parts) if any(c in GLOB_CHARS for c in p))
        base = "/".join([bucket, *parts[:first]])
        regex = glob_regex("/".join([bucket, *parts]))
        deep = "**" in key or first < len(parts) - 1
        infos = self._list(base, recursive=deep, url=pattern)
        found = [_file_info(i) for i in infos if i.type == pafs.FileType.File and regex.fullmatch(i.path)]
        return sorted(found, key=lambda f: f.path)

    def list_files(self, prefix: str, recursive: bool = True) -> list[FileInfo]:
        # One LIST answers for a directory, the common case; only an empty answer costs a HEAD.
        bucket, key = split_url(prefix)
        infos = self._list(f"{bucket}/{key}".rstrip("/"), recursive=recursive, url=prefix)
        files = sorted((_file_info(i) for i in infos if i.type == pafs.FileType.File), key=lambda f: f.path)
        if files or not key:
            return files
        info = self._info(prefix)
        return [_file_info(info)] if info.type == pafs.FileType.File else []

    def exists(self, path: str) -> bool:
        return self._info(path).type != pafs.FileType.NotFound

    def isdir(self, path: str) -> bool:
        return self._info(path).type == pafs.FileType.Directory

    def makedirs(self, path: str) -> None:
        pass  # S3 has no directories: a prefix exists once an object is under it

    def read_bytes(self, path: str) -> bytes:
        def read() -> bytes:
            with self._fs.open_input_stream(_key(path)) as fh:
                return fh.read()

        return self._call("read", path, read)

    def write_bytes(self, path: str, data: bytes, durable: bool = True) -> None:  # a PUT is durable when it returns
        def write() -> None:
            with self._fs.open_output_stream(_key(path)) as fh:
                fh.write(data)

        # An S3 object appears whole when the upload completes, so this is atomic for readers.
        self._call("write", path, write)

    def rename(self, src: str, dst: str) -> None:
        self.link_or_copy(src, dst)
        self.delete(src, recursive=True)

    def link_or_copy(self, src: str, dst: str) -> None:
        info = self._info(src)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"cannot copy {src}: no such object")
        if info.type == pafs.FileType.File:
            self._call("copy", src, lambda: self._fs.copy_file(_key(src), _key(dst)))
            return
        for f in self.list_files(src):
            rel = f.path[len(src.rstrip("/")) + 1:]
            target = f"{dst.rstrip('/')}/{rel}"
            self._call("copy", f.path, functools.partial(self._fs.copy_file, _key(f.path), _key(target)))

    def delete(self, path: str, recursive: bool = False) -> None:
        # Exact key deletes (s3_delete), not pyarrow's, which would leave parent markers behind.
        bucket, key = split_url(path)
        keys = [key]
        if recursive:
            infos = self._list(f"{bucket}/{key}".rstrip("/"), recursive=True, url=path)
            prefix = len(bucket) + 1
            keys += [i.path[prefix:] + ("/" if i.type == pafs.FileType.Directory else "") for i in infos]
            keys.append(key + "/")  # the directory marker, if some tool wrote one
        if key:
            delete_keys(self.options, bucket, keys)

    def delete_files(self, urls: list[str]) -> None:
        """Delete these objects (missing ones are fine), a thousand per request."""
        by_bucket: dict[str, list[str]] = {}
        for url in urls:
            bucket, key = split_url(url)
            by_bucket.setdefault(bucket, []).append(key)
        for bucket, keys in by_bucket.items():
            delete_keys(self.options, bucket, keys)

    # --- bucket-level checks ---------------------------------------------------------------
    def check_bucket(self, url: str) -> None:
        """Raise PondStorageError unless the bucket of `url` exists and is reachable."""
        bucket = bucket_of(url)
        try:
            info = self._fs.get_file_info(bucket)
        except OSError as exc:
            if "ACCESS_DENIED" in str(exc):
                return  # HeadBucket may be forbidden where object access is not; let that speak
            raise storage_error(exc, "open bucket", f"s3://{bucket}", self.options) from None
        if info.type == pafs.FileType.NotFound:
            raise PondStorageError(f"bucket not found: {bucket!r} at {self.endpoint}")

    # --- helpers ---------------------------------------------------------------------------
    def _info(self, url: str) -> pafs.FileInfo:
        return self._call("stat", url, lambda: self._fs.get_file_info(_key(url)))

    def _list(self, base: str, recursive: bool, url: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(base, recursive=recursive, allow_not_found=True)
        return self._call("list", url, lambda: self._fs.get_file_info(selector))


def _key(url: str) -> str:
    bucket, key = split_url(url)
    return f"{bucket}/{key}" if key else bucket


def _url(key: str) -> str:
    return f"s3://{key}"


def _file_info(info: pafs.FileInfo) -> FileInfo:
    return FileInfo(_url(info.path), info.size, info.mtime_ns)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob: `*` and `?` stay within one path segment, `**` spans segments."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\").replace("[", "\\[")  # `[[]` matches `[`
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out))


_ERROR_KINDS = (
    ("ACCESS_DENIED", "access denied to {url} at {endpoint}: the credentials were refused or lack permission"),
    ("INVALID_ACCESS_KEY_ID", "credentials rejected by {endpoint} for {url}: unknown access key id"),
    ("SIGNATURE_DOES_NOT_MATCH", "credentials rejected by {endpoint} for {url}: the secret key does not match"),
    ("EXPIRED_TOKEN", "credentials rejected by {endpoint} for {url}: the session token has expired"),
    ("NO_SUCH_BUCKET", "bucket not found: {bucket!r} at {endpoint}"),
    ("NETWORK_CONNECTION", "cannot connect to the S3 endpoint {endpoint} (while trying to {action} {url})"),
)


def storage_error(exc: BaseException, action: str, url: str, options: StorageOptions) -> PondStorageError:
    """A PondStorageError that names the bucket and endpoint and never the credentials."""
    text = str(exc)
    endpoint = options.endpoint_url or f"AWS S3 ({options.effective_region})"
    fields = dict(url=url, bucket=bucket_of(url), endpoint=endpoint, action=action)
    for marker, template in _ERROR_KINDS:
        if marker in text:
            return PondStorageError(template.format(**fields))
    detail = scrub(text, options)
    return PondStorageError(f"S3 {action} of {url} at {endpoint} failed: {detail}")


def scrub(text: str, options: StorageOptions) -> str:
    for secret in options.secrets():
        text = text.replace(secret, "***")
    return text
