"""Jobs over the upload-partitioned assets."""

import os

from dagster import AssetSelection, define_asset_job

from ingest_pipeline.core.prepare import TARGET_CHUNK_BYTES
from ingest_pipeline.defs.assets import (
    INGEST_JOB_NAME,
    VALIDATE_JOB_NAME,
    chunk_scans,
    column_profiles,
    ingest_assets,
    upload_chunks,
)
from ingest_pipeline.defs.distributed import DEPLOYMENT
from ingest_pipeline.defs.partitions import uploads_partitions

# Each step runs in its own process, so chunks are scanned in parallel. The processes fork from a
# server that has already imported the pipeline and the instance's storage (defs/step_preload.py):
# a step starts in a fraction of a second instead of paying the imports (Dagster, its SQLite
# storage, polars, pandera, DuckDB) again.
MULTIPROCESS_EXECUTION = {
    "config": {
        "multiprocess": {
            "start_method": {"forkserver": {"preload_modules": ["ingest_pipeline.defs.step_preload"]}},
        }
    }
}
IN_PROCESS_EXECUTION = {"config": {"in_process": {}}}


IN_PROCESS_MAX_BYTES_ENV = "INGEST_IN_PROCESS_MAX_BYTES"
# On two cores one chunk's scan already keeps both busy much of the time (polars is multi-threaded),
# so a process per step mostly adds its start-up and memory (measured: 5M rows, 33.8 s and a 912 MiB
# process tree in one process, 45.2 s and 1,998 MiB with one process per step); up to this size
# such machines run uploads in one process.
FEW_CORES, FEW_CORES_IN_PROCESS_MAX_BYTES = 2, 1024 * 2**20


def in_process_max_bytes() -> int:
    """Uploads smaller than this run in one process: $INGEST_IN_PROCESS_MAX_BYTES, else 1 GiB on a
    machine with at most two cores, else one chunk (64 MiB)."""
    configured = os.environ.get(IN_PROCESS_MAX_BYTES_ENV, "").strip()
    if configured:
        return int(configured)
    return FEW_CORES_IN_PROCESS_MAX_BYTES if (os.cpu_count() or 1) <= FEW_CORES else TARGET_CHUNK_BYTES


def runs_in_process(size_bytes: int | None) -> bool:
    """An upload smaller than `in_process_max_bytes()` runs in one process, where process start-up
    would cost more than scanning chunks in parallel gains. Used by the command line's `auto`,
    backfills and the sensor; every chunk is still its own step, re-executable alone."""
    return size_bytes is not None and size_bytes < in_process_max_bytes()


def execution_config(in_process: bool) -> dict:
    """The run's executor config; distributed (core/deployment.py), always the Celery or k8s executor's."""
    if DEPLOYMENT.distributed:
        return {"config": DEPLOYMENT.executor_config()}
    return IN_PROCESS_EXECUTION if in_process else MULTIPROCESS_EXECUTION


ingest_upload_job = define_asset_job(
    INGEST_JOB_NAME,
    config={"execution": execution_config(in_process=False)},
    selection=AssetSelection.assets(*ingest_assets),
    partitions_def=uploads_partitions,
    description="Ingest one upload: prepare, scan every chunk, judge columns, merge into DuckDB, publish accepted rows.",
)

validate_upload_job = define_asset_job(
    VALIDATE_JOB_NAME,
    config={"execution": execution_config(in_process=False)},
    selection=AssetSelection.assets(upload_chunks, chunk_scans, column_profiles),
    partitions_def=uploads_partitions,
    description="Prepare and scan an upload and judge its columns, publishing nothing and leaving its status alone.",
)
