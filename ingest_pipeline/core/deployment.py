"""Local or distributed: the one setting that chooses how the pipeline's steps run (no Dagster here).

`INGEST_DEPLOYMENT` is `local` (the default: steps in processes of this machine, work files in
`<home>/work`, the Dagster instance on SQLite in `<home>/dagster`), `distributed` or `kubernetes`.
`distributed`:

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

`kubernetes` is the same but for the executor: each step is a Kubernetes Job (`dagster-k8s`'s
`k8s_job_executor`) in the namespace `INGEST_K8S_NAMESPACE` (default `ingest`), at most
`INGEST_K8S_MAX_CONCURRENT` (default 16) at once per run. The per-upload steps' pods mount the
warehouse disk, the PersistentVolumeClaim `INGEST_K8S_WAREHOUSE_CLAIM` (default `ingest-home`), at
`INGEST_HOME`, on the node labelled `INGEST_K8S_WAREHOUSE_NODE_LABEL` (default
`ingest/warehouse=true`): an Azure Disk attaches to one node at a time. No broker (and no
worker watch: Kubernetes reports a lost pod's Job as failed).
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ingest_pipeline.core.errors import StorageError
from ingest_pipeline.core.worker_watch import DEFAULT_WORKER_LOST_SECONDS, WORKER_LOST_ENV, worker_lost_seconds

DEPLOYMENT_ENV = "INGEST_DEPLOYMENT"
LOCAL, DISTRIBUTED, KUBERNETES = "local", "distributed", "kubernetes"
DEFAULT_WAREHOUSE_QUEUE = "warehouse"
CHUNK_QUEUE = "dagster"  # dagster-celery's default queue: any worker
DEFAULT_WORK_CONTAINER = "work"
# The Celery op tag that routes a step to a queue (dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG).
CELERY_QUEUE_TAG = "dagster-celery/queue"
POSTGRES_SCHEME = "postgresql+psycopg2://"
# dagster-k8s's op tag for the pod of a step (dagster_k8s.job.USER_DEFINED_K8S_CONFIG_KEY).
K8S_CONFIG_TAG = "dagster-k8s/config"
DEFAULT_K8S_NAMESPACE, DEFAULT_K8S_WAREHOUSE_CLAIM = "ingest", "ingest-home"
DEFAULT_K8S_WAREHOUSE_NODE_LABEL, DEFAULT_K8S_MAX_CONCURRENT = "ingest/warehouse=true", 16
# What every step's pod needs from the run's environment (k8s_job_executor copies these by name).
K8S_FORWARDED_ENV = ("INGEST_DEPLOYMENT", "INGEST_POSTGRES_URL", "INGEST_HOME", "INGEST_WORK_CONTAINER",
                     "AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "INGEST_FILESPECS")  # fmt: skip


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
    home: str | None = None  # kubernetes: where the warehouse disk is mounted (INGEST_HOME)
    k8s_namespace: str = DEFAULT_K8S_NAMESPACE
    k8s_warehouse_claim: str = DEFAULT_K8S_WAREHOUSE_CLAIM
    k8s_warehouse_node_label: str = DEFAULT_K8S_WAREHOUSE_NODE_LABEL
    k8s_max_concurrent: int = DEFAULT_K8S_MAX_CONCURRENT
    forwarded_env: tuple[str, ...] = ()  # kubernetes: the K8S_FORWARDED_ENV names that are set

    @property
    def distributed(self) -> bool:
        """Steps on several machines (Celery workers or Kubernetes pods): work files in the storage
        account, the instance on PostgreSQL."""
        return self.kind in (DISTRIBUTED, KUBERNETES)

    @property
    def on_celery(self) -> bool:
        return self.kind == DISTRIBUTED

    def warehouse_tags(self) -> dict:
        """Op tags of a step that reads or writes the warehouse: on Celery its queue; on Kubernetes
        its pod mounts the warehouse disk on the warehouse node; local, none."""
        if self.kind == KUBERNETES:
            label, _, value = self.k8s_warehouse_node_label.partition("=")
            return {K8S_CONFIG_TAG: {
                "pod_spec_config": {
                    "node_selector": {label: value},
                    "volumes": [{"name": "ingest-home", "persistent_volume_claim": {"claim_name": self.k8s_warehouse_claim}}],
                },
                "container_config": {"volume_mounts": [{"name": "ingest-home", "mount_path": self.home}]},
            }}  # fmt: skip
        return {CELERY_QUEUE_TAG: self.warehouse_queue} if self.on_celery else {}

    def executor_config(self) -> dict:
        """The run config of the deployment's executor (`celery` or `k8s`)."""
        if self.kind == KUBERNETES:
            return {"job_namespace": self.k8s_namespace, "env_vars": list(self.forwarded_env),
                    "max_concurrent": self.k8s_max_concurrent}  # fmt: skip
        return self.celery_executor_config()

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
    """The deployment `INGEST_DEPLOYMENT` chooses; a distributed one must name its broker (Celery),
    its PostgreSQL and its storage account, or this says in one sentence which variable is missing."""
    environ = os.environ if environ is None else environ
    setting = {name: value.strip() for name, value in environ.items() if isinstance(value, str) and value.strip()}
    kind = setting.get(DEPLOYMENT_ENV, LOCAL).lower()
    if kind == LOCAL:
        return Deployment()
    if kind not in (DISTRIBUTED, KUBERNETES):
        raise StorageError(f"{DEPLOYMENT_ENV} is {kind!r}; use {LOCAL!r}, {DISTRIBUTED!r} or {KUBERNETES!r}.")
    needed = ("INGEST_CELERY_BROKER",) if kind == DISTRIBUTED else ("INGEST_HOME",)
    missing = [name for name in (*needed, "INGEST_POSTGRES_URL", "AZURE_STORAGE_ACCOUNT_URL") if name not in setting]
    if missing:
        raise StorageError(f"{DEPLOYMENT_ENV}={kind} needs {', '.join(missing)} set (docs/storage-and-scaling.md).")
    if not setting["INGEST_POSTGRES_URL"].startswith(POSTGRES_SCHEME):
        raise StorageError(f"INGEST_POSTGRES_URL must start with {POSTGRES_SCHEME} (the PostgreSQL driver installed).")
    shared = {
        "kind": kind,
        "postgres_url": setting["INGEST_POSTGRES_URL"],
        "work_container": setting.get("INGEST_WORK_CONTAINER", DEFAULT_WORK_CONTAINER),
        "account_url": setting["AZURE_STORAGE_ACCOUNT_URL"],
        "account_key": setting.get("AZURE_STORAGE_KEY"),
        "sas_token": setting.get("AZURE_STORAGE_SAS_TOKEN"),
    }
    if kind == DISTRIBUTED:
        try:
            lost_seconds = worker_lost_seconds(environ.get(WORKER_LOST_ENV))
        except ValueError as error:
            raise StorageError(str(error)) from None
        return Deployment(**shared, broker=setting["INGEST_CELERY_BROKER"], backend=setting.get("INGEST_CELERY_BACKEND"),
                          warehouse_queue=setting.get("INGEST_WAREHOUSE_QUEUE", DEFAULT_WAREHOUSE_QUEUE),
                          worker_lost_seconds=lost_seconds)  # fmt: skip
    if not setting["INGEST_HOME"].startswith("/"):
        raise StorageError(f"INGEST_HOME is {setting['INGEST_HOME']!r}; on Kubernetes it must be the absolute path "
                           "where the warehouse disk is mounted, e.g. /srv/ingest.")  # fmt: skip
    label = setting.get("INGEST_K8S_WAREHOUSE_NODE_LABEL", DEFAULT_K8S_WAREHOUSE_NODE_LABEL)
    if "=" not in label or not label.partition("=")[0]:
        raise StorageError(f"INGEST_K8S_WAREHOUSE_NODE_LABEL is {label!r}; write it as name=value, e.g. {DEFAULT_K8S_WAREHOUSE_NODE_LABEL}.")
    concurrent = setting.get("INGEST_K8S_MAX_CONCURRENT", str(DEFAULT_K8S_MAX_CONCURRENT))
    if not concurrent.isdigit() or int(concurrent) < 1:
        raise StorageError(f"INGEST_K8S_MAX_CONCURRENT is {concurrent!r}; give the most step pods of a run at once, e.g. 16.")
    return Deployment(
        **shared,
        home=setting["INGEST_HOME"],
        k8s_namespace=setting.get("INGEST_K8S_NAMESPACE", DEFAULT_K8S_NAMESPACE),
        k8s_warehouse_claim=setting.get("INGEST_K8S_WAREHOUSE_CLAIM", DEFAULT_K8S_WAREHOUSE_CLAIM),
        k8s_warehouse_node_label=label,
        k8s_max_concurrent=int(concurrent),
        forwarded_env=tuple(name for name in K8S_FORWARDED_ENV if name in setting),
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
