"""Local or distributed: the one setting that chooses how the pipeline's steps run (no Dagster here).

`INGEST_DEPLOYMENT` is `local` (the default: steps in processes of this machine, work files in
`<home>/work`, the Dagster instance on SQLite in `<home>/dagster`) or `distributed`:

- steps run on Celery workers (`dagster-celery`): the per-upload steps, which read and write the
  DuckDB warehouse, on the queue `INGEST_WAREHOUSE_QUEUE` (default `warehouse`), served by the one
  worker that has the warehouse file; the per-chunk scan steps on the queue `dagster`, any worker;
- the broker is `INGEST_CELERY_BROKER` (e.g. `redis://10.0.0.4:6379/0`), the result backend
  `INGEST_CELERY_BACKEND` (default: the broker);
- the Dagster instance is on PostgreSQL, `INGEST_POSTGRES_URL`
  (`postgresql+psycopg2://user:password@host:5432/dagster`: psycopg2 is the driver installed);
- work files (chunk files, scan outputs, step outputs) are in the Azure Blob container
  `INGEST_WORK_CONTAINER` (default `work`) of the account `AZURE_STORAGE_ACCOUNT_URL` (credential
  `AZURE_STORAGE_KEY`, `AZURE_STORAGE_SAS_TOKEN`, else `DefaultAzureCredential`);
- a step whose worker stops answering for `INGEST_WORKER_LOST_SECONDS` (default 60) fails the run
  (core/worker_watch.py), which `ingest-pipeline retry` then re-executes from failure.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ingest_pipeline.core.errors import StorageError
from ingest_pipeline.core.worker_watch import DEFAULT_WORKER_LOST_SECONDS, WORKER_LOST_ENV, worker_lost_seconds

DEPLOYMENT_ENV = "INGEST_DEPLOYMENT"
LOCAL, DISTRIBUTED = "local", "distributed"
DEFAULT_WAREHOUSE_QUEUE = "warehouse"
CHUNK_QUEUE = "dagster"  # dagster-celery's default queue: any worker
DEFAULT_WORK_CONTAINER = "work"
# The Celery op tag that routes a step to a queue (dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG).
CELERY_QUEUE_TAG = "dagster-celery/queue"
POSTGRES_SCHEME = "postgresql+psycopg2://"


@dataclass(frozen=True)
class Deployment:
    kind: str = LOCAL
    broker: str | None = None
    backend: str | None = None
    postgres_url: str | None = None
    warehouse_queue: str = DEFAULT_WAREHOUSE_QUEUE
    work_container: str = DEFAULT_WORK_CONTAINER
    account_url: str | None = None
    account_key: str | None = None
    sas_token: str | None = None
    worker_lost_seconds: float = DEFAULT_WORKER_LOST_SECONDS

    @property
    def distributed(self) -> bool:
        return self.kind == DISTRIBUTED

    def warehouse_tags(self) -> dict[str, str]:
        """Op tags of a step that reads or writes the warehouse: its queue when distributed, else none."""
        return {CELERY_QUEUE_TAG: self.warehouse_queue} if self.distributed else {}

    def celery_executor_config(self) -> dict:
        """The run config of the `celery` executor (defs/celery_executor.py): the broker and backend,
        one step per worker task at a time, and how long a silent worker is given."""
        return {
            "broker": self.broker,
            "backend": self.backend or self.broker,
            "worker_lost_seconds": self.worker_lost_seconds,
            "config_source": {
                # A worker takes one task at a time: a long scan never holds a second one back.
                "worker_prefetch_multiplier": 1,
                # ... and fetches none while it runs one (Redis only): a worker lost mid-step takes
                # no task with it that nobody would see, to wait in its unacknowledged set for
                # Redis' visibility timeout (an hour).
                "worker_disable_prefetch": True,
                # The step's process dying (kill -9, OOM) fails its task with WorkerLostError, so
                # the run ends failed and is re-executed from failure (not redelivered twice). A
                # whole worker lost is noticed by the run's watch (core/worker_watch.py).
                "task_acks_late": False,
                # A started task's state names its worker, the one the watch asks after.
                "task_track_started": True,
            },
        }


def deployment_from_env(environ: Mapping[str, str] | None = None) -> Deployment:
    """The deployment `INGEST_DEPLOYMENT` chooses; a distributed one must name its broker, its
    PostgreSQL and its storage account, or this says in one sentence which variable is missing."""
    environ = os.environ if environ is None else environ
    kind = (environ.get(DEPLOYMENT_ENV) or LOCAL).strip().lower()
    if kind == LOCAL:
        return Deployment()
    if kind != DISTRIBUTED:
        raise StorageError(f"{DEPLOYMENT_ENV} is {kind!r}; use {LOCAL!r} or {DISTRIBUTED!r}.")
    missing = [name for name in ("INGEST_CELERY_BROKER", "INGEST_POSTGRES_URL", "AZURE_STORAGE_ACCOUNT_URL")
               if not (environ.get(name) or "").strip()]  # fmt: skip
    if missing:
        raise StorageError(
            f"{DEPLOYMENT_ENV}=distributed needs {', '.join(missing)} set (docs/storage-and-scaling.md)."
        )
    if not environ["INGEST_POSTGRES_URL"].strip().startswith(POSTGRES_SCHEME):
        raise StorageError(f"INGEST_POSTGRES_URL must start with {POSTGRES_SCHEME} (the PostgreSQL driver installed).")
    try:
        lost_seconds = worker_lost_seconds(environ.get(WORKER_LOST_ENV))
    except ValueError as error:
        raise StorageError(str(error)) from None
    return Deployment(
        kind=DISTRIBUTED,
        broker=environ["INGEST_CELERY_BROKER"].strip(),
        backend=(environ.get("INGEST_CELERY_BACKEND") or "").strip() or None,
        postgres_url=environ["INGEST_POSTGRES_URL"].strip(),
        warehouse_queue=(environ.get("INGEST_WAREHOUSE_QUEUE") or "").strip() or DEFAULT_WAREHOUSE_QUEUE,
        work_container=(environ.get("INGEST_WORK_CONTAINER") or "").strip() or DEFAULT_WORK_CONTAINER,
        account_url=environ["AZURE_STORAGE_ACCOUNT_URL"].strip(),
        account_key=(environ.get("AZURE_STORAGE_KEY") or "").strip() or None,
        sas_token=(environ.get("AZURE_STORAGE_SAS_TOKEN") or "").strip() or None,
        worker_lost_seconds=lost_seconds,
    )


def distributed_instance_yaml(template: str) -> str:
    """The home's dagster.yaml for a distributed deployment: the embedded one's settings, with the
    run, event log and schedule storage on PostgreSQL (`INGEST_POSTGRES_URL`, read by each process
    from its environment) and no compute log files (a step's output stays in its worker's log)."""
    return (
        template + "\n# INGEST_DEPLOYMENT=distributed (core/deployment.py): every machine shares this instance.\n"
        "storage:\n  postgres:\n    postgres_url:\n      env: INGEST_POSTGRES_URL\n"
        "compute_logs:\n  module: dagster._core.storage.noop_compute_log_manager\n  class: NoOpComputeLogManager\n"
    )
