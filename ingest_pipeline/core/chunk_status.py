"""Where each chunk of an upload stands: queued, processing, completed or failed (seed 001's chunk status).

A scan step records its chunk in the upload's work folder (`chunk_status/chunk-NNNNN.json`), not
in the warehouse: chunk steps never wait for the warehouse writer (another upload's long merge),
and a file per chunk needs no lock among parallel steps. `chunk_statuses` joins these files with
the manifest's chunks (first row, rows); once the work folder is gone (retention), the same list
is rebuilt from the warehouse: the scan's rows per chunk in `ingest.stage_metrics` and the
rejected rows in `ingest.rejects`.
"""

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ingest_pipeline.core.prepare import UploadWorkspace
from ingest_pipeline.core.uploads import COMPLETED, FAILED, PROCESSING, QUEUED, now

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkStatus:
    chunk: int  # 1-based, as the scan steps (`chunk_NNNNN`) and `ingest.stage_metrics.chunk`
    first_row: int
    rows: int
    status: str  # queued, processing, completed, failed
    # Known once the chunk is scanned: the rows its cells reject; once the upload is merged, also
    # those rejected by `unique` across chunks (`with_merged_rejects`).
    rejected_rows: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None


def _status_folder(workspace: UploadWorkspace) -> Path:
    return workspace.root / "chunk_status"


def status_path(workspace: UploadWorkspace, chunk: int) -> Path:
    """The file that says where `chunk` stands."""
    return _status_folder(workspace) / f"chunk-{chunk:05d}.json"


def _write(workspace: UploadWorkspace, chunk: int, **values) -> None:
    """Best effort: a status file that cannot be written never fails the scan it describes."""
    folder = _status_folder(workspace)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".chunk-{chunk:05d}.{os.getpid()}.tmp"
        temp.write_text(json.dumps(values))
        os.replace(temp, status_path(workspace, chunk))
    except OSError as error:
        logger.warning("could not record chunk %d's status in %s: %s", chunk, folder, error)


class ChunkRecorder:
    """A chunk's scan under way: `done` records it completed."""

    def __init__(self, workspace: UploadWorkspace, chunk: int, started_at: str, record: bool = True):
        self.workspace, self.chunk, self.started_at, self.record = workspace, chunk, started_at, record

    def done(self, rejected_rows: int) -> None:
        """The chunk is scanned, with this many rejected rows."""
        if self.record:
            _write(self.workspace, self.chunk, status=COMPLETED, started_at=self.started_at,
                   finished_at=now().isoformat(), rejected_rows=int(rejected_rows))  # fmt: skip


def start_chunk(workspace: UploadWorkspace, chunk: int) -> ChunkRecorder:
    """A scan step starts its chunk: `processing` until `.done(rejected_rows)`. A chunk whose step
    fails or dies stays `processing` in its file; `chunk_statuses` shows it failed once the upload
    has failed (a failing chunk fails its upload)."""
    started_at = now().isoformat()
    if workspace.removal_note.exists():  # removed by retention: the scan fails with the note's sentence
        return ChunkRecorder(workspace, chunk, started_at, record=False)
    _write(workspace, chunk, status=PROCESSING, started_at=started_at)
    return ChunkRecorder(workspace, chunk, started_at)


def chunk_statuses(workspace: UploadWorkspace, upload_status: str) -> list[ChunkStatus] | None:
    """The chunks from the work folder, or None when it has no manifest (not prepared yet, or removed).

    A chunk still `processing` when its upload has failed is reported failed: its step died with
    the run.
    """
    try:
        manifest = workspace.load_manifest() if workspace.manifest.exists() else None
    except Exception:  # removed by retention, or mid-write: the caller falls back
        return None
    if manifest is None:
        return None
    found = []
    for info in manifest.chunks:
        try:
            values = json.loads(status_path(workspace, info.index).read_text())
        except (FileNotFoundError, ValueError):
            # No file: not started yet, or scanned before chunks recorded their status.
            values = {"status": COMPLETED if upload_status == COMPLETED else QUEUED}
        status = values.get("status", QUEUED)
        if status == PROCESSING and upload_status == FAILED:
            status = FAILED
        found.append(ChunkStatus(chunk=info.index, first_row=info.first_row, rows=info.records, status=status,
                                 rejected_rows=values.get("rejected_rows"), started_at=values.get("started_at"),
                                 finished_at=values.get("finished_at"), error=values.get("error")))  # fmt: skip
    return found


