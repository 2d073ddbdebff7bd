"""Jobs over the upload-partitioned assets."""

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
from ingest_pipeline.defs.partitions import uploads_partitions

# Each step runs in its own process, so chunks are scanned in parallel. The processes fork from a
# server that has already imported the pipeline: a step starts in a fraction of a second instead
# of paying the imports (Dagster, polars, pandera, DuckDB, Azure) again.
MULTIPROCESS_EXECUTION = {
    "config": {
        "multiprocess": {
            "start_method": {"forkserver": {"preload_modules": ["ingest_pipeline.definitions"]}},
        }
    }
}
IN_PROCESS_EXECUTION = {"config": {"in_process": {}}}


def runs_in_process(size_bytes: int | None) -> bool:
    """An upload smaller than one chunk runs in one process: there is nothing to scan in parallel,
    and process start-up would dominate. Used by the command line's `auto`, backfills and the sensor."""
    return size_bytes is not None and size_bytes < TARGET_CHUNK_BYTES


def execution_config(in_process: bool) -> dict:
    return IN_PROCESS_EXECUTION if in_process else MULTIPROCESS_EXECUTION

ingest_upload_job = define_asset_job(
    INGEST_JOB_NAME,
    config={"execution": MULTIPROCESS_EXECUTION},
    selection=AssetSelection.assets(*ingest_assets),
    partitions_def=uploads_partitions,
    description="Ingest one upload: prepare, scan every chunk, judge columns, merge into DuckDB, publish accepted rows.",
)

validate_upload_job = define_asset_job(
    VALIDATE_JOB_NAME,
    config={"execution": MULTIPROCESS_EXECUTION},
    selection=AssetSelection.assets(upload_chunks, chunk_scans, column_profiles),
    partitions_def=uploads_partitions,
    description="Prepare and scan an upload and judge its columns, publishing nothing and leaving its status alone.",
)
