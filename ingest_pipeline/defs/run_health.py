"""Runs whose process died are ended, and so are the uploads they leave behind.

A `kill -9`, an OOM kill or a lost machine stops a run's process without a word: Dagster's run
stays STARTED, the `duckdb_writer` slot it held stays taken (every later merge of the home waits
on it), its step processes may live on, and its upload stays `processing`. `reconcile` puts all
of that right:

1. Each unfinished run of this instance whose orchestrating process is gone (the pid of its
   RUN_START event; see `core.processes`) has its surviving step processes killed, is reported
   failed, and has its concurrency slots freed.
2. Each queued or processing upload whose ingest run has finished (or that has no run at all)
   ends `failed` with a sentence saying the run stopped and how to resume it.

It runs at the start of `ingest-pipeline run`, `backfill` and `status`, and every
`RECONCILE_INTERVAL_SECONDS` in the daemon (`dead_run_sensor`), so a dead run's upload is failed
within about that long, whoever launched it.

Pids are only meaningful on the machine that recorded them: runs tagged with another host are
left to that host, and untagged runs are judged only on a single-machine (SQLite) instance.
"""

import datetime as dt
import os
import time
from dataclasses import dataclass

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.definitions.assets.job.asset_job import is_reserved_asset_job_name
from dagster._core.storage.dagster_run import FINISHED_STATUSES, NOT_FINISHED_STATUSES, RunRecord

from ingest_pipeline.core.completion import notify_upload_finished
from ingest_pipeline.core.processes import kill_process, process_alive, this_host
from ingest_pipeline.core.uploads import (
    QUEUED,
    cancelled_error,
    list_unfinished_uploads,
    mark_failed_if_unfinished,
    worker_lost_error,
)
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.core.worker_watch import LOST_WORKER_KEY
from ingest_pipeline.defs.assets import INGEST_JOB_NAME, ingest_assets
from ingest_pipeline.defs.partitions import PARTITION_TAG
from ingest_pipeline.defs.settings import IngestSettings

HOST_TAG = "ingest/host"
RECONCILE_INTERVAL_SECONDS = int(os.environ.get("INGEST_RECONCILE_INTERVAL_SECONDS") or 15)
WAREHOUSE_WAIT_SECONDS = 10.0  # a tick waits this long for a writer, else tries the uploads next tick
# A run that was created but whose process has not recorded its start yet is given this long.
START_GRACE_SECONDS = 120.0
# An upload registered as queued gets this long for its run to be created (the command line and
# the sensor create it right after registering).
QUEUED_GRACE_SECONDS = 300.0
RESUME_HINT = (
    "run `ingest-pipeline run` on the file again, drop it into the landing folder again, or re-execute "
    "the run from failure in the Dagster UI"
)


@dataclass
class Reconciled:
    """What one pass did: runs ended, step processes killed, uploads failed."""

    dead_runs: list[str]
    killed_pids: list[int]
    failed_uploads: list[str]

    def summary(self) -> str:
        return (f"{len(self.dead_runs)} dead run(s) ended, {len(self.killed_pids)} orphaned step process(es) killed, "
                f"{len(self.failed_uploads)} stranded upload(s) failed")  # fmt: skip


def _judged_here(instance: DagsterInstance, tags: dict[str, str]) -> bool:
    host = tags.get(HOST_TAG)
    if host is not None:
        return host == this_host()
    from dagster._core.storage.runs import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage)


def _process_pids(instance: DagsterInstance, run_id: str) -> tuple[int | None, float | None, list[tuple[int, float]]]:
    """(orchestrator pid, when it started the run, [(step process pid, when the step started)])."""
    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.RUN_START, DagsterEventType.STEP_START}, limit=10_000
    ).records
    orchestrator, started, steps = None, None, []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or event.pid is None:
            continue
        if event.event_type == DagsterEventType.RUN_START:
            orchestrator, started = event.pid, record.event_log_entry.timestamp
        else:
            steps.append((event.pid, record.event_log_entry.timestamp))
    return orchestrator, started, steps


def end_dead_runs(instance: DagsterInstance) -> tuple[list[str], list[int]]:
    """Report failed every unfinished run whose orchestrating process is gone; kill its orphans."""
    dead, killed = [], []
    now = time.time()
    statuses = [DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.CANCELING]
    for record in instance.get_run_records(RunsFilter(statuses=statuses), limit=1000):
        run = record.dagster_run
        if not _judged_here(instance, run.tags):
            continue
        orchestrator, started, steps = _process_pids(instance, run.run_id)
        if orchestrator is None:
            # No process has recorded the start yet: dead only once its launch is long past.
            if now - record.update_timestamp.timestamp() < START_GRACE_SECONDS:
                continue
        elif process_alive(orchestrator, started):
            continue
        for pid, seen_at in steps:
            if pid != orchestrator and kill_process(pid, seen_at):
                killed.append(pid)
        where = f"its process {orchestrator} is gone" if orchestrator is not None else "its process never started"
        instance.report_run_failed(run, f"The run stopped unexpectedly ({where}); ended by ingest_pipeline.")
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        dead.append(run.run_id)
    return dead, killed


