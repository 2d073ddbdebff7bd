"""The uploads as an operator reads them: who sent what, when, and how it ended (for the UI's views).

Read with one read-only connection (the caller's), so a view never holds the warehouse long.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import PurePosixPath

import duckdb

from ingest_pipeline.core.metrics import StageMetrics, stage_seconds
from ingest_pipeline.core.quality import format_percent

_COLUMNS = ("upload_id, company_id, form_type, source, received_at, status, stage, rows_total, rows_accepted, "
            "rows_rejected, error, run_id, started_at, finished_at")  # fmt: skip


@dataclass(frozen=True)
class UploadLine:
    """One upload, as a line of the uploads view."""

    upload_id: str
    company_id: str
    form_type: str
    source: str
    received_at: dt.datetime
    status: str
    stage: str | None
    rows_total: int | None
    rows_accepted: int | None
    rows_rejected: int | None
    error: str | None
    run_id: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @property
    def file_name(self) -> str:
        """The file's own name, whether the source is a path or an `azure://` address."""
        return PurePosixPath(self.source.replace("\\", "/")).name or self.source

    @property
    def rejected_share(self) -> float | None:
        if not self.rows_total or self.rows_rejected is None:
            return None
        return self.rows_rejected / self.rows_total

    @property
    def rejected_percent(self) -> str:
        share = self.rejected_share
        return "" if share is None else format_percent(share)

    @property
    def seconds(self) -> float | None:
        """From the start of prepare to the end (completed or failed)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.started_at).total_seconds())

    @property
    def status_text(self) -> str:
        """`completed`, `failed`, `queued`, or `processing (scan)` with the stage it is at."""
        return f"{self.status} ({self.stage})" if self.status == "processing" and self.stage else self.status


def recent_uploads(connection: duckdb.DuckDBPyConnection, form_type: str | None = None, limit: int = 100) -> list[UploadLine]:
    """The most recently received uploads (of one form type, or all), newest first."""
    where, parameters = ("WHERE form_type = ?", [form_type]) if form_type is not None else ("", [])
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM ingest.uploads {where} ORDER BY received_at DESC, upload_id LIMIT ?",
        [*parameters, int(limit)],
    ).fetchall()
    return [UploadLine(*row) for row in rows]


def upload_line(connection: duckdb.DuckDBPyConnection, upload_id: str) -> UploadLine | None:
    row = connection.execute(f"SELECT {_COLUMNS} FROM ingest.uploads WHERE upload_id = ?", [upload_id]).fetchone()
    return UploadLine(*row) if row else None


def status_counts(connection: duckdb.DuckDBPyConnection, form_type: str | None = None) -> dict[str, int]:
    """How many uploads are queued, processing, completed and failed (of one form type, or all)."""
    where, parameters = ("WHERE form_type = ?", [form_type]) if form_type is not None else ("", [])
    found = dict(connection.execute(f"SELECT status, count(*) FROM ingest.uploads {where} GROUP BY status",
                                    parameters).fetchall())  # fmt: skip
    return {status: int(found.get(status, 0)) for status in ("queued", "processing", "completed", "failed")}


def upload_stage_seconds(connection: duckdb.DuckDBPyConnection, upload_id: str) -> dict[str, float]:
    """`<stage>_seconds` of one upload, from `ingest.stage_metrics` (written by its merge and publish)."""
    rows = connection.execute(
        "SELECT upload_id, stage, chunk, started_at, seconds, cpu_seconds, peak_rss_bytes, rows "
        "FROM ingest.stage_metrics WHERE upload_id = ? AND started_at IS NOT NULL",
        [upload_id],
    ).fetchall()
    metrics = [StageMetrics(r[0], r[1], r[2], r[3].isoformat(), r[4] or 0.0, r[5] or 0.0, r[6] or 0, r[7] or 0)
               for r in rows]  # fmt: skip
    return stage_seconds(metrics)
