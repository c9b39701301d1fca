"""The thin-client environment for tests: `.venv-client`, pond_core without extras and both
providers, and no Ray.

Why a second venv: "an Airflow or Prefect worker needs no Ray" can only be shown by running
pond where Ray cannot be imported. `make install` builds `.venv-client` beside `.venv` (see the
Makefile); tests run code in it as a subprocess with `run_in_client`. Outside CI a missing client
venv skips the test (a developer may have built only `.venv`); in CI (`CI=true`) it fails it, so
a broken `make install` can never turn these tests into skips.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Mapping, Sequence

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CLIENT_VENV = REPO / ".venv-client"
# Variables of the test process that would point the client at the full venv.
_NOT_INHERITED = ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def client_python() -> pathlib.Path:
    """`.venv-client/bin/python`; fails the test in CI and skips it elsewhere when it is missing."""
    python = CLIENT_VENV / "bin" / "python"
    if not python.exists():
        message = f"the client venv {CLIENT_VENV} is missing: `make install` builds it (pond_core and both providers, no Ray)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return python


def client_bin(name: str) -> pathlib.Path:
    """A console script of the client venv, e.g. `pond` or `airflow`."""
    return client_python().parent / name


def client_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment for a client process: its bin first on PATH, nothing that
    points at `.venv`, then `env` on top."""
    merged = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    merged["PATH"] = f"{client_python().parent}{os.pathsep}{merged.get('PATH', '')}"
    merged.update(env or {})
    return merged


def run_in_client(
    code_or_script: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    args: Sequence[str] = (),
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run Python code (a string) or a script (a path to a .py file) with the client venv's
    interpreter; returns the finished process with text stdout/stderr (check returncode)."""
    python = client_python()
    script = pathlib.Path(code_or_script) if isinstance(code_or_script, os.PathLike) else None
    if script is None and isinstance(code_or_script, str) and code_or_script.endswith(".py") and "\n" not in code_or_script:
        script = pathlib.Path(code_or_script) if pathlib.Path(code_or_script).is_file() else None
    command = [str(python), str(script)] if script is not None else [str(python), "-c", str(code_or_script)]
    return subprocess.run(
        [*command, *args], env=client_env(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
    )
