"""Jobs over the upload-partitioned assets."""

from dagster import AssetSelection, define_asset_job

from ingest_pipeline.core.step_processes import STEP_PRELOAD_MODULE, in_process_max_bytes, runs_in_process  # noqa: F401
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

# Steps run in processes of their own, so chunks are scanned in parallel: the chunk scans in a pool
# of long-lived step processes (defs/step_pool.py), every other step in a new one. The processes fork
# from a server that has already imported the pipeline and the instance's storage
# (defs/step_preload.py; the command line starts it early, core/step_processes.py): a step starts
# in a fraction of a second instead of paying the imports (Dagster, its SQLite storage, polars,
# pandera, DuckDB) again.
MULTIPROCESS_EXECUTION = {
    "config": {
        "multiprocess": {
            "start_method": {"forkserver": {"preload_modules": [STEP_PRELOAD_MODULE]}},
        }
    }
}
IN_PROCESS_EXECUTION = {"config": {"in_process": {}}}


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
