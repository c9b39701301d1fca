"""Named points inside a commit where a test can kill the process, as SIGKILL would.

A commit is crash-safe only if every point between two of its steps is; the fault-injection
tests (tests/test_commit_crashes.py) enumerate the points by number and kill a real child
process at each (`os._exit`, so no `finally` and no flush runs). In production `arm()` is never
called and `reached()` is one comparison.
"""

from __future__ import annotations

import os

_state = {"armed": 0, "count": 0}


def arm(k: int) -> None:
    """Kill this process at the k-th point reached from now (k >= 1); 0 disarms."""
    _state["armed"], _state["count"] = k, 0


def reached(name: str) -> None:
    """A point between two steps of a commit; `name` says which (for the test's messages)."""
    if not _state["armed"]:
        return
    _state["count"] += 1
    if _state["count"] == _state["armed"]:
        os.write(2, f"pond crashpoint {_state['count']}: {name}\n".encode())
        os._exit(137)


def count() -> int:
    """How many points were reached since `arm()` (a run with k above this never crashed)."""
    return _state["count"]
