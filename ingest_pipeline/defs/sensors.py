"""`upload_sensor`: uploads launch themselves when they land in the landing storage.

Every tick lists the landing storage per configured prefix (default: all of it), lets
`ingest_pipeline.core.discovery` decide what is new and settled, and for each such blob:
hashes its bytes (streamed), registers the upload in `ingest.uploads` as queued, adds its
`uploads` partition and requests one run keyed by the upload id. Blobs that cannot be ingested
(a path outside `<company_id>/<form_type>/<file>`, an unknown form type, an unreadable filespec)
are logged once as a warning and recorded as failed uploads with the reason; they launch nothing.
Those ruled out by their name or metadata alone (symbolic links and other entries the landing
storage refuses, see `ingest_pipeline.core.storage`; paths outside the layout; company ids that
break the rule) are reported without being read or hashed.
See docs/storage-and-scaling.md.
"""

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from ingest_pipeline.core.discovery import (
    DEFAULT_SENSOR_INTERVAL_SECONDS,
    DiscoveredBlob,
    DiscoveryCursor,
    DiscoverySettings,
    TickPlan,
    plan_tick,
)
from ingest_pipeline.core.errors import FilespecError, StorageError
from ingest_pipeline.core.filespec import FileSpec, load_form_type
from ingest_pipeline.core.storage import BlobInfo, LandingStorage
from ingest_pipeline.core.uploads import (
    FAILED,
    QUEUED,
    compute_upload_id,
    get_upload,
    hash_stream,
    register_upload,
    unread_upload_id,
)
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.defs.jobs import execution_config, ingest_upload_job, runs_in_process
from ingest_pipeline.defs.partitions import PARTITION_TAG, uploads_partitions
from ingest_pipeline.defs.resources import LandingStorageResource
from ingest_pipeline.defs.settings import IngestSettings

# The daemon evaluates sensors at most every 5 s (its loop); an interval below that ticks on every
# loop, so a small upload settles (seen unchanged on two ticks) within 5-10 s of landing. An interval
# of exactly 5 would skip every other loop whenever a tick starts a moment earlier than the last.
UPLOAD_SENSOR_INTERVAL_SECONDS = int(os.environ.get("INGEST_SENSOR_INTERVAL_SECONDS") or DEFAULT_SENSOR_INTERVAL_SECONDS)
# A merge holds the warehouse lock for as long as it writes; a tick waits this long for it and
# otherwise tries again next tick, rather than running into the sensor's time limit.
WAREHOUSE_WAIT_SECONDS = 10.0
SHOWN_BLOBS = 5  # blobs named in one log line
HANDLED, RETRY, HASHING = "handled", "retry", "hashing"  # what became of a settled blob this tick


def discovery_settings() -> DiscoverySettings:
    """The sensor's settings, from the `INGEST_SENSOR_*` variables (see DiscoverySettings.from_env)."""
    return DiscoverySettings.from_env(os.environ)


@sensor(
    job=ingest_upload_job,
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=UPLOAD_SENSOR_INTERVAL_SECONDS,
    description="Launches one ingest run per new upload in the landing storage (local folder or Azure container).",
)
def upload_sensor(
    context: SensorEvaluationContext, ingest_settings: IngestSettings, landing: LandingStorageResource
) -> SensorResult:
    """New, settled blobs become registered uploads, `uploads` partitions and runs keyed by upload id."""
    settings = discovery_settings()
    storage = landing.get_storage(ingest_settings.home_path)
    previous = DiscoveryCursor.from_json(context.cursor)
    try:
        listing = _list(storage, settings.prefixes)
    except StorageError as error:
        context.log.warning(f"Cannot list the landing storage: {error}")
        return SensorResult(skip_reason=f"cannot list the landing storage: {error}", cursor=context.cursor)

    filespecs = ingest_settings.filespecs_path
    plan = plan_tick(listing, previous, settings, datetime.now(UTC), {p.stem for p in filespecs.glob("*.yaml")})
    if plan.unsettled:
        context.log.info(
            f"{len(plan.unsettled)} blob(s) may still be being written: "
            + "; ".join(f"{u.blob.path} ({u.reason})" for u in plan.unsettled[:SHOWN_BLOBS])
        )
    batch = plan.within_budget()
    if not batch:
        return SensorResult(cursor=plan.next_cursor([]).to_json(), skip_reason=_skip_reason(plan, []))

    warehouse = ingest_settings.warehouse()
    if not warehouse.lock_free_within(WAREHOUSE_WAIT_SECONDS):
        return SensorResult(
            cursor=plan.next_cursor([]).to_json(),
            skip_reason=f"the warehouse {warehouse.path} is busy (a merge is writing); trying again next tick",
        )

    handled: list[BlobInfo] = []
    run_requests: dict[str, RunRequest] = {}
    specs: dict[str, FileSpec | FilespecError] = {}
    deadline = time.monotonic() + settings.max_hash_seconds_per_tick
    hashing: BlobInfo | None = None
    for item in batch:
        outcome, request = _handle_blob(context, item, storage, warehouse, filespecs, specs, run_requests,
                                        hash_timeout=max(0.0, deadline - time.monotonic()))  # fmt: skip
        if outcome == HANDLED:
            handled.append(item.blob)
        if request is not None:
            run_requests[request.run_key] = request
        if outcome == HASHING:
            hashing = item.blob
            context.log.info(f"{hashing.path} ({hashing.size} bytes) is still being hashed; a later tick takes it up")
            break
    BLOB_HASHES.forget_unclaimed()
    left = len(plan.settled) - len(batch)
    if left:
        context.log.info(f"{left} settled blob(s) left for the next tick (at most {settings.max_blobs_per_tick} "
                         f"blobs or {settings.max_hash_bytes_per_tick} bytes are hashed per tick)")  # fmt: skip
    cursor = plan.next_cursor(handled).to_json()
    if not run_requests:
        return SensorResult(cursor=cursor, skip_reason=_skip_reason(plan, handled, hashing))
    return SensorResult(
        run_requests=list(run_requests.values()),
        dynamic_partitions_requests=[uploads_partitions.build_add_request(list(run_requests))],
        cursor=cursor,
    )


