"""The upload id and the upload lifecycle in `ingest.uploads` (queued → processing → completed/failed)."""

import datetime as dt
import hashlib
import os
import queue
import threading
from typing import BinaryIO

from ingest_pipeline.core.warehouse import UPLOAD_COLUMNS, Warehouse

HASH_BLOCK_BYTES = 8 * 1024 * 1024
UPLOAD_ID_LENGTH = 16  # hex characters: short, comma-free, a valid Dagster partition key

QUEUED, PROCESSING, COMPLETED, FAILED = "queued", "processing", "completed", "failed"


def compute_upload_id(company_id: str, form_type: str, sha256: str) -> str:
    """Deterministic: the same bytes for the same company and form type always get the same id."""
    digest = hashlib.sha256(f"{company_id}\n{form_type}\n{sha256}".encode()).hexdigest()
    return digest[:UPLOAD_ID_LENGTH]


def unread_upload_id(company_id: str, form_type: str, source: str, etag: str) -> str:
    """The id of an entry recorded without being read (one the landing storage refuses): from where
    it is and its version, since its bytes are never read. The same entry always gets the same id."""
    where = hashlib.sha256(f"unread\n{source}\n{etag}".encode()).hexdigest()
    return compute_upload_id(company_id, form_type, where)


READ_AHEAD_BLOCKS = 4


def hash_stream(stream: BinaryIO) -> tuple[str, int]:
    """SHA-256 (hex) and size of a stream, read in blocks (never whole into memory).

    A thread reads up to READ_AHEAD_BLOCKS blocks ahead while this one hashes (both release the
    GIL), and a file is read with sequential read-ahead advice: a cold 10 GB file took 13-14 s
    instead of 16-28 s, when the disk and the hash took turns."""
    try:
        os.posix_fadvise(stream.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except (AttributeError, OSError, ValueError):  # not a file (a download, a socket) or no such advice
        pass
    blocks: queue.Queue = queue.Queue(maxsize=READ_AHEAD_BLOCKS)
    failure: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set() and (block := stream.read(HASH_BLOCK_BYTES)):
                blocks.put(block)
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            failure.append(error)
        finally:
            blocks.put(None)

    reader = threading.Thread(target=read, name="hash-read-ahead", daemon=True)
    reader.start()
    digest, size = hashlib.sha256(), 0
    try:
        while (block := blocks.get()) is not None:
            digest.update(block)
            size += len(block)
    finally:
        stop.set()
        while reader.is_alive():  # let a reader blocked on a full queue see `stop` and finish
            try:
                blocks.get(timeout=0.1)
            except queue.Empty:
                pass
    if failure:
        raise failure[0]
    return digest.hexdigest(), size


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def register_upload(
    warehouse: Warehouse,
    *,
    upload_id: str,
    company_id: str,
    form_type: str,
    source: str,
    sha256: str | None,
    size: int | None,
    filespec_version: int | None,
    status: str = QUEUED,
    error: str | None = None,
) -> None:
    """Record an upload as queued (or, for one that cannot run at all, failed with its reason).

    Registering the same upload again queues it again; its counts stay until a run replaces them.
    """
    with warehouse.transaction() as connection:
        connection.execute(
            """
            INSERT INTO ingest.uploads (upload_id, company_id, form_type, filespec_version, source, sha256, bytes,
                                        received_at, status, error)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (upload_id) DO UPDATE SET
                source = excluded.source, status = excluded.status, error = excluded.error,
                filespec_version = excluded.filespec_version
            """,
            [upload_id, company_id, form_type, filespec_version, source, sha256, size, now(), status, error],
        )


def update_upload(warehouse: Warehouse, upload_id: str, **values) -> None:
    """Set columns of one upload row (a short write; safe from any step)."""
    if not values:
        return
    assignments = ", ".join(f"{column} = ?" for column in values)
    with warehouse.transaction() as connection:
        connection.execute(f"UPDATE ingest.uploads SET {assignments} WHERE upload_id = ?", [*values.values(), upload_id])


def _resume_hint(upload_id: str) -> str:
    return f"`ingest-pipeline retry {upload_id}` resumes it where it stopped"


def cancelled_error(upload_id: str, stage: str | None) -> str:
    """The error of an upload whose run an operator cancelled (`ingest-pipeline cancel`, the UI's Terminate)."""
    during = f" during {stage}" if stage else ""
    return f"Cancelled by the operator{during}; {_resume_hint(upload_id)}, `ingest-pipeline run` on the file starts it again."


def worker_lost_error(upload_id: str, lost: str) -> str:
    """The error of an upload whose distributed run lost a step's Celery worker (`lost`: the
    watch's sentence, core/worker_watch.py)."""
    return f"{lost.removesuffix('.')}; {_resume_hint(upload_id)}."


def mark_failed(warehouse: Warehouse, upload_id: str, error: str) -> None:
    update_upload(warehouse, upload_id, status=FAILED, error=error, finished_at=now())


def mark_failed_if_unfinished(warehouse: Warehouse, upload_id: str, error: str) -> bool:
    """End a queued or processing upload failed; returns whether it was still unfinished."""
    with warehouse.transaction() as connection:
        changed = connection.execute(
            "UPDATE ingest.uploads SET status = ?, error = ?, finished_at = ? WHERE upload_id = ? AND status IN (?, ?) "
            "RETURNING upload_id",
            [FAILED, error, now(), upload_id, QUEUED, PROCESSING],
        ).fetchall()
    return bool(changed)


_UPLOAD_SELECT = f"SELECT {UPLOAD_COLUMNS}, stage, chunks_total, chunks_done, run_id FROM ingest.uploads"


def _select_uploads(warehouse: Warehouse, condition: str = "", parameters: list | None = None) -> list[dict]:
    with warehouse.connect(write=False) as connection:
        cursor = connection.execute(f"{_UPLOAD_SELECT} {condition}", parameters or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def list_unfinished_uploads(warehouse: Warehouse) -> list[dict]:
    """The uploads still queued or processing."""
    return _select_uploads(warehouse, "WHERE status IN (?, ?)", [QUEUED, PROCESSING])


def get_upload(warehouse: Warehouse, upload_id: str) -> dict | None:
    found = _select_uploads(warehouse, "WHERE upload_id = ?", [upload_id])
    return found[0] if found else None


STATUSES = (QUEUED, PROCESSING, COMPLETED, FAILED)


def list_uploads(warehouse: Warehouse, limit: int | None = None, *, company_id: str | None = None,
                 form_type: str | None = None, status: str | None = None, since: dt.date | None = None) -> list[dict]:
    """The most recent uploads first, optionally only those of a company, a form type, a status, or
    received on or after a date (UTC). The values are query parameters, never SQL text."""
    conditions, parameters = [], []
    for column, value in (("company_id", company_id), ("form_type", form_type), ("status", status)):
        if value is not None:
            conditions.append(f"{column} = ?")
            parameters.append(value)
    if since is not None:
        conditions.append("received_at >= ?")
        parameters.append(dt.datetime.combine(since, dt.time()))
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    if limit:
        parameters.append(int(limit))
    return _select_uploads(warehouse, where + "ORDER BY received_at DESC, upload_id" + (" LIMIT ?" if limit else ""),
                           parameters)  # fmt: skip
