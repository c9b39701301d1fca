"""What a client of the pond service raises, split by what the caller should do.

A refused token is a configuration fact (fix the connection, never retry); a service that does
not answer, or answers 5xx after the client's own retries, is transient (the orchestrator's
retry may find it back). Neither message ever holds the token.
"""

from __future__ import annotations

from pond_core.errors import PondConfigError, PondTransientError


class PondServiceAuthError(PondConfigError):
    """The pond service refused the call's token (HTTP 401): a missing or wrong token."""


class PondServiceUnavailableError(PondTransientError):
    """The pond service could not be reached, or kept failing (HTTP 5xx), after retries."""
