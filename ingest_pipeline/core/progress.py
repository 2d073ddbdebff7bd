"""How far an upload has got, and how long the rest should take, learned from earlier uploads.

The model is deliberately simple: each stage costs a number of wall-clock seconds per row of the
upload, measured on the most recent completed uploads of the same form type (all form types when
it has none) from `ingest.stage_metrics`, plus a share of the time a run spends between stages
(starting step processes, say). A stage that runs per chunk is measured from its first chunk's
start to its last chunk's end, so parallel chunk steps count once. Within the scan stage the
chunks done tell how far it is; within another stage, the time it has been running so far.

`estimate` and `render_bar` are pure; `load_rates` and `UploadProgressReader` read the warehouse;
`ProgressBar` draws a one-line bar from a thread while a run goes.
"""

import dataclasses
import datetime as dt
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingest_pipeline.core.prepare import UploadWorkspace
from ingest_pipeline.core.uploads import COMPLETED, FAILED, QUEUED, get_upload, now
from ingest_pipeline.core.warehouse import Warehouse

STAGES = ("prepare", "scan", "columns", "merge", "publish")
HISTORY_UPLOADS = 10  # the most recent completed uploads that the rates are learned from
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class StageSample:
    """One row of `ingest.stage_metrics`."""

    upload_id: str
    stage: str
    started_at: dt.datetime
    seconds: float
    rows: int


@dataclass(frozen=True)
class UploadSample:
    """A completed upload the rates are learned from."""

    upload_id: str
    rows_total: int
    bytes: int | None
    wall_seconds: float | None  # finished_at - started_at


@dataclass(frozen=True)
class StageRates:
    """Seconds per row of each stage, learned from `uploads` earlier completed uploads."""

    seconds_per_row: dict[str, float]
    overhead_seconds: float  # per stage: run time outside the stages' own measurements
    bytes_per_row: float | None
    uploads: int
    basis: str  # what the rates were learned from, for people

    def stage_seconds(self, stage: str, rows: float) -> float:
        return self.seconds_per_row.get(stage, 0.0) * rows + self.overhead_seconds

    @classmethod
    def learn(cls, uploads: Iterable[UploadSample], samples: Iterable[StageSample], basis: str) -> "StageRates | None":
        """Rates from completed uploads and their stage metrics; None without any usable upload."""
        uploads = {u.upload_id: u for u in uploads if u.rows_total > 0}
        spans: dict[tuple[str, str], list[float]] = defaultdict(lambda: [float("inf"), float("-inf")])
        for sample in samples:
            if sample.upload_id not in uploads or sample.started_at is None:
                continue
            start = sample.started_at.timestamp()
            span = spans[sample.upload_id, sample.stage]
            span[0] = min(span[0], start)
            span[1] = max(span[1], start + (sample.seconds or 0.0))
        if not spans:
            return None
        seconds: dict[str, float] = defaultdict(float)
        rows: dict[str, int] = defaultdict(int)
        measured: dict[str, float] = defaultdict(float)
        for (upload_id, stage), (start, end) in spans.items():
            seconds[stage] += end - start
            rows[stage] += uploads[upload_id].rows_total
            measured[upload_id] += end - start
        overheads = [
            max(0.0, u.wall_seconds - measured[u.upload_id])
            for u in uploads.values()
            if u.wall_seconds is not None and u.upload_id in measured
        ]
        overhead = sum(overheads) / len(overheads) / len(STAGES) if overheads else 0.0
        sized = [u for u in uploads.values() if u.bytes]
        bytes_per_row = sum(u.bytes for u in sized) / sum(u.rows_total for u in sized) if sized else None
        return cls(
            seconds_per_row={stage: seconds[stage] / rows[stage] for stage in seconds if rows[stage]},
            overhead_seconds=overhead,
            bytes_per_row=bytes_per_row,
            uploads=len({upload_id for upload_id, _ in spans}),
            basis=basis,
        )


@dataclass(frozen=True)
class Progress:
    """Where an upload stands. `eta_seconds` None: no estimate (no history, or rows unknown)."""

    status: str
    stage: str | None
    chunks_done: int
    chunks_total: int | None
    rows_total: int | None  # known, or estimated from the file's size before it is counted
    rows_done: int
    elapsed_seconds: float | None
    rows_per_second: float | None
    eta_seconds: float | None
    fraction: float  # 0..1 of the whole upload's work; a failed upload's stops where it failed
    error: str | None = None  # a failed upload's sentence

    @property
    def finished(self) -> bool:
        return self.status in (COMPLETED, FAILED)


