# smallpond's own tests/test_session.py (deepseek-ai/smallpond at commit ed112db42af4, 2025-02-27),
# run against pond through `import smallpond` -> pond_core.compat.smallpond.
#
# Copyright 2025 DeepSeek. MIT License:
# Permission is hereby granted, free of charge, to any person obtaining a copy of this software
# and associated documentation files (the "Software"), to deal in the Software without
# restriction, including without limitation the rights to use, copy, modify, merge, publish,
# distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
# Software is furnished to do so, subject to the following conditions:
# The above copyright notice and this permission notice shall be included in all copies or
# substantial portions of the Software.
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
# BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
# NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
# DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
# OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
#
# What pond adds, above smallpond's test bodies (which follow unchanged, from `import os`):
# the import alias, and the `sp` fixture of smallpond's tests/conftest.py, which here starts a
# pond session in this process (smallpond's default num_executors=0) and on Ray.
# ruff: noqa
import pytest

from pond_core.compat.aliases import install as _install_smallpond_alias

_install_smallpond_alias()

import os

from smallpond.dataframe import Session


def test_shutdown_cleanup(sp: Session):
    assert os.path.exists(sp._runtime_ctx.queue_root), "queue directory should exist"
    assert os.path.exists(
        sp._runtime_ctx.staging_root
    ), "staging directory should exist"
    assert os.path.exists(sp._runtime_ctx.temp_root), "temp directory should exist"

    # create some tasks and complete them
    df = sp.from_items([1, 2, 3])
    df.write_parquet(sp._runtime_ctx.output_root)
    sp.shutdown()

    # shutdown should clean up directories
    assert not os.path.exists(
        sp._runtime_ctx.queue_root
    ), "queue directory should be cleared"
    assert not os.path.exists(
        sp._runtime_ctx.staging_root
    ), "staging directory should be cleared"
    assert not os.path.exists(
        sp._runtime_ctx.temp_root
    ), "temp directory should be cleared"
    with open(sp._runtime_ctx.job_status_path) as fin:
        assert "success" in fin.read(), "job status should be success"


def test_shutdown_no_cleanup_on_failure(sp: Session):
    df = sp.from_items([1, 2, 3])
    try:
        # create a task that will fail
        df.map(lambda x: x / 0).compute()
    except Exception:
        pass
    else:
        raise RuntimeError("task should fail")
    sp.shutdown()

    # shutdown should not clean up directories
    assert os.path.exists(
        sp._runtime_ctx.queue_root
    ), "queue directory should not be cleared"
    assert os.path.exists(
        sp._runtime_ctx.staging_root
    ), "staging directory should not be cleared"
    assert os.path.exists(
        sp._runtime_ctx.temp_root
    ), "temp directory should not be cleared"
    with open(sp._runtime_ctx.job_status_path) as fin:
        assert "failure" in fin.read(), "job status should be failure"


# -- smallpond's tests/conftest.py `sp` fixture, on pond -------------------------------------------


@pytest.fixture(params=["local", "ray"])
def sp(tmp_path, request):
    """A smallpond session for each test: in this process (smallpond's default, num_executors=0),
    and on the test session's shared Ray instance (smallpond's conftest runs its tests on Ray)."""
    import smallpond

    if request.param == "ray":
        request.getfixturevalue("ray_instance")
    sp = smallpond.init(data_root=str(tmp_path / "runtime"), executor=request.param)
    yield sp
    sp.shutdown()
