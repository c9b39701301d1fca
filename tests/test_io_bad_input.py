"""Bad storage input: a clear PondStorageError/PondConfigError, nothing written, no secret shown."""

import logging

import duckdb
import pytest

from pond_core.errors import PondConfigError, PondStorageError
from pond_core.io import SinkSpec, SinkWriter, StorageOptions, configure_duckdb, get_filesystem, resolve_paths
from tests.support.s3 import S3Server, free_port
from tests.test_io_sink import write

pytestmark = pytest.mark.s3

SECRET = "very-secret-key-that-must-never-show-1234"


def assert_no_secret(exc_info, caplog, capsys, *secrets):
    texts = [str(exc_info.value), repr(exc_info.value), caplog.text, *capsys.readouterr()]
    cause = exc_info.value.__cause__ or exc_info.value.__context__
    if cause is not None:
        texts.append(str(cause))
    for secret in secrets:
        assert all(secret not in t for t in texts)


def prefix_keys(server, bucket, prefix, **creds):
    listing = server.client(**creds).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


def test_no_credentials(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    opts = StorageOptions.from_env({"HOME": str(tmp_path)}, endpoint_url="http://127.0.0.1:9")
    for action in (
        lambda: resolve_paths("s3://data/x/*.parquet", True, opts),
        lambda: SinkWriter(SinkSpec("s3://data/out"), "j1", opts).prepare(),
        lambda: configure_duckdb(duckdb.connect(), opts, ["s3://data/x.parquet"]),
    ):
        with pytest.raises(PondStorageError, match="no S3 credentials for s3://data: set AWS_ACCESS_KEY_ID") as info:
            action()
        assert_no_secret(info, caplog, capsys, SECRET)


def test_wrong_endpoint(caplog, capsys):
    caplog.set_level(logging.DEBUG)
    endpoint = f"http://127.0.0.1:{free_port()}"
    opts = StorageOptions(endpoint_url=endpoint, access_key_id="AKIDX", secret_access_key=SECRET, max_attempts=1)
    with pytest.raises(PondStorageError, match=f"cannot connect to the S3 endpoint {endpoint}") as info:
        resolve_paths("s3://data/x/", True, opts)
    assert_no_secret(info, caplog, capsys, SECRET, "AKIDX")
    with pytest.raises(PondStorageError, match=f"cannot connect to the S3 endpoint {endpoint}") as info:
        SinkWriter(SinkSpec("s3://data/out"), "j1", opts).prepare()
    assert_no_secret(info, caplog, capsys, SECRET, "AKIDX")


def test_missing_bucket(s3_server, s3_options, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    endpoint = s3_server.endpoint_url
    for action in (
        lambda: resolve_paths("s3://absent-bucket/x/*.parquet", True, s3_options),
        lambda: resolve_paths("s3://absent-bucket/x/", True, s3_options),
        lambda: SinkWriter(SinkSpec("s3://absent-bucket/out"), "j1", s3_options).prepare(),
    ):
        with pytest.raises(PondStorageError, match=f"bucket not found: 'absent-bucket' at {endpoint}") as info:
            action()
        assert_no_secret(info, caplog, capsys, s3_options.secret_access_key)


def test_mode_error_on_existing_s3_path_writes_nothing(s3_server, s3_options):
    bucket = s3_server.new_bucket()
    write(f"s3://{bucket}/ds", ["SELECT 1 AS x"], "j1", s3_options)
    before = prefix_keys(s3_server, bucket, "ds/")
    with pytest.raises(PondConfigError, match=f"s3://{bucket}/ds already exists and is not empty .mode='error'"):
        SinkWriter(SinkSpec(f"s3://{bucket}/ds"), "j2", s3_options).prepare()
    assert prefix_keys(s3_server, bucket, "ds/") == before


@pytest.fixture(scope="module")
def auth_server():
    """A second moto server that enforces IAM: a reader may list and get, `nobody` may not."""
    server = S3Server().start()
    try:
        bucket = server.new_bucket("guarded")
        server.client().put_object(Bucket=bucket, Key="in/a.parquet", Body=b"x")
        arn = f"arn:aws:s3:::{bucket}"
        reader = server.make_user("reader", {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": [arn, f"{arn}/*"]}],
        })
        admin = server.make_user("admin", {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        nobody = server.make_user("nobody", None)
        server.enforce_auth()
        yield server, bucket, {"reader": reader, "admin": admin, "nobody": nobody}
    finally:
        server.stop()


def user_options(server, keys):
    return server.options(access_key_id=keys[0], secret_access_key=keys[1], max_attempts=1)


def test_access_denied_on_read(auth_server, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    server, bucket, users = auth_server
    opts = user_options(server, users["nobody"])
    with pytest.raises(PondStorageError, match=f"access denied to s3://{bucket}/in/.* at {server.endpoint_url}") as info:
        resolve_paths(f"s3://{bucket}/in/*.parquet", True, opts)
    assert_no_secret(info, caplog, capsys, users["nobody"][1])
    assert resolve_paths(f"s3://{bucket}/in/", True, user_options(server, users["reader"])) == [f"s3://{bucket}/in/a.parquet"]


def test_access_denied_on_write_leaves_nothing(auth_server, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    server, bucket, users = auth_server
    opts = user_options(server, users["reader"])
    with pytest.raises(PondStorageError, match=f"access denied to s3://{bucket}/out/_pond_staging/j1/_pond_job.json") as info:
        SinkWriter(SinkSpec(f"s3://{bucket}/out"), "j1", opts).prepare()
    assert_no_secret(info, caplog, capsys, users["reader"][1])
    admin = dict(zip(("access_key_id", "secret_access_key"), users["admin"]))
    assert prefix_keys(server, bucket, "out/", **admin) == []


def test_rejected_credentials_are_named_without_the_secret(auth_server, caplog, capsys):
    server, bucket, users = auth_server
    wrong = server.options(access_key_id=users["reader"][0], secret_access_key=SECRET, max_attempts=1)
    with pytest.raises(PondStorageError, match="the secret key does not match") as info:
        resolve_paths(f"s3://{bucket}/in/*.parquet", True, wrong)  # a LIST: its error has a body
    assert_no_secret(info, caplog, capsys, SECRET)
    unknown = server.options(access_key_id="AKIDUNKNOWN", secret_access_key=SECRET, max_attempts=1)
    with pytest.raises(PondStorageError, match="unknown access key id") as info:
        get_filesystem(f"s3://{bucket}", unknown).glob(f"s3://{bucket}/in/*")
    with pytest.raises(PondStorageError, match="access denied to .* the credentials were refused or lack permission") as info:
        get_filesystem(f"s3://{bucket}", unknown).exists(f"s3://{bucket}/in/a.parquet")  # a HEAD: no reason sent
    assert_no_secret(info, caplog, capsys, SECRET, "AKIDUNKNOWN")


def test_duckdb_errors_do_not_carry_the_secret(auth_server):
    server, bucket, users = auth_server
    opts = user_options(server, users["nobody"])
    con = duckdb.connect()
    configure_duckdb(con, opts, [f"s3://{bucket}/in/a.parquet"])
    with pytest.raises(duckdb.Error) as info:
        con.execute(f"SELECT * FROM read_parquet('s3://{bucket}/in/a.parquet')").fetchall()
    assert "403" in str(info.value) and users["nobody"][1] not in str(info.value)
    assert users["nobody"][1] not in str(con.execute("SELECT * FROM duckdb_secrets()").fetchall())


def test_signed_deletes_work_where_signatures_are_checked(auth_server):
    """The commit's own SigV4-signed deletes, against a server that verifies every signature."""
    server, bucket, users = auth_server
    opts = user_options(server, users["admin"])
    admin = dict(zip(("access_key_id", "secret_access_key"), users["admin"]))
    write(f"s3://{bucket}/signed", ["SELECT 1 AS x"], "j1", opts)
    write(f"s3://{bucket}/signed", ["SELECT 2 AS x"], "j2", opts, mode="overwrite")
    data = [k for k in prefix_keys(server, bucket, "signed/", **admin) if k.endswith(".parquet")]
    assert data == ["signed/part-j2-00000-0.parquet"]
    assert not [k for k in prefix_keys(server, bucket, "signed/", **admin) if "_pond_staging" in k]
    reader = user_options(server, users["reader"])
    with pytest.raises(PondStorageError, match=f"access denied to s3://{bucket} at .*cannot delete"):
        get_filesystem(f"s3://{bucket}", reader).delete(f"s3://{bucket}/in/a.parquet")
