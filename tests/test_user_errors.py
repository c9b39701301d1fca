"""What a user of the Python API reads when something is wrong: one short traceback ending in a
pond error that says the cause on the user's own text, raised from the call that has it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import duckdb
import pytest

import pond_core
from pond_core.errors import PondConfigError, PondInputError, PondSqlError, is_retryable
from pond_core.sql_errors import on_user_sql

MOST_LINES = 15


def _run(script: str, tmp_path) -> list[str]:
    """stderr of `script` run by a fresh interpreter, as lines (the traceback users see)."""
    code = f"import pond_core as sp\nsession = sp.init(data_root={str(tmp_path / 'pond')!r}, executor='local')\n" + textwrap.dedent(script)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stderr.rstrip("\n").splitlines()


def test_a_missing_file_is_a_short_error_at_the_read(tmp_path):
    lines = _run(f"df = session.read_parquet({str(tmp_path / 'nope' / '*.parquet')!r})\n", tmp_path)
    assert len(lines) <= MOST_LINES, "\n".join(lines)
    assert lines[-1] == (
        f"pond_core.errors.PondInputError: read_parquet: no files match {tmp_path}/nope/*.parquet; "
        "check the path (and for s3:// the bucket and credentials)"
    )
    assert not any("scheduler" in line or "futures" in line or "attempts" in line for line in lines)


def test_a_sql_typo_is_a_short_error_on_the_users_text(tmp_path):
    lines = _run("session.partial_sql('SELEC a FROM {0}', session.from_items([{'a': 1}])).take_all()\n", tmp_path)
    assert len(lines) <= MOST_LINES, "\n".join(lines)
    text = "\n".join(lines)
    assert 'PondSqlError: stage select_items partition 0: step s0: Parser Error: syntax error at or near "SELEC"' in text
    assert "LINE 1: SELEC a FROM {0}\n        ^" in text  # the caret under the user's typo
    assert "CREATE VIEW" not in text and "concurrent" not in text


def test_a_typo_in_session_sql_names_the_users_token_not_the_describe_wrapper(tmp_path):
    lines = _run("session.sql('SELEC a FROM t', t=session.from_items([{'a': 1}])).take_all()\n", tmp_path)
    text = "\n".join(lines)
    assert len(lines) <= MOST_LINES, text
    assert 'syntax error at or near "SELEC"' in text and "LINE 1: SELEC a FROM t" in text
    assert "DESCRIBE" not in text


def test_the_error_is_pond_s_own_kind_and_keeps_its_retry_verdict(local_sp, tmp_path):
    with pytest.raises(PondInputError) as info:
        local_sp.read_json(str(tmp_path / "none.json"), schema={"a": "BIGINT"})
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert not is_retryable(info.value)
    with pytest.raises(PondSqlError) as sql:
        local_sp.partial_sql("SELECT nope FROM {0}", local_sp.from_items([{"a": 1}])).count()
    assert sql.value.__cause__ is None and "nope" in str(sql.value)


def test_init_names_the_setting_meant():
    with pytest.raises(PondConfigError, match=r"unknown setting 'num_executor'; did you mean num_executors\?"):
        pond_core.init(num_executor=2)
    with pytest.raises(PondConfigError, match="unknown setting 'zzz'; known: job_id, "):
        pond_core.init(zzz=1)


def test_binder_errors_drop_the_wrappers_excerpt():
    con = duckdb.connect()
    with pytest.raises(duckdb.BinderException) as info:
        con.execute('CREATE VIEW "s0" AS SELECT b FROM range(3) t(a)')
    told = on_user_sql(str(info.value), "SELECT b FROM {0}")
    assert told.startswith('Binder Error: Referenced column "b" not found') and "CREATE VIEW" not in told and "LINE" not in told


@pytest.mark.s3
def test_a_missing_s3_path_fails_at_the_read(s3_server, s3_options, tmp_path):
    bucket = s3_server.new_bucket()
    with pond_core.init(data_root=str(tmp_path / "pond"), executor="local", storage_options=s3_options) as sp:
        with pytest.raises(PondInputError, match=f"read_parquet: path not found: s3://{bucket}/orders; check the path"):
            sp.read_parquet(f"s3://{bucket}/orders")
        with pytest.raises(PondInputError, match=f"read_csv: no files match s3://{bucket}/x/\\*.csv"):
            sp.read_csv(f"s3://{bucket}/x/*.csv", schema={"a": "BIGINT"})
