"""What a stage read, as a key: committed work is reused only while that key is unchanged.

A stage id hashes the stage's definition, not its data, so the same SQL over a file that was
overwritten keeps its id. A committed stage therefore also records the identity of what it
read, input by input: each source file's path, size and modification time (on S3 the listed
LastModified), a table source's snapshot and its files, and each upstream stage's committed
files. Before a committed stage is reused its key is computed again (one listing of its
sources, which resolving them needs anyway) and compared: a changed input runs the stage
again, its new files change the key of every stage downstream of it, and nothing else reruns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pond_core.io.fs import FileInfo
from pond_core.io.table_read import TableFiles
from pond_core.io.written import WrittenFile


@dataclasses.dataclass(frozen=True)
class InputKey:
    """One digest per input of a stage, by input name, in the stage's input order."""

    digests: tuple[tuple[str, str], ...]

    def changed(self, current: InputKey) -> list[str]:
        """The inputs whose digest differs in `current` (or that one of the two lacks)."""
        mine, theirs = dict(self.digests), dict(current.digests)
        return [name for name in dict.fromkeys([*mine, *theirs]) if mine.get(name) != theirs.get(name)]

    @property
    def token(self) -> str:
        """A short digest of the whole key, to name a write of exactly these inputs."""
        return _digest(sorted(self.digests))[:12]

    def to_dict(self) -> dict[str, str]:
        return dict(self.digests)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputKey:
        return cls(tuple((str(k), str(v)) for k, v in data.items()))


def source_digest(files: Sequence[FileInfo]) -> str:
    return _digest([[f.path, f.size, f.mtime_ns] for f in files])


def table_digest(table: TableFiles) -> str:
    return _digest([table.snapshot, list(table.files)])


def upstream_digest(files: Iterable[WrittenFile]) -> str:
    # An upstream stage that ran again wrote files under new attempt names: its digest changes.
    return _digest([[f.path, f.bytes, f.rows] for f in files])


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, separators=(",", ":"), default=str).encode()).hexdigest()