def free_slots_of_finished_runs(instance: DagsterInstance) -> None:
    """Concurrency slots still held by runs that have finished (the daemon does this only in a loop)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    run_ids = storage.get_concurrency_run_ids()
    if run_ids:
        for record in instance.get_run_records(RunsFilter(run_ids=list(run_ids), statuses=FINISHED_STATUSES)):
            storage.free_concurrency_slots_for_run(record.dagster_run.run_id)


def lost_worker_reason(instance: DagsterInstance, run_id: str) -> str | None:
    """The watch's sentence when a step of this distributed run lost its Celery worker
    (defs/celery_executor.py records it in the run's log), else None."""
    # Newest first: the watch's event comes near the end of the run's log (only steps in flight end after it).
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=1_000, ascending=False).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.event_specific_data if event is not None else None
        value = (getattr(data, "metadata", None) or {}).get(LOST_WORKER_KEY)
        if value is not None:
            return str(value.value)
    return None


INGEST_ASSET_KEYS = frozenset(key for asset in ingest_assets for key in asset.keys)


def is_ingest_run(run: DagsterRun) -> bool:
    """A run that moves its upload through the lifecycle: of the ingest job, or of the asset job the
    UI's asset backfills and "Materialize" launch, with one of the ingest assets selected."""
    if run.job_name == INGEST_JOB_NAME:
        return True
    return is_reserved_asset_job_name(run.job_name) and bool(run.asset_selection and run.asset_selection & INGEST_ASSET_KEYS)


def latest_ingest_run(instance: DagsterInstance, upload_id: str) -> RunRecord | None:
    """The upload's newest ingest run (see `is_ingest_run`), whose outcome is the upload's."""
    for record in instance.get_run_records(RunsFilter(tags={PARTITION_TAG: upload_id}), limit=50):
        if is_ingest_run(record.dagster_run):
            return record
    return None


def fail_stranded_uploads(instance: DagsterInstance, warehouse: Warehouse) -> list[str]:
    """Uploads left unfinished by an ingest run that has finished (or by none at all) end failed.

    A processing upload is failed as soon as its newest run has ended. A queued one is given
    QUEUED_GRACE_SECONDS first: it may have just been registered again, its new run about to start.
    """
    failed = []
    now = time.time()
    for upload in list_unfinished_uploads(warehouse):
        upload_id = upload["upload_id"]
        latest = latest_ingest_run(instance, upload_id)
        runs = [latest] if latest is not None else []
        if runs and runs[0].dagster_run.status in NOT_FINISHED_STATUSES:
            continue  # its newest run is still going, or waiting in the queue
        if runs:
            run = runs[0]
            if upload["status"] == QUEUED and now - (run.end_time or 0.0) < QUEUED_GRACE_SECONDS:
                continue
            if run.dagster_run.status == DagsterRunStatus.CANCELED:  # the UI's Terminate, or `ingest-pipeline cancel`
                reason = cancelled_error(upload_id, upload["stage"])
            elif lost := lost_worker_reason(instance, run.dagster_run.run_id):  # distributed: a step's worker was lost
                reason = worker_lost_error(upload_id, lost)
            else:
                stage = upload["stage"] or "its start"
                reason = f"The run {run.dagster_run.run_id} stopped unexpectedly during {stage}, before the upload finished; {RESUME_HINT}."
        else:
            received = upload["received_at"].replace(tzinfo=dt.UTC).timestamp()
            if upload["status"] == QUEUED and now - received < QUEUED_GRACE_SECONDS:
                continue
            reason = f"No run ever started for upload {upload_id}; {RESUME_HINT}."
        if mark_failed_if_unfinished(warehouse, upload_id, reason):
            notify_upload_finished(warehouse, upload_id, runs[0].dagster_run.run_id if runs else None)
            failed.append(upload_id)
    return failed


def reconcile(instance: DagsterInstance, warehouse: Warehouse, warehouse_wait_seconds: float | None = None) -> Reconciled:
    """End dead runs, free the slots of finished ones, and fail the uploads they stranded.

    Dead runs come first: one of their orphaned steps may be what holds the warehouse. With
    `warehouse_wait_seconds`, the uploads are left for next time if a writer holds it that long.
    """
    dead, killed = end_dead_runs(instance)
    free_slots_of_finished_runs(instance)
    failed = []
    if warehouse.path.exists() and (warehouse_wait_seconds is None or warehouse.lock_free_within(warehouse_wait_seconds)):
        failed = fail_stranded_uploads(instance, warehouse)
    return Reconciled(dead, killed, failed)


@sensor(
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=RECONCILE_INTERVAL_SECONDS,
    description="Ends runs whose process died (freeing their concurrency slots) and fails the uploads they left queued or processing.",
)
def dead_run_sensor(context: SensorEvaluationContext, ingest_settings: IngestSettings) -> SkipReason:
    """Dead runs ended and stranded uploads failed, every few seconds."""
    done = reconcile(context.instance, ingest_settings.warehouse(), warehouse_wait_seconds=WAREHOUSE_WAIT_SECONDS)
    if done.dead_runs or done.failed_uploads or done.killed_pids:
        context.log.warning(
            f"{done.summary()}: runs {done.dead_runs}, uploads {done.failed_uploads}, pids {done.killed_pids}"
        )
    return SkipReason(done.summary())

