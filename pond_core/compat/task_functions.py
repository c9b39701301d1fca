"""smallpond's rule for the Python functions of a task, and its error text.

smallpond ships a task's function to a Ray worker and refuses one that captured the loguru logger
imported outside it ("Can't pickle task ... HINT: DO NOT use externally imported loguru logger in
your task"): the logger holds its handlers' locks and queues, which do not belong in another
process. pond pickles functions when the DataFrame is built; under the smallpond entry it applies
the same rule and words a pickling failure as smallpond does, so programs that catch it keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pond_core.errors import PondSerializationError

LOGURU_HINT = "HINT: DO NOT use externally imported loguru logger in your task. Please import it within the task."


def check_task_function(func: Callable[..., Any], method: str) -> None:
    """Refuse, in smallpond's words, a function that captured a loguru logger from outside."""
    if any(_is_loguru(value) for value in _captured(func)):
        raise PondSerializationError(unpicklable_message(func, method, "it captured a loguru logger") + "\n" + LOGURU_HINT)


def unpicklable_message(func: Callable[..., Any], method: str, why: str) -> str:
    label = getattr(func, "__qualname__", None) or type(func).__name__
    return (
        f"Can't pickle task '{method}({label})'. Please check if your function has captured unpicklable objects: {why}"
    )


def _captured(func: Callable[..., Any]) -> Iterator[Any]:
    """The values a function's code refers to from outside: closure cells and used globals."""
    code = getattr(func, "__code__", None)
    if code is None:
        return
    for cell in getattr(func, "__closure__", None) or ():
        try:
            yield cell.cell_contents
        except ValueError:  # an empty cell
            continue
    globals_ = getattr(func, "__globals__", {})
    for name in code.co_names:
        if name in globals_:
            yield globals_[name]


def _is_loguru(value: Any) -> bool:
    return type(value).__module__.startswith("loguru")
