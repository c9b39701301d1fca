"""Live submissions, persisted under the service's data root so a restarted service resumes them.

A submission is written before its attempt starts and removed when the attempt ends (succeeded,
failed or cancelled). A service that was killed mid-stage leaves its files behind; the next
service process (Ray Serve restarts a dead replica on its own) reads them at start and submits
each again: the new attempt takes over the stage's lease (its holder is gone) and resumes from
the committed tasks, so a client that keeps polling sees the stage finish without re-submitting.

The files hold the request as the client sent it (the plan, with any pickled Python in it):
they live in the service's own storage, next to the intermediates the same plan writes.
"""

from __future__ import annotations

import hashlib
import json
import logging

from pond_core.io import get_filesystem, join_path
from pond_core.io.options import StorageOptions
from pond_core.service.protocol import StageRequest

log = logging.getLogger("pond.service")
FOLDER = "_service/submissions"


class Submissions:
    """The folder of live submissions of one data root."""

    def __init__(self, data_root: str, storage: StorageOptions | None) -> None:
        self.folder = join_path(data_root, FOLDER)
        self.fs = get_filesystem(self.folder, storage)

    def _path(self, run_id: str, stage_id: str) -> str:
        name = hashlib.sha256(f"{run_id}\0{stage_id}".encode()).hexdigest()[:32]
        return join_path(self.folder, f"{name}.json")

    def save(self, request: StageRequest, stage_id: str) -> None:
        self.fs.makedirs(self.folder)
        self.fs.write_bytes(self._path(request.run_id, stage_id), json.dumps({"stage_id": stage_id, "request": request.to_dict()}).encode())

    def remove(self, run_id: str, stage_id: str) -> None:
        try:
            self.fs.delete(self._path(run_id, stage_id))
        except FileNotFoundError:
            pass

    def load(self) -> list[StageRequest]:
        """Every saved request (one that cannot be read is logged and skipped)."""
        if not self.fs.exists(self.folder):
            return []
        requests = []
        for info in self.fs.list_files(self.folder, recursive=False):
            if not info.path.endswith(".json"):
                continue
            try:
                requests.append(StageRequest.from_dict(json.loads(self.fs.read_bytes(info.path))["request"]))
            except Exception as exc:
                log.warning("pond service: cannot read the saved submission %s (skipped): %s", info.path, exc)
        return requests
