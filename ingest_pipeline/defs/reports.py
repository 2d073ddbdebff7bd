"""`client_report`: each upload's .xlsx report for its client, for completed and failed uploads alike.

The report must show how the upload ended, so it is written once the ingest run is over, by its
own small run (`upload_report` job): materialize it from the UI, run `ingest-pipeline report`, or
pass `--report` to `ingest-pipeline run`; turn on the two sensors below to write one after every
ingest run (they are off by default: a report of a huge upload takes a while). It is not a step of the ingest run: the
report says how the upload ended, which is known only once publishing (accepted_rows) is over, and a
gated upload, whose run fails there, needs its report most.
"""

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunStatusSensorContext,
    SkipReason,
    asset,
    define_asset_job,
    run_status_sensor,
)

from ingest_pipeline.core.client_report import report_path, write_client_report
from ingest_pipeline.defs.assets import INGEST_GROUP, upload_findings
from ingest_pipeline.defs.distributed import DEPLOYMENT, WAREHOUSE_TAGS
from ingest_pipeline.defs.jobs import execution_config, ingest_upload_job
from ingest_pipeline.defs.partitions import PARTITION_TAG, uploads_partitions
from ingest_pipeline.defs.settings import IngestSettings

REPORT_JOB_NAME = "upload_report"
INLINE_REPORT_TAG = "ingest/report"  # set on runs whose launcher writes the report itself


@asset(
    partitions_def=uploads_partitions,
    group_name=INGEST_GROUP,
    deps=[upload_findings],
    kinds={"excel"},
    tags={"stage": "report"},
    op_tags=WAREHOUSE_TAGS,
)
def client_report(context: AssetExecutionContext, ingest_settings: IngestSettings) -> MaterializeResult:
    """The upload's client report (.xlsx under <home>/reports): summary, problems, messages and highlighted rejected rows."""
    upload_id = context.partition_key
    home = ingest_settings.home_path
    report = write_client_report(ingest_settings.warehouse(), upload_id, report_path(home, upload_id), home=home,
                                 filespecs=ingest_settings.filespecs_path)  # fmt: skip
    context.log.info(f"{upload_id}: report of the {report.status} upload written to {report.path}")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(report.path)),
            "bytes": report.path.stat().st_size,
            "upload_status": report.status,
            "filespec": report.spec_source,
            "header_cells": report.header_cells if report.header_cells is not None else MetadataValue.null(),
        }
    )


upload_report_job = define_asset_job(
    REPORT_JOB_NAME,
    # Distributed, the Celery or k8s executor needs its config (local: the default executor, unconfigured).
    config={"execution": execution_config(in_process=True)} if DEPLOYMENT.distributed else None,
    selection=AssetSelection.assets(client_report),
    partitions_def=uploads_partitions,
    description="Write an upload's client report, after its ingest run has ended (completed or failed).",
)


def _report_request(context: RunStatusSensorContext) -> RunRequest | SkipReason:
    run = context.dagster_run
    upload_id = run.tags.get(PARTITION_TAG)
    if not upload_id:
        return SkipReason(f"run {run.run_id} has no upload partition")
    if run.tags.get(INLINE_REPORT_TAG) == "inline":
        return SkipReason(f"run {run.run_id} was launched by the command line, which writes its report itself")
    return RunRequest(run_key=f"report-{run.run_id}", partition_key=upload_id, tags={"ingest/after_run": run.run_id})


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[ingest_upload_job],
    request_job=upload_report_job,
    default_status=DefaultSensorStatus.STOPPED,
    description="Writes the client report of each upload whose ingest run succeeded.",
)
def client_report_after_success(context: RunStatusSensorContext):
    return _report_request(context)


@run_status_sensor(
    run_status=DagsterRunStatus.FAILURE,
    monitored_jobs=[ingest_upload_job],
    request_job=upload_report_job,
    default_status=DefaultSensorStatus.STOPPED,
    description="Writes the client report of each upload whose ingest run failed (a failed upload or its quality gate).",
)
def client_report_after_failure(context: RunStatusSensorContext):
    return _report_request(context)


report_sensors = [client_report_after_success, client_report_after_failure]
