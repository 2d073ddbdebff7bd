"""What an operator does to uploads, through the Dagster instance the way the UI does it.

- `plan_retry` / `reexecute_from_failure`: an upload's latest run re-executed from failure (only
  the failed steps and what follows, as the UI's "Re-execute from failure"), in this process, with
  the origin of the code location the UI serves, so the retry can itself be re-executed there.
- `cancel_upload_runs`: the upload's queued and running runs ended as the UI's Terminate ends them
  (the queue drops a queued run; a run launched by the daemon is terminated through its code
  server); a run of `ingest-pipeline run`, which has no code server, is interrupted by a signal
  to its process, as Ctrl-C would. The upload then ends `failed`, "Cancelled by the operator ...".
- `stray_partitions` / `prune_partitions`: keys of the uploads partitions that are no registered
  upload (made with the UI's "Add partition"), and their removal.
- `launch_backfill`: a Dagster asset backfill of uploads, run by the daemon and shown on the UI's
  backfills page.

The command line (`cli.py`) parses and prints; the sentences a user reads are built here.
"""

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from ingest_pipeline.core.completion import notify_upload_finished
from ingest_pipeline.core.home import PROJECT_ROOT
from ingest_pipeline.core.processes import kill_process, process_alive, this_host
from ingest_pipeline.core.uploads import (
    COMPLETED,
    FAILED,
    PROCESSING,
    cancelled_error,
    get_upload,
    mark_failed_if_unfinished,
    update_upload,
)
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.defs.maintenance import UNFINISHED_RUN_STATUSES
from ingest_pipeline.defs.partitions import PARTITION_TAG, uploads_partitions
from ingest_pipeline.defs.run_health import HOST_TAG, _process_pids, free_slots_of_finished_runs, latest_ingest_run

# On the command line's runs: the pid of the process executing it, which stops the run when it is
# set CANCELING (`stop_when_terminated`); the UI's Terminate cannot reach it otherwise (no code server).
STOPS_ON_TERMINATE_TAG = "ingest/stops_on_terminate"
RETRY_STATUSES = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)  # what "Re-execute from failure" accepts
CANCEL_WAIT_SECONDS = 60.0  # a run that has not stopped by then is ended by force (its processes killed)


def ui_job_origin(job_name: str):
    """The origin of `job_name` in the code location that `ingest-pipeline ui` and the daemon serve
    (this project's workspace.yaml): a run created with it can be re-executed from the UI."""
    from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
    from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    (location,) = location_origins_from_yaml_paths([str(PROJECT_ROOT / "workspace.yaml")])
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME), job_name)


# --- retry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPlan:
    """What `retry` does: re-execute `parent` from failure, run the whole upload again, or nothing (`refusal`)."""

    parent: DagsterRun | None = None
    whole_upload: bool = False
    refusal: str | None = None  # one sentence: why there is nothing to retry
    note: str | None = None  # one sentence for the operator about what is done


def plan_retry(instance: DagsterInstance, upload: dict, work_folder_exists: bool, source_exists: bool) -> RetryPlan:
    """Decide how to retry an upload (a row of `ingest.uploads`).

    Its newest ingest run must have failed or been cancelled. When its work folder is gone (removed
    after `INGEST_WORK_RETENTION_HOURS`), re-executing a later stage cannot work, so the whole
    upload runs again from its source, as `backfill` would run it.
    """
    upload_id = upload["upload_id"]
    record = latest_ingest_run(instance, upload_id)
    run = record.dagster_run if record is not None else None
    if run is None:
        return RetryPlan(refusal=f"upload {upload_id} has no Dagster run to retry ({upload['status']}); "
                                 "`ingest-pipeline run` ingests its file")  # fmt: skip
    if not run.is_finished:
        return RetryPlan(refusal=f"upload {upload_id} has a run that is still {run.status.value.lower()} ({run.run_id}); "
                                 f"wait for it, or cancel it with `ingest-pipeline cancel {upload_id}`")  # fmt: skip
    if run.status not in RETRY_STATUSES:
        return RetryPlan(refusal=f"upload {upload_id} has no failed run to retry: its latest run {run.run_id} "
                                 f"{run.status.value.lower()} and the upload is {upload['status']}")  # fmt: skip
    if work_folder_exists:
        return RetryPlan(parent=run)
    if upload["sha256"] is None or not source_exists:
        return RetryPlan(refusal=f"upload {upload_id} cannot be retried: its work folder was removed and its source "
                                 f"{upload['source']} cannot be read any more")  # fmt: skip
    return RetryPlan(whole_upload=True, note=f"the work folder of upload {upload_id} was removed, so the whole upload "
                                             f"runs again from {upload['source']}")  # fmt: skip


