"""Per-stage timings for `ingest.stage_metrics`: wall and CPU seconds, peak memory, rows."""

import contextlib
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
        return {
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "peak_rss_mb": round(self.peak_rss_bytes / 2**20, 1),
            "rows": self.rows,
            "rows_per_second": round(self.rows / self.seconds) if self.seconds > 0 else 0,
        }


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
