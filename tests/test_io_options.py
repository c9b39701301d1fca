"""StorageOptions: AWS environment and profile files, precedence, and secrets kept out of sight."""

import json
import pickle

import pytest

from pond_core.errors import PondConfigError
from pond_core.io import StorageOptions

SECRET = "s3cr3t-value-never-shown"


def write_aws_files(tmp_path, credentials: str, config: str) -> dict:
    (tmp_path / "credentials").write_text(credentials)
    (tmp_path / "config").write_text(config)
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "HOME": str(tmp_path),
    }


def test_from_env_reads_standard_variables():
    env = {
        "AWS_ENDPOINT_URL_S3": "http://minio:9000",
        "AWS_ENDPOINT_URL": "http://ignored:1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": "tok",
        "HOME": "/nonexistent",
    }
    opts = StorageOptions.from_env(env)
    assert opts.endpoint_url == "http://minio:9000"
    assert opts.region == "eu-west-1"
    assert (opts.access_key_id, opts.secret_access_key, opts.session_token) == ("AKIDENV", SECRET, "tok")
    assert opts.effective_url_style == "path"  # custom endpoints default to path-style
    assert opts.effective_use_ssl is False
    assert opts.endpoint_host == "minio:9000"


def test_aws_region_beats_default_region_and_overrides_beat_env():
    env = {"AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "eu-west-1", "HOME": "/nonexistent"}
    assert StorageOptions.from_env(env).region == "ap-south-1"
    assert StorageOptions.from_env(env, region="us-west-2").region == "us-west-2"


def test_profile_files_supply_keys_region_endpoint_and_addressing(tmp_path):
    env = write_aws_files(
        tmp_path,
        "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = defsecret\n"
        f"[lake]\naws_access_key_id = AKIDLAKE\naws_secret_access_key = {SECRET}\n",
        "[default]\nregion = us-east-2\n"
        "[profile lake]\nregion = eu-central-1\ns3 =\n  addressing_style = virtual\n"
        "  endpoint_url = https://ceph.example:7480\n",
    )
    default = StorageOptions.from_env(env)
    assert (default.access_key_id, default.region) == ("AKIDDEF", "us-east-2")
    lake = StorageOptions.from_env({**env, "AWS_PROFILE": "lake"})
    assert lake.access_key_id == "AKIDLAKE" and lake.secret_access_key == SECRET
    assert lake.region == "eu-central-1"
    assert lake.endpoint_url == "https://ceph.example:7480"
    assert lake.effective_url_style == "vhost" and lake.effective_use_ssl is True


def test_env_keys_beat_env_profile_but_explicit_profile_beats_env_keys(tmp_path):
    env = write_aws_files(tmp_path, "[lake]\naws_access_key_id = AKIDLAKE\naws_secret_access_key = x\n", "")
    env.update(AWS_PROFILE="lake", AWS_ACCESS_KEY_ID="AKIDENV", AWS_SECRET_ACCESS_KEY="y")
    assert StorageOptions.from_env(env).access_key_id == "AKIDENV"
    assert StorageOptions.from_env(env, profile="lake").access_key_id == "AKIDLAKE"


def test_unknown_profile_and_bad_values_are_config_errors(tmp_path):
    env = write_aws_files(tmp_path, "[default]\naws_access_key_id = a\n", "")
    with pytest.raises(PondConfigError, match="profile 'nope' not found"):
        StorageOptions.from_env(env, profile="nope")
    with pytest.raises(PondConfigError, match="url_style"):
        StorageOptions(url_style="diagonal")
    with pytest.raises(PondConfigError, match="scheme"):
        StorageOptions(endpoint_url="localhost:9000")
    with pytest.raises(PondConfigError, match="unknown storage option"):
        StorageOptions.from_env({}, bucket="x")


def test_secrets_hidden_from_repr_str_and_public_dict():
    opts = StorageOptions(access_key_id="AKIDSHOWNOT", secret_access_key=SECRET, session_token="tok-zzz")
    for text in (repr(opts), str(opts), json.dumps(opts.to_public_dict()), f"{opts}", repr([opts])):
        assert SECRET not in text and "AKIDSHOWNOT" not in text and "tok-zzz" not in text
    public = opts.to_public_dict()
    assert public["has_credentials"] is True and public["has_session_token"] is True


def test_full_dict_round_trips_for_workers():
    opts = StorageOptions(endpoint_url="http://h:1", access_key_id="a", secret_access_key=SECRET, use_ssl=False)
    again = StorageOptions.from_dict(json.loads(json.dumps(opts.to_dict())))
    assert again == opts
    assert pickle.loads(pickle.dumps(opts)) == opts
