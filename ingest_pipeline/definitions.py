"""The Dagster code location: builds `defs` and nothing else.

Dagster imports this module once in each of its processes (code server, run worker, step worker)
and keeps it for the process's life: the collector is paused while it loads (core/startup.py).
"""

from ingest_pipeline.core.startup import collector_paused

with collector_paused():
    from dagster import Definitions, JobDefinition

    from ingest_pipeline.defs.assets import VALIDATE_JOB_NAME, ingest_assets
    from ingest_pipeline.defs.checks import ingest_checks
    from ingest_pipeline.defs.distributed import DEPLOYMENT, BlobPickleIOManager
    from ingest_pipeline.defs.jobs import INGEST_JOB_NAME, ingest_upload_job, validate_upload_job
    from ingest_pipeline.defs.maintenance import maintenance_sensors
    from ingest_pipeline.defs.reports import REPORT_JOB_NAME, client_report, report_sensors, upload_report_job
    from ingest_pipeline.defs.resources import landing_storage_resource_from_env
    from ingest_pipeline.defs.run_health import dead_run_sensor
    from ingest_pipeline.defs.sensors import upload_sensor
    from ingest_pipeline.defs.settings import IngestSettings
    from ingest_pipeline.defs.step_pool import local_executor
    from ingest_pipeline.defs.upload_views import upload_views

    executor = local_executor  # local: multiprocess (chunk scans in a step pool) or in process
    if DEPLOYMENT.on_celery:
        from ingest_pipeline.defs.celery_executor import watched_celery_executor as executor
    elif DEPLOYMENT.distributed:  # kubernetes
        from dagster_k8s import k8s_job_executor as executor
    defs = Definitions(
        assets=[*ingest_assets, client_report, upload_views],
        asset_checks=ingest_checks,
        jobs=[ingest_upload_job, validate_upload_job, upload_report_job],
        sensors=[upload_sensor, dead_run_sensor, *report_sensors, *maintenance_sensors],
        resources={
            "ingest_settings": IngestSettings(),
            "landing": landing_storage_resource_from_env(),
            # Distributed (core/deployment.py): step outputs in the work container, steps on Celery
            # workers or in Kubernetes pods.
            **({"io_manager": BlobPickleIOManager()} if DEPLOYMENT.distributed else {}),
        },
        executor=executor,
    )


def ingest_upload_job_def() -> JobDefinition:
    """The ingest job, for `reconstructable` (the command line runs it in step processes)."""
    return defs.resolve_job_def(INGEST_JOB_NAME)


def validate_upload_job_def() -> JobDefinition:
    """The validate-only job, for `reconstructable`."""
    return defs.resolve_job_def(VALIDATE_JOB_NAME)


def upload_report_job_def() -> JobDefinition:
    """The client report job, for `reconstructable` (the command line runs it after the ingest job)."""
    return defs.resolve_job_def(REPORT_JOB_NAME)
