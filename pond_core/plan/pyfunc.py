"""Python callables carried inside plans: pickled once, identified by content.

A plan is pure data, so a function passed to `map`, `filter`, `flat_map` or `map_batches` is
serialised with cloudpickle when the DataFrame is built. A function that cannot travel to another
process fails there, with the reason, instead of deep inside a worker.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import cloudpickle

from pond_core.errors import PondSerializationError


@dataclasses.dataclass(frozen=True)
class PyFunc:
    """A callable and its serialised form; equality and ids use the digest only."""

    payload: str  # base64 of the cloudpickle bytes
    digest: str
    label: str

    @classmethod
    def wrap(cls, func: Callable[..., Any], method: str) -> PyFunc:
        if not callable(func):
            raise PondSerializationError(f"{method}() expects a SQL string or a callable, got {func!r}")
        label = getattr(func, "__qualname__", None) or type(func).__name__
        try:
            data = cloudpickle.dumps(func)
        except Exception as exc:  # cloudpickle raises many kinds
            raise PondSerializationError(
                f"cannot pickle the function {label!r} passed to {method}() for remote execution: "
                f"{type(exc).__name__}: {exc}. Functions run in other processes, so everything they "
                f"reference (closures, globals) must be picklable."
            ) from exc
        return cls(
            payload=base64.b64encode(data).decode("ascii"),
            digest=hashlib.sha256(data).hexdigest()[:16],
            label=label,
        )

    def load(self) -> Callable[..., Any]:
        try:
            return cloudpickle.loads(base64.b64decode(self.payload))
        except Exception as exc:
            raise PondSerializationError(
                f"cannot unpickle the function {self.label!r} in this process: {type(exc).__name__}: {exc}"
            ) from exc

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> PyFunc:
        return cls(**data)
