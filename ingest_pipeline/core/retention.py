"""Retention of work folders: an upload's chunk and scan files are removed some time after it finished.

A work folder (`<work_dir>/<upload_id>/`, see `UploadWorkspace.of`) holds about twice the upload's
size while it runs, and is only needed afterwards to re-execute a stage of that upload (a failed
chunk, say). It is removed once all of these hold:

- the upload has finished (`completed` or `failed` in `ingest.uploads`) at least
  `INGEST_WORK_RETENTION_HOURS` (default 24) ago; queued and processing uploads are never touched;
- nothing in the folder changed for as long (a re-execution of one stage writes into it without
  changing the upload's status);
- no Dagster run of the upload is queued or in progress (when the caller knows the runs).

The check is made again under the warehouse's write lock, and the folder is renamed away under it
before it is deleted, so a run that starts meanwhile either finds its folder or starts afresh,
never a half-deleted one. The folder is left with a note, `REMOVED.txt`, whose sentence a later
re-execution of a stage fails with (see `UploadWorkspace.load_manifest`); a run of the whole upload
clears it. Folders of uploads the warehouse does not know are left alone.
"""

import dataclasses
import datetime as dt
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from ingest_pipeline.core.errors import ConfigurationError
from ingest_pipeline.core.prepare import UploadWorkspace
from ingest_pipeline.core.uploads import COMPLETED, FAILED, now
from ingest_pipeline.core.warehouse import Warehouse

logger = logging.getLogger(__name__)

RETENTION_ENV = "INGEST_WORK_RETENTION_HOURS"
DEFAULT_RETENTION_HOURS = 24.0
NEVER = "never"
# Folders being deleted are first renamed to this prefix and the upload id; upload ids are hex.
TRASH_PREFIX = ".removing-"

KEPT, REMOVABLE, REMOVED, UNKNOWN = "kept", "removable", "removed", "unknown"


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    """How long a finished upload's work folder is kept; `hours` None keeps it for ever."""

    hours: float | None = DEFAULT_RETENTION_HOURS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "RetentionPolicy":
        """`INGEST_WORK_RETENTION_HOURS`: hours above 0 (fractions allowed), or `never`; default 24.

        Raises:
            ConfigurationError: Any other value. 0 is refused rather than read as "at once": a
                failed upload's stages can only be re-executed while its work folder is there.
        """
        environ = os.environ if environ is None else environ
        text = environ.get(RETENTION_ENV, "").strip()
        if not text:
            return cls()
        if text.lower() == NEVER:
            return cls(hours=None)
        try:
            hours = float(text)
        except ValueError:
            hours = float("nan")
        if not 0 < hours < float("inf"):
            raise ConfigurationError(
                f"{RETENTION_ENV} is {text!r}; it must be a number of hours above 0 (work folders are needed "
                f"to re-execute a stage of a finished upload), or '{NEVER}'."
            )
        return cls(hours=hours)

    @property
    def keeps_for_ever(self) -> bool:
        return self.hours is None

    def cutoff(self, at: dt.datetime) -> dt.datetime | None:
        """Work folders of uploads finished (and folders last changed) before this are removed."""
        return None if self.hours is None else at - dt.timedelta(hours=self.hours)


@dataclasses.dataclass(frozen=True)
class WorkFolder:
    """One upload's work folder and what retention makes of it.

    Attributes:
        upload_id: The folder's name: the upload it belongs to.
        path: The folder.
        state: `removable`, `kept`, `removed` (only its note is left) or `unknown` (no such upload).
        reason: Why, in a few words.
        status: The upload's status, None when the warehouse has no such upload.
        finished_at: When the upload finished (UTC), if it has.
        modified_at: The last change to anything in the folder (UTC).
        bytes: The size of the files in it.
    """

    upload_id: str
    path: Path
    state: str
    reason: str
    status: str | None
    finished_at: dt.datetime | None
    modified_at: dt.datetime
    bytes: int


def work_folders_root(home: Path, work_dir: str | Path | None = None) -> Path:
    """The folder that holds every upload's work folder (`$INGEST_WORK_DIR`, else `<home>/work`)."""
    return UploadWorkspace.of(home, "upload", work_dir).root.parent  # the one rule for where they are


def _tree_stats(path: Path) -> tuple[dt.datetime, int]:
    """(The latest modification time of the folder or anything in it, UTC; the files' total size)."""
    latest, size = path.stat().st_mtime, 0
    for folder, _, files in os.walk(path):
        try:
            latest = max(latest, os.stat(folder).st_mtime)
        except FileNotFoundError:
            continue
        for name in files:
            try:
                stat = os.stat(os.path.join(folder, name))
            except FileNotFoundError:  # a run may be replacing files meanwhile
                continue
            latest, size = max(latest, stat.st_mtime), size + stat.st_size
    return dt.datetime.fromtimestamp(latest, dt.UTC).replace(tzinfo=None), size


