"""A real S3-compatible server for the test session: moto's server on 127.0.0.1.

`s3_server` starts `python -m moto.server` once per session on a free port, waits until it
answers and stops it by PID at the end. `s3_options` gives StorageOptions pointing at it;
`s3_server.new_bucket()` makes a fresh, uniquely named bucket for a test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

ACCESS_KEY_ID = "pondtestkeyid"
SECRET_ACCESS_KEY = "pond-test-secret-4d1c9e"
REGION = "us-east-1"


try:  # resolved here, not in the forked child, where dlopen could deadlock
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def _die_with_parent() -> None:
    """Linux: SIGTERM the server if the process that started it dies, even by SIGKILL."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class S3Server:
    """One moto server process; `stop()` kills exactly that process."""

    port: int = field(default_factory=free_port)
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY
    region: str = REGION
    process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> S3Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self.process.returncode}")
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.endpoint_url} within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def client(self, service: str = "s3", **creds: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=creds.get("access_key_id", self.access_key_id),
            aws_secret_access_key=creds.get("secret_access_key", self.secret_access_key),
        )

    def new_bucket(self, prefix: str = "pond") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def options(self, **overrides: Any) -> Any:
        from pond_core.io import StorageOptions

        settings = dict(
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            url_style="path",
        )
        settings.update(overrides)
        return StorageOptions(**settings)

    def enforce_auth(self) -> None:
        """From now on every request must be signed by an IAM user that exists in moto."""
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        json.loads(urllib.request.urlopen(request, timeout=5).read())

    def make_user(self, name: str, policy: dict[str, Any] | None) -> tuple[str, str]:
        """An IAM user with an inline policy (None: no permissions); returns its key pair."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        if policy is not None:
            iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def s3_options(s3_server: S3Server) -> Any:
    return s3_server.options()
