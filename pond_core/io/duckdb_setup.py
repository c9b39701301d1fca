"""Point a DuckDB connection at S3: load httpfs offline and register one scoped secret.

The duckdb wheel does not contain httpfs and `INSTALL httpfs` needs the internet, so the
extension comes from the `duckdb-extension-httpfs` package, which ships the binary built for
one DuckDB version at `duckdb_extension_httpfs/extensions/v<version>/httpfs.duckdb_extension`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from typing import Any

import duckdb

from pond_core.errors import PondConfigError, PondStorageError
from pond_core.io.fs import is_s3
from pond_core.io.options import StorageOptions
from pond_core.sql_quote import quote_str

SECRET_NAME = "pond_s3"


def httpfs_extension_path() -> str | None:
    """The httpfs binary matching the running DuckDB, from the duckdb-extension-httpfs package."""
    spec = importlib.util.find_spec("duckdb_extension_httpfs")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    path = os.path.join(root, "extensions", f"v{duckdb.__version__}", "httpfs.duckdb_extension")
    return path if os.path.isfile(path) else None


_verified: set[tuple[str, int, int]] = set()


def duckdb_connect_config(paths: Iterable[str]) -> dict[str, Any]:
    """Extra `duckdb.connect(config=...)` settings for a connection that will touch `paths`.

    DuckDB checks httpfs's signature on every load: about 100 ms of hashing 21 MB, per
    connection. For S3 work this checks the package's binary once per process (a normal,
    verifying load) and then lets task connections skip the check for that same unchanged file
    (`allow_unsigned_extensions`), so loading costs about 1 ms. Local-only work gets `{}`.
    """
    if not any(is_s3(p) for p in paths):
        return {}
    path = httpfs_extension_path()
    if path is None:
        return {}
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _verified:
        check = duckdb.connect()
        try:
            load_httpfs(check)
        finally:
            check.close()
        _verified.add(key)
    return {"allow_unsigned_extensions": True}


def load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    path = httpfs_extension_path()
    try:
        if path is not None:
            con.load_extension(path)
        else:
            con.load_extension("httpfs")  # already installed in ~/.duckdb, or built in
    except duckdb.Error as exc:
        raise PondConfigError(
            f"DuckDB {duckdb.__version__} cannot load httpfs ({exc}); install the matching "
            f"package: pip install duckdb-extension-httpfs=={duckdb.__version__}"
        ) from None


def secret_sql(options: StorageOptions) -> str:
    """CREATE SECRET text. It holds the credentials: run it, never log or raise it."""
    items = [
        "TYPE s3",
        f"REGION {quote_str(options.effective_region)}",
        f"URL_STYLE {quote_str(options.effective_url_style)}",
        f"USE_SSL {'true' if options.effective_use_ssl else 'false'}",
        "SCOPE 's3://'",
    ]
    if options.endpoint_host:
        items.append(f"ENDPOINT {quote_str(options.endpoint_host)}")
    if not options.anonymous:
        items.append(f"KEY_ID {quote_str(options.access_key_id or '')}")
        items.append(f"SECRET {quote_str(options.secret_access_key or '')}")
        if options.session_token:
            items.append(f"SESSION_TOKEN {quote_str(options.session_token)}")
    return f"CREATE OR REPLACE TEMPORARY SECRET {SECRET_NAME} ({', '.join(items)})"


def configure_duckdb(
    con: duckdb.DuckDBPyConnection, options: StorageOptions | None, paths: Iterable[str]
) -> bool:
    """Make `con` able to read and write the s3:// paths among `paths`; False when none are.

    Local-only work pays nothing: httpfs is loaded and the secret created only when needed.
    """
    s3_paths = [p for p in paths if is_s3(p)]
    if not s3_paths:
        return False
    options = options or StorageOptions.from_env()
    if not options.has_credentials and not options.anonymous:
        raise PondStorageError(
            f"no S3 credentials for s3://{_bucket_of(s3_paths[0])}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass StorageOptions(anonymous=True)"
        )
    load_httpfs(con)
    con.execute(f"SET http_retries = {max(0, options.max_attempts - 1)}")
    con.execute(f"SET http_timeout = {int(max(1, options.request_timeout))}")
    try:
        con.execute(secret_sql(options))
    except duckdb.Error as exc:
        # DuckDB may quote the statement back; the statement holds the secret.
        from pond_core.io.s3 import scrub  # pyarrow.fs: loaded only when S3 is in use

        raise PondConfigError(f"cannot configure DuckDB for S3: {scrub(str(exc), options)}") from None
    return True


def _bucket_of(url: str) -> str:
    from pond_core.io.s3 import bucket_of  # pyarrow.fs: loaded only when S3 is in use

    return bucket_of(url)


def packaged_extension_path(name: str) -> str | None:
    """The binary of DuckDB extension `name` for the running DuckDB, from its
    `duckdb-extension-<name>` package (iceberg, avro, delta), or None when not installed."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    path = os.path.join(root, "extensions", f"v{duckdb.__version__}", f"{name}.duckdb_extension")
    return path if os.path.isfile(path) else None


def load_packaged_extension(con: duckdb.DuckDBPyConnection, name: str, extra: str) -> None:
    """Load extension `name` offline from its package; `extra` is pond's extra that installs it."""
    path = packaged_extension_path(name)
    try:
        con.load_extension(path if path is not None else name)
    except duckdb.Error as exc:
        raise PondConfigError(
            f"DuckDB {duckdb.__version__} cannot load its {name} extension ({exc}); install "
            f"pip install 'pond-core[{extra}]' (duckdb-extension-{name}=={duckdb.__version__})"
        ) from None
