"""Per-stage timings for `ingest.stage_metrics`: wall and CPU seconds, peak memory, rows."""

import contextlib
import datetime as dt
import json
import resource
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ingest_pipeline.core.uploads import now


@dataclass
class StageMetrics:
    upload_id: str
    stage: str
    chunk: int | None
    started_at: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    rows: int = 0

    def as_metadata(self) -> dict[str, float | int]:
        """The figures as Dagster materialization metadata (plotted across partitions in the UI)."""
        return figures(self.seconds, self.cpu_seconds, self.peak_rss_bytes, self.rows)

    @property
    def ended_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.started_at) + dt.timedelta(seconds=self.seconds)


def figures(seconds: float, cpu_seconds: float, peak_rss_bytes: int, rows: int) -> dict[str, float | int]:
    """seconds, cpu_seconds, peak_rss_mb, rows and rows_per_second, as every stage reports them."""
    seconds = round(seconds, 3)  # rows per second from the seconds shown, so the figures agree
    return {
        "seconds": seconds,
        "cpu_seconds": round(cpu_seconds, 3),
        "peak_rss_mb": round(peak_rss_bytes / 2**20, 1),
        "rows": rows,
        "rows_per_second": round(rows / seconds) if seconds > 0 else 0,
    }


def scan_figures(chunks: list[StageMetrics]) -> dict[str, float | int]:
    """The chunk scans as one stage, and where its time went.

    `seconds` is wall time, from the first chunk's start to the last one's end (chunks may run side
    by side); `chunk_seconds_total` is the chunks' own time added up, so `parallelism` is how many
    ran at once on average; the slowest chunk bounds how soon the stage can end.
    """
    if not chunks:
        return {**figures(0.0, 0.0, 0, 0), "chunks": 0}
    start = min(dt.datetime.fromisoformat(m.started_at) for m in chunks)
    wall = max((max(m.ended_at for m in chunks) - start).total_seconds(), max(m.seconds for m in chunks))
    total = sum(m.seconds for m in chunks)
    slowest = max(chunks, key=lambda m: m.seconds)
    rows = sum(m.rows for m in chunks)
    return {
        **figures(wall, sum(m.cpu_seconds for m in chunks), max(m.peak_rss_bytes for m in chunks), rows),
        "chunks": len(chunks),
        "chunk_seconds_total": round(total, 3),
        "chunk_seconds_mean": round(total / len(chunks), 3),
        "chunk_seconds_max": round(slowest.seconds, 3),
        "slowest_chunk": slowest.chunk or 0,
        "parallelism": round(total / wall, 2) if wall > 0 else 1.0,
    }


def stage_seconds(metrics: list[StageMetrics]) -> dict[str, float]:
    """`<stage>_seconds` for each stage measured so far (the scan as wall time across its chunks)."""
    by_stage: dict[str, list[StageMetrics]] = {}
    for m in metrics:
        by_stage.setdefault(m.stage, []).append(m)
    result = {}
    for stage, measured in by_stage.items():
        seconds = scan_figures(measured)["seconds"] if stage == "scan" else sum(m.seconds for m in measured)
        result[f"{stage}_seconds"] = round(seconds, 3)
    return result


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def measure(upload_id: str, stage: str, chunk: int | None = None) -> Iterator[StageMetrics]:
    """Measure the enclosed work; set `.rows` inside. Peak RSS is the process's own high-water
    mark, which is the stage's when each step runs in its own process (multiprocess executor)."""
    metrics = StageMetrics(upload_id, stage, chunk, now().isoformat())
    wall, cpu = time.perf_counter(), _cpu_seconds()
    try:
        yield metrics
    finally:
        metrics.seconds = time.perf_counter() - wall
        metrics.cpu_seconds = _cpu_seconds() - cpu
        metrics.peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_metrics(metrics: StageMetrics, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = metrics.stage if metrics.chunk is None else f"{metrics.stage}-{metrics.chunk:05d}"
    path = folder / f"{name}.json"
    path.write_text(json.dumps(asdict(metrics)))
    return path


def read_all_metrics(folder: Path) -> list[StageMetrics]:
    return [StageMetrics(**json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]
