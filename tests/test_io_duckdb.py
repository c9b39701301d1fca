"""configure_duckdb: httpfs loaded offline from its package, one S3 secret, only when needed."""

import duckdb
import pytest

from pond_core.errors import PondStorageError
from pond_core.io import StorageOptions, configure_duckdb, duckdb_connect_config
from pond_core.io.duckdb_setup import httpfs_extension_path


def loaded(con) -> bool:
    return con.execute("SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'").fetchone()[0]


def test_httpfs_binary_comes_from_the_package_for_this_duckdb():
    path = httpfs_extension_path()
    assert path is not None and f"v{duckdb.__version__}" in path and path.endswith("httpfs.duckdb_extension")


def test_local_paths_touch_nothing():
    con = duckdb.connect()
    assert configure_duckdb(con, StorageOptions(), ["/tmp/x.parquet"]) is False
    assert not loaded(con)
    assert con.execute("SELECT count(*) FROM duckdb_secrets()").fetchone()[0] == 0


def test_no_credentials_fails_before_loading(monkeypatch):
    con = duckdb.connect()
    with pytest.raises(PondStorageError, match="no S3 credentials for s3://bkt"):
        configure_duckdb(con, StorageOptions(), ["s3://bkt/x.parquet"])


@pytest.mark.s3
def test_duckdb_reads_and_writes_s3_with_redacted_secret(s3_server, s3_options):
    bucket = s3_server.new_bucket()
    con = duckdb.connect()
    assert configure_duckdb(con, s3_options, ["/local", f"s3://{bucket}/t"]) is True
    assert loaded(con)
    con.execute(f"COPY (SELECT range AS a FROM range(1000)) TO 's3://{bucket}/t/x.parquet' (FORMAT parquet)")
    assert con.execute(f"SELECT sum(a) FROM read_parquet('s3://{bucket}/t/*.parquet')").fetchone()[0] == 499500
    secrets = con.execute("SELECT secret_string FROM duckdb_secrets()").fetchall()
    assert len(secrets) == 1 and s3_options.secret_access_key not in secrets[0][0]
    # Reconfiguring (a task reusing a connection) replaces the secret instead of failing.
    configure_duckdb(con, s3_options, [f"s3://{bucket}/t"])
    assert con.execute("SELECT count(*) FROM duckdb_secrets()").fetchone()[0] == 1


def test_connect_config_skips_the_repeated_signature_check_only_for_s3():
    assert duckdb_connect_config(["/tmp/x.parquet"]) == {}
    config = duckdb_connect_config(["s3://b/x.parquet"])
    assert config == {"allow_unsigned_extensions": True}
    con = duckdb.connect(config=config)
    configure_duckdb(con, StorageOptions(access_key_id="a", secret_access_key="b"), ["s3://b/x.parquet"])
    assert loaded(con)