def estimate(
    *,
    status: str,
    stage: str | None,
    chunks_done: int | None,
    chunks_total: int | None,
    rows_total: int | None,
    size_bytes: int | None,
    elapsed_seconds: float | None,
    stage_elapsed_seconds: float | None,
    rates: StageRates | None,
    error: str | None = None,
) -> Progress:
    """The progress of one upload from its row of `ingest.uploads` and the learned rates.

    Args:
        status: queued, processing, completed or failed.
        stage: The stage it is in (`ingest.uploads.stage`): one of STAGES, `done`, or None.
        chunks_done: Chunks scanned so far.
        chunks_total: Chunks of the upload, once prepared.
        rows_total: Its records, once counted (None before; then `size_bytes` gives an estimate).
        size_bytes: The file's size.
        elapsed_seconds: Time since the upload started processing (or that it took, finished).
        stage_elapsed_seconds: Time in the current stage so far, when known.
        rates: The learned rates, or None when there are no earlier uploads.
        error: A failed upload's sentence.

    A queued upload has not started, whatever stage an earlier run left it in; a failed one's
    fraction is that of the start of the stage it failed in, so a failure never shows as a full bar.
    """
    done, total = chunks_done or 0, chunks_total or None
    rows = rows_total
    if rows is None and size_bytes and rates is not None and rates.bytes_per_row:
        rows = round(size_bytes / rates.bytes_per_row)
    finished = status in (COMPLETED, FAILED)
    started = status != QUEUED and stage in STAGES
    if status == COMPLETED:
        position = len(STAGES)
    elif status == QUEUED:
        position = 0
    elif stage == "done":
        position = len(STAGES) - 1 if status == FAILED else len(STAGES)
    else:
        position = STAGES.index(stage) if stage in STAGES else 0
    scan_fraction = min(1.0, done / total) if total else 0.0

    if status == COMPLETED:
        rows_done = rows_total or 0
    elif position > STAGES.index("scan"):
        rows_done = rows or 0
    elif stage == "scan":
        rows_done = round((rows or 0) * scan_fraction)
    else:
        rows_done = 0
    per_second = rows_done / elapsed_seconds if elapsed_seconds and elapsed_seconds > 0 and rows_done else None

    if status == COMPLETED:
        return Progress(status, stage, done, total, rows_total, rows_done, elapsed_seconds, per_second, 0.0, 1.0)

    # Each stage's weight in the whole: its expected seconds when known, else all stages alike.
    if rates is not None and rows is not None:
        weights = [rates.stage_seconds(s, rows) for s in STAGES]
    else:
        weights = [1.0] * len(STAGES)
    remaining_weights = []
    for index, weight in enumerate(weights):
        if index < position:
            remaining_weights.append(0.0)
        elif index > position:
            remaining_weights.append(weight)
        elif not started or finished:  # waiting in the queue, or failed in this stage: none of it counts as done
            remaining_weights.append(weight)
        elif STAGES[index] == "scan" and total:
            remaining_weights.append(weight * (1 - scan_fraction))
        elif stage_elapsed_seconds is not None and rates is not None and rows is not None:
            remaining_weights.append(max(0.0, weight - stage_elapsed_seconds))
        else:
            remaining_weights.append(weight)
    whole = sum(weights)
    fraction = 1 - sum(remaining_weights) / whole if whole > 0 else 0.0
    if finished:  # failed
        return Progress(status, stage, done, total, rows_total, rows_done, elapsed_seconds, per_second, 0.0, fraction,
                        error)  # fmt: skip
    eta = sum(remaining_weights) if rates is not None and rows is not None else None
    return Progress(status, stage, done, total, rows, rows_done, elapsed_seconds, per_second, eta, fraction)