def chunk_statuses_from_warehouse(connection, upload_id: str) -> list[ChunkStatus]:
    """The chunks of a merged upload, from `ingest.stage_metrics` and `ingest.rejects` (no work folder needed)."""
    import datetime as dt

    rows = connection.execute(
        """
        WITH chunks AS (
            SELECT chunk, rows, started_at, seconds,
                   1 + coalesce(sum(rows) OVER (ORDER BY chunk ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS first_row
            FROM ingest.stage_metrics WHERE upload_id = ? AND stage = 'scan' AND chunk IS NOT NULL
        )
        SELECT c.chunk, c.first_row, c.rows, c.started_at, c.seconds,
               (SELECT count(*) FROM ingest.rejects r
                WHERE r.upload_id = ? AND r.row_number BETWEEN c.first_row AND c.first_row + c.rows - 1)
        FROM chunks c ORDER BY c.chunk
        """,
        [upload_id, upload_id],
    ).fetchall()
    return [
        ChunkStatus(chunk=chunk, first_row=first_row, rows=count, status=COMPLETED, rejected_rows=rejected,
                    started_at=started.isoformat() if started else None,
                    finished_at=(started + dt.timedelta(seconds=seconds or 0)).isoformat() if started else None)
        for chunk, first_row, count, started, seconds, rejected in rows
    ]  # fmt: skip


def with_merged_rejects(connection, upload_id: str, chunks: list[ChunkStatus]) -> list[ChunkStatus]:
    """The chunks with `rejected_rows` from `ingest.rejects` (once the merge wrote it): a scan
    counts the rows its own cells reject, the merge adds those rejected by `unique` across chunks."""
    if not chunks:
        return chunks
    counts = dict(
        connection.execute(
            """
            SELECT c.chunk, count(r.row_number)
            FROM (SELECT unnest(?::INTEGER[]) AS chunk, unnest(?::BIGINT[]) AS lo, unnest(?::BIGINT[]) AS hi) c
            LEFT JOIN ingest.rejects r ON r.upload_id = ? AND r.row_number BETWEEN c.lo AND c.hi
            GROUP BY c.chunk
            """,
            [[c.chunk for c in chunks], [c.first_row for c in chunks], [c.first_row + c.rows - 1 for c in chunks], upload_id],
        ).fetchall()
    )
    return [replace(c, rejected_rows=counts.get(c.chunk, c.rejected_rows)) for c in chunks]


def chunks_of_upload(warehouse, home: Path, upload: dict, refresh: Callable[[UploadWorkspace], None] | None = None) -> list[ChunkStatus]:
    """An upload's chunks as the HTTP API and `status UPLOAD_ID` show them: from the work folder
    while there is one (with `rejected_rows` from `ingest.rejects` once merged), else, for an ended
    upload, from the warehouse. `refresh` brings an unfinished upload's status files up to date
    first (distributed: from the work container, where the chunk steps on other machines write)."""
    upload_id = upload["upload_id"]
    workspace = UploadWorkspace.of(home, upload_id)
    if refresh is not None and upload["status"] not in (COMPLETED, FAILED):
        refresh(workspace)
    chunks = chunk_statuses(workspace, upload["status"])
    merged = upload["rows_rejected"] is not None  # the merge wrote ingest.rejects
    if merged or (chunks is None and upload["status"] in (COMPLETED, FAILED)):
        with warehouse.connect(write=False) as connection:
            if chunks is None:
                chunks = chunk_statuses_from_warehouse(connection, upload_id)
            elif merged:
                chunks = with_merged_rejects(connection, upload_id, chunks)
    return chunks or []


def as_dicts(chunks: list[ChunkStatus]) -> list[dict]:
    return [asdict(c) for c in chunks]
