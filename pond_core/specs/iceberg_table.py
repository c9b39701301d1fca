"""IcebergTable: which Iceberg table a sink commits to, as plain data in the plan.

A plan is shipped to orchestrators and stored, so it holds no secret: the catalog is named,
with only non-secret properties (`uri`, `warehouse`); a password or token is given to
pyiceberg through its own environment (`PYICEBERG_CATALOG__<NAME>__URI=...`) or
`~/.pyiceberg.yaml`, which `load_catalog` merges in when the stage runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pond_core.errors import PondConfigError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_WORDS = ("password", "secret", "token", "credential", "access-key", "key-id")


@dataclass(frozen=True)
class IcebergTable:
    """`identifier` is `namespace.table`; `properties` are the catalog's non-secret properties."""

    identifier: str
    catalog: str = "pond"
    properties: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.properties, Mapping):
            object.__setattr__(self, "properties", tuple(sorted((str(k), str(v)) for k, v in self.properties.items())))
        else:
            object.__setattr__(self, "properties", tuple((str(k), str(v)) for k, v in self.properties))
        parts = self.identifier.split(".")
        if len(parts) < 2 or not all(_NAME.match(p) for p in parts):
            raise PondConfigError(
                f"Iceberg table {self.identifier!r} must be 'namespace.table' (letters, digits and '_')"
            )
        if not _NAME.match(self.catalog):
            raise PondConfigError(f"Iceberg catalog name {self.catalog!r} must be letters, digits and '_'")
        for key, value in self.properties:
            if any(word in key.lower() for word in _SECRET_WORDS):
                raise PondConfigError(
                    f"catalog property {key!r} is a secret and would be stored in the plan; set it in the "
                    f"environment instead (PYICEBERG_CATALOG__{self.catalog.upper()}__{_env_key(key)})"
                )
            if key == "uri" and _has_password(value):
                raise PondConfigError(
                    "the catalog uri holds a password, which would be stored in the plan; set the whole uri "
                    f"in the environment instead (PYICEBERG_CATALOG__{self.catalog.upper()}__URI)"
                )

    @property
    def namespace(self) -> str:
        return self.identifier.rsplit(".", 1)[0]

    @property
    def name(self) -> str:
        return self.identifier.rsplit(".", 1)[1]

    @property
    def uri(self) -> str:
        """How pond names this table as a dataset (catalog records, lineage, graphs)."""
        return f"iceberg://{self.catalog}/{self.identifier}"

    def to_dict(self) -> dict[str, Any]:
        return {"identifier": self.identifier, "catalog": self.catalog, "properties": [list(p) for p in self.properties]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IcebergTable:
        return cls(str(data["identifier"]), str(data.get("catalog", "pond")), tuple(tuple(p) for p in data.get("properties", ())))


def _env_key(key: str) -> str:
    return key.upper().replace("-", "_").replace(".", "__")


def _has_password(uri: str) -> bool:
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^@/]*)@", uri)
    return bool(match and ":" in match.group(1))