def format_duration(seconds: float | None) -> str:
    """`1:02:03`, `2:03` or `0:07`; `-` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(rows_per_second: float | None) -> str:
    return "-" if rows_per_second is None else f"{rows_per_second:,.0f}"


def render_bar(progress: Progress, label: str, width: int = 80, whole: bool = False) -> str:
    """One line: `label [#####.....] 42% scan 3/8 chunks  12,345 rows/s  ETA 0:12`, cut to `width`
    unless `whole` (the last frame, which is not redrawn). A failed upload ends in the stage it
    failed in and its sentence: `label [##........] 20% failed in scan  1/8 chunks: <error>`."""
    if progress.status == FAILED:
        stage = f"failed in {progress.stage}" if progress.stage in STAGES else "failed"
    else:
        stage = progress.status if progress.finished else (progress.stage or progress.status)
    parts = [stage]
    if progress.chunks_total:
        parts.append(f"{progress.chunks_done}/{progress.chunks_total} chunks")
    if progress.rows_per_second is not None:
        parts.append(f"{format_rate(progress.rows_per_second)} rows/s")
    if not progress.finished:
        parts.append(f"ETA {format_duration(progress.eta_seconds)}")
    text = "  ".join(parts)
    percent = f"{progress.fraction * 100:3.0f}%"
    bar_width = max(10, min(30, width - len(label) - 62))  # not from `text`: the bar keeps its size as it changes
    filled = round(bar_width * max(0.0, min(1.0, progress.fraction)))
    line = f"{label} [{'#' * filled}{'.' * (bar_width - filled)}] {percent} {text}"
    if progress.status == FAILED and progress.error:
        line += f": {progress.error}"
    return line if whole else line[: max(1, width - 1)]


# --- reading the warehouse --------------------------------------------------------------------


def load_rates(connection: duckdb.DuckDBPyConnection, form_type: str | None, history_uploads: int = HISTORY_UPLOADS
               ) -> StageRates | None:  # fmt: skip
    """Rates from the form type's most recent completed uploads, else from all form types'."""
    for scope in ([form_type] if form_type else []) + [None]:
        where = "status = 'completed' AND rows_total > 0 AND started_at IS NOT NULL"
        params: list = []
        if scope is not None:
            where += " AND form_type = ?"
            params.append(scope)
        uploads = [
            UploadSample(upload_id, rows_total, size, seconds)
            for upload_id, rows_total, size, seconds in connection.execute(
                f"""
                SELECT upload_id, rows_total, bytes, epoch(finished_at) - epoch(started_at)
                FROM ingest.uploads WHERE {where}
                ORDER BY finished_at DESC NULLS LAST, upload_id LIMIT {int(history_uploads)}
                """,
                params,
            ).fetchall()
        ]
        if not uploads:
            continue
        samples = [
            StageSample(*row)
            for row in connection.execute(
                "SELECT upload_id, stage, started_at, seconds, rows FROM ingest.stage_metrics "
                "WHERE upload_id IN (SELECT unnest(?::VARCHAR[]))",
                [[u.upload_id for u in uploads]],
            ).fetchall()
        ]
        basis = (
            f"{len(uploads)} completed {scope} upload(s)"
            if scope
            else f"{len(uploads)} completed upload(s) of all form types"
        )
        rates = StageRates.learn(uploads, samples, basis)
        if rates is not None:
            return rates
    return None


def _seconds_between(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


class UploadProgressReader:
    """Reads an upload's progress from the warehouse (and its manifest, for the rows before the
    merge counts them); remembers when it saw the stage change, to time the current stage."""

    def __init__(
        self, warehouse: Warehouse, home: Path, upload_id: str, rates: dict[str, StageRates | None] | None = None,
        refresh: Callable[[UploadWorkspace], None] | None = None,
    ):  # fmt: skip
        self.warehouse = warehouse
        self.workspace = UploadWorkspace.of(home, upload_id)
        self._refresh = refresh  # distributed: brings the chunk steps' files from the work container
        self.upload_id = upload_id
        self._rates = {} if rates is None else rates  # by form type, shared between readers
        self._manifest_rows: int | None = None
        self._stage: str | None = None
        self._stage_seen = time.monotonic()

    def rates(self, form_type: str) -> StageRates | None:
        if form_type not in self._rates:
            with self.warehouse.connect(write=False) as connection:
                self._rates[form_type] = load_rates(connection, form_type)
        return self._rates[form_type]

    def read(self) -> Progress | None:
        upload = get_upload(self.warehouse, self.upload_id)
        if upload is None:
            return None
        return self.progress_of(upload)

    def progress_of(self, upload: dict) -> Progress:
        if upload["stage"] != self._stage:
            self._stage, self._stage_seen = upload["stage"], time.monotonic()
            stage_elapsed = None  # not seen from its start
        else:
            stage_elapsed = time.monotonic() - self._stage_seen
        rows = upload["rows_total"]
        if rows is None and upload["stage"] not in (None, "prepare"):
            rows = self._rows_from_manifest()
        finished = upload["status"] in (COMPLETED, FAILED)
        elapsed = _seconds_between(upload["started_at"], upload["finished_at"] if finished else now())
        chunks_done = upload["chunks_done"]
        if upload["stage"] == "scan":
            if self._refresh is not None and not finished:
                self._refresh(self.workspace)
            chunks_done = max(chunks_done or 0, scanned_chunks(self.workspace))
        return estimate(
            status=upload["status"], stage=upload["stage"], chunks_done=chunks_done,
            chunks_total=upload["chunks_total"], rows_total=rows, size_bytes=upload["bytes"],
            elapsed_seconds=elapsed, stage_elapsed_seconds=stage_elapsed, rates=self.rates(upload["form_type"]),
            error=upload["error"],
        )  # fmt: skip

    def _rows_from_manifest(self) -> int | None:
        if self._manifest_rows is None and self.workspace.manifest.exists():
            try:
                self._manifest_rows = self.workspace.load_manifest().rows_total
            except Exception:  # mid-write or from an older version: try again on the next poll
                return None
        return self._manifest_rows


def scanned_chunks(workspace: UploadWorkspace) -> int:
    """Chunks scanned so far: each scan step leaves its metrics file in the work folder."""
    return sum(1 for _ in workspace.metrics.glob("scan-*.json")) if workspace.metrics.exists() else 0


def progress_of_uploads(warehouse: Warehouse, home: Path, uploads: list[dict]) -> dict[str, Progress]:
    """The progress of each of `uploads` (rows of `ingest.uploads`), by upload id."""
    rates: dict[str, StageRates | None] = {}
    return {
        u["upload_id"]: UploadProgressReader(warehouse, home, u["upload_id"], rates).progress_of(u) for u in uploads
    }


def status_record(upload: dict, progress: Progress) -> dict:
    """An upload's row with its progress, JSON-ready (times as ISO 8601 text, UTC), for `status --json`.

    `chunks_done` is counted as the listing counts it (the chunk steps write files, not the row).
    """
    record = {key: value.isoformat() if isinstance(value, dt.datetime) else value for key, value in upload.items()}
    record.update(chunks_done=progress.chunks_done, rows_done=progress.rows_done,
                  rows_per_second=None if progress.rows_per_second is None else round(progress.rows_per_second, 1),
                  eta_seconds=None if progress.finished or progress.eta_seconds is None else round(progress.eta_seconds, 1))  # fmt: skip
    return record


def estimate_remaining_seconds(
    warehouse: Warehouse, form_type: str, stage: str, rows_total: int
) -> tuple[float | None, str]:
    """Seconds the stages from `stage` on should take for `rows_total` rows, and the estimate's basis.

    For the stages' own metadata (the UI); (None, reason) when there is nothing to learn from.
    """
    with warehouse.connect(write=False) as connection:
        rates = load_rates(connection, form_type)
    if rates is None:
        return None, "no completed uploads to learn from yet"
    progress = estimate(status="processing", stage=stage, chunks_done=0, chunks_total=None, rows_total=rows_total,
                        size_bytes=None, elapsed_seconds=None, stage_elapsed_seconds=None, rates=rates)  # fmt: skip
    return progress.eta_seconds, rates.basis


class ProgressBar:
    """A one-line bar redrawn on file descriptor `fd` every `interval` seconds from a thread.

    Reading problems (the warehouse busy, say) skip a frame; nothing here fails the work it shows.
    """

    def __init__(self, fd: int, read: Callable[[], Progress | None], label: str, interval: float = POLL_SECONDS):
        self.fd = fd
        self.read = read
        self.label = label
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-progress", daemon=True)
        self._last: str | None = None
        self._fraction = 0.0  # the most shown so far: the bar never moves back

    def __enter__(self) -> "ProgressBar":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._draw(final=True)
        if self._last is not None:
            self._write("\n")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def _draw(self, final: bool = False) -> None:
        try:
            progress = self.read()
        except Exception:
            return
        if progress is None:
            return
        # Estimates move back at times (the rows counted after prepare, a stage faster than learned);
        # the bar does not: it holds until the work catches up. A completed upload fills it.
        self._fraction = max(self._fraction, progress.fraction)
        progress = dataclasses.replace(progress, fraction=self._fraction)
        try:
            width = os.get_terminal_size(self.fd).columns or 100  # 0: a terminal that has not said
        except OSError:
            width = 100
        line = render_bar(progress, self.label, width, whole=final)
        if line != self._last:
            self._write("\r" + line + "\x1b[K")
            self._last = line

    def _write(self, text: str) -> None:
        try:
            os.write(self.fd, text.encode("utf-8", "replace"))
        except OSError:
            pass
