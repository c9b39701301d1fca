"""The service's token check: a bearer token compared, in constant time, by its SHA-256 digest.

`pond serve` reads the token (POND_SERVICE_TOKEN or --token-file) and hands the deployment only
its digest: Ray Serve keeps a deployment's arguments in its controller (and shows them to anyone
with the dashboard), so the plaintext token never enters Ray. A request's token is hashed the
same way and compared with `hmac.compare_digest`. No answer, log line or error holds a token.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from pond_core.errors import PondConfigError

TOKEN_ENV = "POND_SERVICE_TOKEN"
MIN_TOKEN_CHARS = 16


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_token(token_file: str | None) -> str:
    """The service token from `--token-file`, else POND_SERVICE_TOKEN; too short or missing is
    an error (a service without a token would run anyone's code)."""
    if token_file:
        try:
            with open(token_file) as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise PondConfigError(f"cannot read the service token file {token_file}: {exc.strerror}") from None
        source = f"the token file {token_file}"
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        source = TOKEN_ENV
    if not token:
        raise PondConfigError(f"the pond service needs a token: set {TOKEN_ENV} or pass --token-file (e.g. `openssl rand -hex 32`)")
    if len(token) < MIN_TOKEN_CHARS:
        raise PondConfigError(f"the token in {source} is too short: use at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)")
    return token


class TokenCheck:
    """Accepts `Authorization: Bearer <token>` headers whose token hashes to the digest."""

    def __init__(self, digest: str) -> None:
        self._digest = digest.encode()

    def __repr__(self) -> str:
        return "TokenCheck(<digest>)"

    def accepts(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        return hmac.compare_digest(token_digest(token.strip()).encode(), self._digest)


def refusal(header: str | None) -> str:
    """Why a request was refused, in words that never repeat what it sent."""
    if not header:
        return "this pond service requires a token: send the header 'Authorization: Bearer <token>'"
    if not header.lower().startswith("bearer "):
        return "the Authorization header must be 'Bearer <token>'"
    return "the token is not valid for this pond service"