def _list(storage: LandingStorage, prefixes: tuple[str, ...]) -> list[BlobInfo]:
    """Every blob under the prefixes, each path once (prefixes may overlap)."""
    blobs: dict[str, BlobInfo] = {}
    for prefix in prefixes:
        for blob in storage.list_blobs(prefix):
            blobs[blob.path] = blob
    return list(blobs.values())


def _handle_blob(
    context: SensorEvaluationContext,
    item: DiscoveredBlob,
    storage: LandingStorage,
    warehouse: Warehouse,
    filespecs: Path,
    specs: dict[str, FileSpec | FilespecError],
    launched: dict[str, RunRequest],
    hash_timeout: float,
) -> tuple[str, RunRequest | None]:
    """One settled blob: (HANDLED, RETRY or HASHING; the run to launch for it, if any).

    RETRY (unreadable now, changed meanwhile) and HASHING (its hash is not ready yet) leave the
    blob pending, to be looked at again next tick.
    """
    blob = item.blob
    source = storage.source_uri(blob.path)
    if not item.to_read:
        # Its name or metadata rule it out for good (a link, a name that is not a plain path, a
        # company id that is not one, ...): reported without being read, so that it neither
        # leaves the landing root nor costs hashing.
        upload_id = unread_upload_id(item.company_id, item.form_type, source, blob.etag)
        context.log.warning(f"{source} is not ingested: {item.problem}.")
        if get_upload(warehouse, upload_id) is None:
            register_upload(warehouse, upload_id=upload_id, company_id=item.company_id, form_type=item.form_type,
                            source=source, sha256=None, size=None, filespec_version=None, status=FAILED,
                            error=f"Not ingested: {item.problem}.")  # fmt: skip
        return HANDLED, None
    try:
        hashed = BLOB_HASHES.result((source, blob.etag), lambda: storage.open_blob(blob.path), hash_timeout)
    except StorageError as error:
        context.log.warning(f"{source}: cannot be read now, trying again next tick: {error}")
        return RETRY, None
    if hashed is None:
        return HASHING, None
    sha256, size = hashed
    if size != blob.size:
        context.log.info(f"{source}: changed while it was being read; waiting for it to settle")
        return RETRY, None

    problem, spec = item.problem, None
    if problem is None:
        if item.form_type not in specs:
            try:
                specs[item.form_type] = load_form_type(item.form_type, filespecs)
            except FilespecError as error:
                specs[item.form_type] = error
        loaded = specs[item.form_type]
        if isinstance(loaded, FilespecError):
            problem = f"its filespec cannot be used: {loaded}"
        else:
            spec = loaded

    upload_id = compute_upload_id(item.company_id, item.form_type, sha256)
    existing = get_upload(warehouse, upload_id)
    if problem is not None:
        context.log.warning(f"{source} is not ingested: {problem}.")
        if existing is None:
            register_upload(warehouse, upload_id=upload_id, company_id=item.company_id, form_type=item.form_type,
                            source=source, sha256=sha256, size=size, filespec_version=None, status=FAILED,
                            error=f"Not ingested: {problem}.")  # fmt: skip
        return HANDLED, None
    if upload_id in launched:
        context.log.info(
            f"{source} has the same bytes as {launched[upload_id].tags['ingest/source']}: one run, upload {upload_id}"
        )
        return HANDLED, None
    runs_before = _runs_of(context, upload_id)
    if existing is not None and existing["status"] == FAILED:
        # Landing again after a failure (a crash, a wrong file fixed by the client): run it again.
        register_upload(warehouse, upload_id=upload_id, company_id=item.company_id, form_type=item.form_type,
                        source=source, sha256=sha256, size=size, filespec_version=spec.version)  # fmt: skip
        context.log.info(f"{source}: upload {upload_id} had failed ({existing['error']}); launching it again")
    elif existing is None:
        register_upload(warehouse, upload_id=upload_id, company_id=item.company_id, form_type=item.form_type,
                        source=source, sha256=sha256, size=size, filespec_version=spec.version)  # fmt: skip
    elif existing["status"] != QUEUED or runs_before:
        context.log.info(
            f"{source} has the same bytes as upload {upload_id} ({existing['status']}, from {existing['source']}); "
            "not launched again (`ingest-pipeline backfill` re-runs uploads)"
        )
        return HANDLED, None
    context.log.info(f"{source}: upload {upload_id} ({item.company_id}, {item.form_type}, {size} bytes) launched")
    return HANDLED, RunRequest(
        # The first run of an upload is keyed by its id, so the same bytes landing twice run once;
        # a relaunch after a failure gets the next key.
        run_key=upload_id if not runs_before else f"{upload_id}.{runs_before + 1}",
        partition_key=upload_id,
        run_config=upload_run_config(size),
        tags={
            "ingest/source": source,
            "ingest/company_id": item.company_id,
            "ingest/form_type": item.form_type,
            "ingest/blob_path": blob.path,
            "ingest/launched_by": "sensor",
        },
    )


