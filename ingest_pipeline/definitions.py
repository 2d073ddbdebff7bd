"""The Dagster code location: builds `defs` and nothing else."""

from dagster import Definitions, JobDefinition

from ingest_pipeline.defs.assets import ingest_assets
from ingest_pipeline.defs.jobs import INGEST_JOB_NAME, ingest_upload_job, validate_upload_job
from ingest_pipeline.defs.resources import landing_storage_resource_from_env
from ingest_pipeline.defs.settings import IngestSettings

defs = Definitions(
    assets=ingest_assets,
    jobs=[ingest_upload_job, validate_upload_job],
    resources={"ingest_settings": IngestSettings(), "landing": landing_storage_resource_from_env()},
)


def ingest_upload_job_def() -> JobDefinition:
    """The ingest job, for `reconstructable` (the command line runs it in step processes)."""
    return defs.resolve_job_def(INGEST_JOB_NAME)
