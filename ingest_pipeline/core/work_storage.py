"""Work files in an Azure Blob container, for a distributed deployment (core/deployment.py).

An upload's work folder (`UploadWorkspace`: manifest, filespec, reference snapshot, chunk files,
scan outputs, metrics) is mirrored at `<container>/<upload_id>/<the same relative path>`. Each
step works in a local folder of its own machine, as on one machine, and exchanges files through
the container only: it pulls what it reads before, and pushes what it wrote after. Every transfer
streams a file from or to disk in pieces (the SDK's 4 MiB blocks), never holding a file in memory.
"""

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ingest_pipeline.core.prepare import UploadWorkspace

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

TRANSFER_CONCURRENCY = 2  # parallel block transfers per file


def file_states(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root`, by its path relative to it (with '/'), with its size and mtime."""
    if not root.is_dir():
        return {}
    states = {}
    for path in root.rglob("*"):
        if path.is_file():
            stat = path.stat()
            states[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return states


def changed_since(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """The files written (new or changed) between two `file_states` of the same folder."""
    return sorted(name for name, state in after.items() if before.get(name) != state)


class BlobWorkStore:
    """The work files of every upload in one container, under an optional prefix."""

    def __init__(self, container: "ContainerClient", prefix: str = ""):
        self.container = container
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._ensured = False

    def url(self, upload_id: str, relative: str = "") -> str:
        """Where a work file is, for messages: `az://<container>/<prefix><upload_id>/<relative>`."""
        return f"az://{self.container.container_name}/{self._name(upload_id, relative)}"

    def _name(self, upload_id: str, relative: str) -> str:
        return f"{self.prefix}{upload_id}/{relative}"

    def _ensure_container(self) -> None:
        if self._ensured:
            return
        from azure.core.exceptions import ResourceExistsError

        try:
            self.container.create_container()
        except ResourceExistsError:
            pass
        self._ensured = True

    def clear(self, upload_id: str) -> int:
        """Remove the upload's work files (a rerun starts clean); returns how many there were."""
        return self.remove_under(self._name(upload_id, ""))

    def remove_under(self, name_prefix: str) -> int:
        """Remove every blob whose name starts with `name_prefix` (a folder's, ending in `/`)."""
        self._ensure_container()
        names = [blob.name for blob in self.container.list_blobs(name_starts_with=name_prefix)]
        for name in names:
            self.container.delete_blob(name)
        return len(names)

    def push(self, workspace: UploadWorkspace, relatives: Iterable[str], remove: Iterable[str] = ()) -> int:
        """Upload these files of the workspace (paths relative to its folder); then delete the
        local copies of those in `remove` (chunk files, once in the container). Returns bytes sent."""
        self._ensure_container()
        upload_id, sent, remove = workspace.root.name, 0, set(remove)
        for relative in relatives:
            path = workspace.root / relative
            with open(path, "rb") as source:
                self.container.upload_blob(self._name(upload_id, relative), source, overwrite=True,
                                           max_concurrency=TRANSFER_CONCURRENCY)  # fmt: skip
            sent += path.stat().st_size
            if relative in remove:
                path.unlink()
        return sent

    def pull(self, workspace: UploadWorkspace, prefixes: Iterable[str] = ("",), skip: Iterable[str] = (),
             always: Iterable[str] = ()) -> int:  # fmt: skip
        """Download the upload's files under these relative prefixes ('' for all) into the
        workspace, except those under `skip` and those already there at the same size (unless
        under `always`: files rewritten in place, such as a chunk's status). Returns bytes."""
        self._ensure_container()
        upload_id, received, skip, always = workspace.root.name, 0, tuple(skip), tuple(always)
        base = self._name(upload_id, "")
        for prefix in prefixes:
            for blob in self.container.list_blobs(name_starts_with=base + prefix):
                relative = blob.name[len(base) :]
                if skip and relative.startswith(skip):
                    continue
                target = workspace.root / relative
                if target.is_file() and target.stat().st_size == blob.size and not (always and relative.startswith(always)):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                with open(partial, "wb") as out:
                    self.container.download_blob(blob.name, max_concurrency=TRANSFER_CONCURRENCY).readinto(out)
                os.replace(partial, target)
                received += blob.size
        return received