@dataclass
class _HashJob:
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[str, int] | None = None
    error: BaseException | None = None
    claimed: bool = False


class BlobHashes:
    """Content hashes computed in background threads that outlive a tick.

    A tick waits for a hash only so long; a larger blob goes on being hashed, and a later tick
    (same code server process) collects the result, so no tick runs into Dagster's sensor
    timeout however large the blob. Should the process restart, the hash simply starts again.
    Daemon threads: a code server that shuts down does not wait for them.
    """

    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str], _HashJob] = {}
        self._lock = threading.Lock()

    def result(
        self, key: tuple[str, str], open_stream: Callable[[], BinaryIO], timeout: float
    ) -> tuple[str, int] | None:
        """(sha256, size) of the blob `key` = (source uri, etag), or None if not ready within `timeout`."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                job = self._jobs[key] = _HashJob()
                threading.Thread(target=self._run, args=(job, open_stream), name=f"hash {key[0]}", daemon=True).start()
            job.claimed = True
        if not job.done.wait(timeout):
            return None
        with self._lock:
            self._jobs.pop(key, None)
        if job.error is not None:
            raise job.error
        return job.result

    @staticmethod
    def _run(job: _HashJob, open_stream: Callable[[], BinaryIO]) -> None:
        try:
            with open_stream() as stream:
                job.result = hash_stream(stream)
        except BaseException as error:  # handed to the tick that collects the result
            job.error = error
        finally:
            job.done.set()

    def forget_unclaimed(self) -> None:
        """Drop finished hashes that no tick asked for since the last call (blobs replaced or gone)."""
        with self._lock:
            for key, job in list(self._jobs.items()):
                if job.done.is_set() and not job.claimed:
                    del self._jobs[key]
                job.claimed = False

    def __len__(self) -> int:
        return len(self._jobs)


BLOB_HASHES = BlobHashes()


def upload_run_config(size: int) -> dict:
    """In process below `jobs.in_process_max_bytes()` (as `ingest-pipeline run --executor auto`);
    otherwise one process per step, so that its chunks are scanned in parallel."""
    return {"execution": execution_config(runs_in_process(size))}


def _runs_of(context: SensorEvaluationContext, upload_id: str) -> int:
    """How many ingest runs this upload has had (a queued upload may have one waiting in the queue)."""
    return context.instance.get_runs_count(RunsFilter(job_name=ingest_upload_job.name, tags={PARTITION_TAG: upload_id}))


def _skip_reason(plan: TickPlan, handled: list[BlobInfo], hashing: BlobInfo | None = None) -> str:
    if hashing is not None:
        return f"still hashing {hashing.path} ({hashing.size} bytes)"
    if handled:
        return f"{len(handled)} blob(s) handled without a new run (duplicates or reported problems)"
    if plan.unsettled:
        names = ", ".join(u.blob.path for u in plan.unsettled[:SHOWN_BLOBS])
        return f"waiting for {len(plan.unsettled)} blob(s) to settle: {names}"
    return "no new uploads"
