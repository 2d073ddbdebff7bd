"""Housekeeping sensors that run in the Dagster daemon by default and launch no runs.

- `webhook_outbox_sensor` (every `INGEST_WEBHOOK_SENSOR_INTERVAL_SECONDS`, default 30): sends the
  webhook deliveries that are due and gives up those out of time (`core.outbox`).
- `work_retention_sensor` (every 10 minutes): removes the work folders of uploads that finished
  more than `INGEST_WORK_RETENTION_HOURS` ago (`core.retention`).

`ingest-pipeline webhooks --deliver` and `ingest-pipeline work-folders --clean` do the same for
deployments without a daemon.
"""

import functools
import os

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from ingest_pipeline.core.errors import ConfigurationError
from ingest_pipeline.core.outbox import RetryPolicy, deliver_due
from ingest_pipeline.core.retention import RetentionPolicy, remove_expired_work_folders, work_folders_root
from ingest_pipeline.core.webhook import URL_ENV, WebhookSettings
from ingest_pipeline.defs.distributed import DEPLOYMENT, remove_work_blobs
from ingest_pipeline.defs.partitions import PARTITION_TAG
from ingest_pipeline.defs.sensors import WAREHOUSE_WAIT_SECONDS
from ingest_pipeline.defs.settings import IngestSettings

WEBHOOK_SENSOR_INTERVAL_SECONDS = int(os.environ.get("INGEST_WEBHOOK_SENSOR_INTERVAL_SECONDS") or 30)
WORK_RETENTION_SENSOR_INTERVAL_SECONDS = 600
# Dagster stops a sensor tick after 60 s; no new delivery or removal starts after this.
TICK_BUDGET_SECONDS = 30.0
UNFINISHED_RUN_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


@sensor(
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=WEBHOOK_SENSOR_INTERVAL_SECONDS,
    description="Sends the webhooks pending in ingest.webhook_outbox, with backoff, until delivered or given up.",
)
def webhook_outbox_sensor(context: SensorEvaluationContext, ingest_settings: IngestSettings) -> SkipReason:
    """Each tick: overdue deliveries are given up, due ones are sent once each (no runs are launched)."""
    warehouse = ingest_settings.warehouse()
    if not warehouse.path.exists():
        return SkipReason(f"no warehouse yet at {warehouse.path}")
    try:
        policy = RetryPolicy.from_env()
    except ConfigurationError as error:
        context.log.warning(str(error))
        return SkipReason(str(error))
    if not warehouse.lock_free_within(WAREHOUSE_WAIT_SECONDS):
        return SkipReason(f"the warehouse {warehouse.path} is busy (a merge is writing); trying again next tick")
    settings = WebhookSettings.from_env()
    result = deliver_due(warehouse, settings, policy, budget_seconds=TICK_BUDGET_SECONDS)
    if settings is None and result.waiting:
        context.log.warning(f"{result.waiting} webhook delivery(ies) pending, but {URL_ENV} is not set for the daemon")
    if result.attempts or result.given_up:
        context.log.info(result.summary())
    return SkipReason(result.summary())


@sensor(
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=WORK_RETENTION_SENSOR_INTERVAL_SECONDS,
    description="Removes the work folders of uploads finished more than INGEST_WORK_RETENTION_HOURS (default 24) ago.",
)
def work_retention_sensor(context: SensorEvaluationContext, ingest_settings: IngestSettings) -> SkipReason:
    """Each tick: the expired work folders of finished uploads are removed (no runs are launched)."""
    try:
        policy = RetentionPolicy.from_env()
    except ConfigurationError as error:
        context.log.warning(str(error))
        return SkipReason(str(error))
    if policy.keeps_for_ever:
        return SkipReason("work folders are kept for ever (INGEST_WORK_RETENTION_HOURS=never)")
    warehouse = ingest_settings.warehouse()
    if not warehouse.path.exists():
        return SkipReason(f"no warehouse yet at {warehouse.path}")
    if not warehouse.lock_free_within(WAREHOUSE_WAIT_SECONDS):
        return SkipReason(f"the warehouse {warehouse.path} is busy (a merge is writing); trying again next tick")
    root = work_folders_root(ingest_settings.home_path, ingest_settings.work_dir)
    removed = remove_expired_work_folders(
        warehouse, root, policy, uploads_with_unfinished_runs(context.instance), budget_seconds=TICK_BUDGET_SECONDS,
        on_removed=functools.partial(remove_work_blobs, instance=context.instance) if DEPLOYMENT.distributed else None,
    )
    for folder in removed:
        context.log.info(f"removed the work folder {folder.path} ({folder.bytes / 2**20:.1f} MiB): {folder.reason}")
    if not removed:
        return SkipReason(f"no work folder under {root} is past its retention time ({policy.hours:g} h)")
    return SkipReason(f"removed {len(removed)} work folder(s), {sum(f.bytes for f in removed) / 2**20:.1f} MiB")


def uploads_with_unfinished_runs(instance: DagsterInstance) -> set[str]:
    """Upload ids (partition keys) with a run queued or in progress: their work folders are in use."""
    records = instance.get_run_records(RunsFilter(statuses=UNFINISHED_RUN_STATUSES))
    return {r.dagster_run.tags[PARTITION_TAG] for r in records if PARTITION_TAG in r.dagster_run.tags}


maintenance_sensors = [webhook_outbox_sensor, work_retention_sensor]