def reexecute_from_failure(recon_job, instance: DagsterInstance, parent: DagsterRun, tags: dict):
    """Re-execute `parent` from failure in this process, as the UI's "Re-execute from failure" would
    (its tags and run config, only the steps that failed or did not run), with the UI's code
    location as the run's origin; returns the execution result."""
    from dagster._core.execution.api import create_execution_plan, execute_run
    from dagster._core.execution.plan.state import KnownExecutionState
    from dagster._core.storage.tags import (
        PARENT_RUN_ID_TAG,
        RESUME_RETRY_TAG,
        ROOT_RUN_ID_TAG,
        TAGS_TO_MAYBE_OMIT_ON_RETRY,
    )

    job = recon_job.get_definition()
    step_keys, known_state = KnownExecutionState.build_resume_retry_reexecution(instance, parent_run=parent)
    whole_plan = create_execution_plan(recon_job, parent.run_config, tags=parent.tags)
    step_keys = [*step_keys, *mapped_steps_that_never_ran(whole_plan.get_all_step_deps(), step_keys, known_state)]
    plan = create_execution_plan(recon_job, parent.run_config, step_keys_to_execute=step_keys, known_state=known_state,
                                 tags=parent.tags)  # fmt: skip
    inherited = {key: value for key, value in parent.tags.items() if key not in TAGS_TO_MAYBE_OMIT_ON_RETRY}
    run = instance.create_run_for_job(
        job_def=job,
        execution_plan=plan,
        run_config=parent.run_config,
        tags={**job.run_tags, **inherited, **tags, PARENT_RUN_ID_TAG: parent.run_id,
              ROOT_RUN_ID_TAG: parent.root_run_id or parent.run_id, RESUME_RETRY_TAG: "true"},  # fmt: skip
        root_run_id=parent.root_run_id or parent.run_id,
        parent_run_id=parent.run_id,
        job_code_origin=recon_job.get_python_origin(),
        remote_job_origin=ui_job_origin(job.name),
    )
    return execute_run(recon_job, run, instance)


def mapped_steps_that_never_ran(step_deps: dict, step_keys: list[str], known_state) -> list[str]:
    """The chunk steps that Dagster's from-failure selection leaves out, to be run too.

    `KnownExecutionState.build_resume_retry_reexecution` (Dagster 1.13) retries the mapped steps
    of a dynamic output that failed, but not those that never started: a run cancelled while some
    chunks waited for a process would be re-executed without them, and the upload judged on part
    of its chunks (the columns stage refuses that: "chunk scans missing"). Here every mapped step
    whose output no run of the chain produced is added. `step_deps`: the whole job's plan's
    (`ExecutionPlan.get_all_step_deps`), where a mapped step's key ends in `[?]`.
    """
    produced, state = set(), known_state.parent_state
    while state is not None:
        produced |= {handle.step_key for handle in state.produced_outputs}
        state = state.parent_state
    missing = []
    for step_key, deps in step_deps.items():
        if not step_key.endswith("[?]"):
            continue
        for dep in deps:
            for mapping_keys in (known_state.dynamic_mappings.get(dep) or {}).values():
                for mapping_key in mapping_keys or []:
                    resolved = f"{step_key[:-3]}[{mapping_key}]"
                    if resolved not in step_keys and resolved not in produced and resolved not in missing:
                        missing.append(resolved)
    return missing


def resume_upload(warehouse: Warehouse, upload_id: str) -> None:
    """The upload is processing again while its retry runs (the stages after the failed one set the rest)."""
    update_upload(warehouse, upload_id, status=PROCESSING, error=None, finished_at=None)


# --- cancel -----------------------------------------------------------------------------------


@dataclass
class CancelOutcome:
    """What `cancel_upload_runs` did: each run with how it ended, and whether the upload was failed now."""

    runs: list[tuple[str, str]] = field(default_factory=list)  # (run id, what happened)
    upload_failed: bool = False
    upload_status: str | None = None
    error: str | None = None


def unfinished_runs_of(instance: DagsterInstance, upload_id: str) -> list[DagsterRun]:
    """Every queued or running run of the upload, whichever job (ingest, validate, report)."""
    return list(instance.get_runs(RunsFilter(tags={PARTITION_TAG: upload_id}, statuses=UNFINISHED_RUN_STATUSES)))