def judge_folder(
    upload_id: str,
    path: Path,
    upload: Mapping | None,
    policy: RetentionPolicy,
    at: dt.datetime,
    in_use: set[str],
    modified_at: dt.datetime,
    size: int,
) -> WorkFolder:
    """Whether one work folder may be removed now, and why (or why not)."""
    status = upload["status"] if upload else None
    finished_at = upload.get("finished_at") if upload else None

    def verdict(state: str, reason: str) -> WorkFolder:
        return WorkFolder(upload_id, path, state, reason, status, finished_at, modified_at, size)

    if UploadWorkspace(path).removal_note.exists():
        return verdict(REMOVED, "its files were removed after the retention time")
    if upload is None:
        return verdict(UNKNOWN, "the warehouse has no such upload; left alone")
    if status not in (COMPLETED, FAILED):
        return verdict(KEPT, f"the upload is {status}")
    if upload_id in in_use:
        return verdict(KEPT, "a run of the upload is queued or in progress")
    cutoff = policy.cutoff(at)
    if cutoff is None:
        return verdict(KEPT, f"{RETENTION_ENV} is {NEVER}")
    if finished_at is not None and finished_at > cutoff:
        return verdict(KEPT, f"finished less than {policy.hours:g} h ago")
    if modified_at > cutoff:
        return verdict(KEPT, f"changed less than {policy.hours:g} h ago")
    return verdict(REMOVABLE, f"finished and unchanged for more than {policy.hours:g} h")


def survey_work_folders(
    warehouse: Warehouse,
    root: Path,
    policy: RetentionPolicy,
    in_use: set[str] = frozenset(),
    at: dt.datetime | None = None,
) -> list[WorkFolder]:
    """Every work folder under `root` with its retention verdict, by upload id.

    Args:
        warehouse: Holds `ingest.uploads`.
        root: The folder of the work folders (`work_folders_root`).
        policy: The retention time.
        in_use: Uploads with a Dagster run queued or in progress: their folders are kept.
        at: Now (UTC), for tests.
    """
    at = at or now()
    if not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    uploads = _uploads(warehouse, [p.name for p in folders])
    surveyed = []
    for path in folders:
        try:
            modified_at, size = _tree_stats(path)
        except FileNotFoundError:  # removed meanwhile (a rerun's prepare, another cleaner)
            continue
        surveyed.append(judge_folder(path.name, path, uploads.get(path.name), policy, at, in_use, modified_at, size))
    return surveyed


def _uploads(warehouse: Warehouse, upload_ids: list[str]) -> dict[str, dict]:
    if not upload_ids or not warehouse.path.exists():
        return {}
    with warehouse.connect(write=False) as connection:
        rows = connection.execute(
            "SELECT upload_id, status, finished_at FROM ingest.uploads WHERE list_contains(?, upload_id)",
            [upload_ids],
        ).fetchall()
    return {upload_id: {"status": status, "finished_at": finished_at} for upload_id, status, finished_at in rows}


def remove_work_folder(
    warehouse: Warehouse, folder: WorkFolder, policy: RetentionPolicy, in_use: set[str] = frozenset()
) -> bool:
    """Remove a removable work folder, leaving its note; returns whether it was removed.

    The verdict is made again under the warehouse's write lock (so no stage can change the
    upload's status meanwhile) and the folder renamed away under it; the deletion itself follows
    outside the lock.
    """
    trash = folder.path.with_name(f"{TRASH_PREFIX}{folder.upload_id}-{uuid.uuid4().hex[:8]}")
    with warehouse.transaction() as connection:  # the write lock: prepare cannot mark the upload processing
        row = connection.execute(
            "SELECT status, finished_at FROM ingest.uploads WHERE upload_id = ?", [folder.upload_id]
        ).fetchone()
        upload = {"status": row[0], "finished_at": row[1]} if row else None
        at = now()
        try:
            modified_at, size = _tree_stats(folder.path)
        except FileNotFoundError:
            return False
        again = judge_folder(folder.upload_id, folder.path, upload, policy, at, in_use, modified_at, size)
        if again.state != REMOVABLE:
            return False
        folder.path.rename(trash)
        folder.path.mkdir()
        UploadWorkspace(folder.path).removal_note.write_text(removal_sentence(folder.upload_id, at, policy) + "\n")
    shutil.rmtree(trash, ignore_errors=True)
    logger.info("work folder of upload %s removed (%d bytes): %s", folder.upload_id, size, again.reason)
    return True


def removal_sentence(upload_id: str, at: dt.datetime, policy: RetentionPolicy) -> str:
    """What a re-execution of a stage says once the upload's work folder is gone."""
    return (
        f"the work files of upload {upload_id} were removed on {at:%Y-%m-%d %H:%M} UTC, more than {policy.hours:g} "
        f"hours after it finished ({RETENTION_ENV}); run the whole upload again instead of re-executing one of "
        "its stages"
    )


def remove_expired_work_folders(
    warehouse: Warehouse,
    root: Path,
    policy: RetentionPolicy,
    in_use: set[str] = frozenset(),
    budget_seconds: float | None = None,
    on_removed: Callable[[Path], None] | None = None,
) -> list[WorkFolder]:
    """Remove every removable work folder under `root` (and the leftovers of interrupted removals).

    Args:
        budget_seconds: No removal is started after this long (a sensor tick has a time limit);
            the rest waits for the next call.
        on_removed: Called with each removed folder (holding only its note), e.g. to remove the
            upload's copies in a distributed deployment's work container.

    Returns:
        The folders removed, as they were before.
    """
    if policy.keeps_for_ever or not root.is_dir():
        return []
    started = time.monotonic()
    for leftover in root.glob(f"{TRASH_PREFIX}*"):  # a cleaner killed while deleting
        shutil.rmtree(leftover, ignore_errors=True)
    removed = []
    for folder in survey_work_folders(warehouse, root, policy, in_use):
        if budget_seconds is not None and time.monotonic() - started >= budget_seconds:
            break
        if folder.state == REMOVABLE and remove_work_folder(warehouse, folder, policy, in_use):
            removed.append(folder)
            if on_removed is not None:
                on_removed(folder.path)
    return removed