def _orchestrator(instance: DagsterInstance, run: DagsterRun) -> tuple[int | None, float | None, list[tuple[int, float]]]:
    """The run's own process (when on this machine) and its step processes."""
    if run.tags.get(HOST_TAG, this_host()) != this_host():
        return None, None, []
    return _process_pids(instance, run.run_id)


@contextlib.contextmanager
def stop_when_terminated(instance: DagsterInstance, upload_id: str, interval: float = 1.0):
    """While this process executes a run of the upload tagged with its pid (STOPS_ON_TERMINATE_TAG):
    once the run is set CANCELING (the UI's Terminate, `ingest-pipeline cancel`), interrupt this
    process as Ctrl-C would; Dagster then stops the steps and ends the run canceled."""
    stop = threading.Event()
    tags = {PARTITION_TAG: upload_id, STOPS_ON_TERMINATE_TAG: str(os.getpid())}

    def watch() -> None:
        while not stop.wait(interval):
            try:
                terminated = instance.get_runs(RunsFilter(tags=tags, statuses=[DagsterRunStatus.CANCELING]), limit=1)
            except Exception:  # noqa: BLE001 - a busy storage: look again next time
                continue
            if terminated and not stop.is_set():
                os.kill(os.getpid(), signal.SIGINT)
                return

    watcher = threading.Thread(target=watch, name="ingest-terminate-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=5)


def _terminate(instance: DagsterInstance, run: DagsterRun) -> str:
    """Ask one unfinished run to stop, as the UI's Terminate does; returns what was done, for people."""
    from dagster._core.storage.tags import GRPC_INFO_TAG

    if run.status == DagsterRunStatus.QUEUED:
        instance.run_coordinator.cancel_run(run.run_id)  # the queue drops it: it never starts
        return "removed from the queue"
    if GRPC_INFO_TAG in run.tags and instance.run_coordinator.cancel_run(run.run_id):
        return "terminated through its code server"
    # A run of the command line (no code server to ask): interrupt its process, as Ctrl-C would;
    # Dagster ends a run interrupted while CANCELING as canceled.
    current = instance.get_run_by_id(run.run_id) or run
    if current.is_finished:
        return f"ended meanwhile ({current.status.value.lower()})"
    if current.status != DagsterRunStatus.CANCELING:
        instance.report_run_canceling(current, message="Cancel requested by `ingest-pipeline cancel`.")
    host = current.tags.get(HOST_TAG, this_host())
    if host != this_host():  # its process watches for the request there, or is ended by force in time
        return f"asked to stop (its process runs on {host})"
    pid, started, _ = _orchestrator(instance, current)
    if pid is not None and process_alive(pid, started):
        if current.tags.get(STOPS_ON_TERMINATE_TAG) == str(pid):
            return f"interrupted (process {pid} stops it on the request)"
        os.kill(pid, signal.SIGINT)  # a run from before `stop_when_terminated`
        return f"interrupted (process {pid})"
    # Not started yet, or its process is gone: nothing can run on, it is marked canceled.
    instance.report_run_canceled(current, message="Canceled by `ingest-pipeline cancel`; no process was running it.")
    return "marked canceled (no process was running it)"


def _force_end(instance: DagsterInstance, run: DagsterRun) -> str:
    """A run that did not stop in time: its processes are killed and it is marked canceled (the UI's force termination)."""
    pid, started, steps = _orchestrator(instance, run)
    killed = [p for p, seen in [*steps, *([(pid, started)] if pid else [])] if kill_process(p, seen)]
    current = instance.get_run_by_id(run.run_id) or run
    if not current.is_finished:
        instance.report_run_canceled(current, message="Forcibly canceled by `ingest-pipeline cancel`: it did not stop "
                                                      f"within {CANCEL_WAIT_SECONDS:g} s; processes {killed} killed.")  # fmt: skip
    return f"did not stop within {CANCEL_WAIT_SECONDS:g} s: {len(killed)} process(es) killed, marked canceled"


def cancel_upload_runs(instance: DagsterInstance, warehouse: Warehouse, upload_id: str,
                       wait_seconds: float = CANCEL_WAIT_SECONDS) -> CancelOutcome:  # fmt: skip
    """Cancel the upload's queued and running runs, wait until they have stopped, free what they held,
    and end the upload `failed` (unless it completed meanwhile)."""
    outcome = CancelOutcome()
    runs = unfinished_runs_of(instance, upload_id)
    asked = {run.run_id: _terminate(instance, run) for run in runs}
    deadline = time.monotonic() + wait_seconds
    for run in runs:
        while not (current := instance.get_run_by_id(run.run_id) or run).is_finished and time.monotonic() < deadline:
            time.sleep(0.2)
        how = asked[run.run_id] if current.is_finished else _force_end(instance, current)
        final = instance.get_run_by_id(run.run_id) or current
        outcome.runs.append((run.run_id, f"{how}; now {final.status.value.lower()}"))
    free_slots_of_finished_runs(instance)  # the warehouse writer's slot, if a merge held it

    upload = get_upload(warehouse, upload_id)
    if upload is not None and upload["status"] != COMPLETED:
        error = cancelled_error(upload_id, upload["stage"])
        if mark_failed_if_unfinished(warehouse, upload_id, error):
            outcome.upload_failed = True
            notify_upload_finished(warehouse, upload_id, runs[-1].run_id if runs else None)
        elif runs and upload["status"] == FAILED and upload["error"] != error:
            # The run's own process ended it first, with its own words: the operator's stand.
            update_upload(warehouse, upload_id, error=error)
            outcome.upload_failed = True
        upload = get_upload(warehouse, upload_id)
    if upload is not None:
        outcome.upload_status, outcome.error = upload["status"], upload["error"]
    return outcome


# --- partitions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrayPartition:
    """A key of the uploads partitions that is no registered upload; `kept` says why it cannot be pruned."""

    key: str
    runs: int
    kept: str | None = None


def stray_partitions(instance: DagsterInstance, warehouse: Warehouse) -> list[StrayPartition]:
    """The uploads partitions' keys that `ingest.uploads` does not hold (made with "Add partition")."""
    keys = instance.get_dynamic_partitions(uploads_partitions.name)
    registered = _registered(warehouse, keys)
    strays = []
    for key in keys:
        if key in registered:
            continue
        runs = instance.get_runs_count(RunsFilter(tags={PARTITION_TAG: key}))
        unfinished = instance.get_runs_count(RunsFilter(tags={PARTITION_TAG: key}, statuses=UNFINISHED_RUN_STATUSES))
        kept = f"{unfinished} run(s) of it are queued or running" if unfinished else None
        strays.append(StrayPartition(key, runs, kept))
    return strays


def _registered(warehouse: Warehouse, keys: Iterable[str]) -> set[str]:
    keys = list(keys)
    if not keys or not warehouse.path.exists():
        return set()
    with warehouse.connect(write=False) as connection:
        rows = connection.execute("SELECT upload_id FROM ingest.uploads WHERE upload_id IN (SELECT unnest(?::VARCHAR[]))",
                                  [keys]).fetchall()  # fmt: skip
    return {row[0] for row in rows}


def prune_partitions(instance: DagsterInstance, warehouse: Warehouse, strays: list[StrayPartition]) -> list[str]:
    """Delete the stray keys that may go; each is checked again just before (an upload registered or
    a run queued meanwhile keeps its key). Returns the keys deleted."""
    pruned = []
    for stray in strays:
        if stray.kept is not None or _registered(warehouse, [stray.key]):
            continue
        if instance.get_runs_count(RunsFilter(tags={PARTITION_TAG: stray.key}, statuses=UNFINISHED_RUN_STATUSES)):
            continue
        instance.delete_dynamic_partition(uploads_partitions.name, stray.key)
        pruned.append(stray.key)
    return pruned


# --- backfill ---------------------------------------------------------------------------------


def launch_backfill(instance: DagsterInstance, upload_ids: list[str], run_config: dict, title: str) -> str:
    """Create a Dagster asset backfill of the ingest assets for these uploads (the daemon runs it, as
    one launched from the UI); returns its id."""
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._time import get_current_timestamp

    from ingest_pipeline.definitions import defs
    from ingest_pipeline.defs.assets import ingest_assets

    instance.add_dynamic_partitions(uploads_partitions.name, upload_ids)  # registered uploads all have theirs
    asset_graph = defs.resolve_asset_graph()
    selection = sorted({key for asset in ingest_assets for key in asset.keys}, key=lambda k: k.to_user_string())
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=asset_graph,
        backfill_timestamp=get_current_timestamp(),
        tags={"ingest/launched_by": "backfill"},
        dynamic_partitions_store=instance,
        partition_names=upload_ids,
        asset_selection=selection,
        all_partitions=False,
        title=title,
        description=None,
        run_config=run_config,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def backfill_url(ui_url: str, backfill_id: str) -> str:
    """The backfill's page in the UI (dagster-webserver's route `/runs/b/:backfillId`)."""
    return f"{ui_url.rstrip('/')}/runs/b/{backfill_id}"
