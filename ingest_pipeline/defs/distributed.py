"""The Dagster side of a distributed deployment (`INGEST_DEPLOYMENT=distributed`, core/deployment.py).

- `DEPLOYMENT`: read once per process at import, as `INGEST_STORAGE` is; every machine (the
  process that launches runs and each Celery worker) has the same environment.
- `WAREHOUSE_TAGS`: the op tags of the per-upload steps (prepare, the scan's plan and summary,
  columns, merge, publish and the checks), which route them to the warehouse owner's queue.
- `BlobPickleIOManager`: step outputs (a chunk's index, its record count) in the work container,
  so that a step on one machine reads what a step on another wrote.
- `step_workspace` / `work_store`: a chunk step's own local folder, filled from the container.
"""

import contextlib
import functools
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dagster import ConfigurableIOManager, DagsterInstance, InputContext, OutputContext, RunsFilter

from ingest_pipeline.core.chunk_status import status_path
from ingest_pipeline.core.deployment import deployment_from_env
from ingest_pipeline.core.prepare import UploadWorkspace
from ingest_pipeline.core.work_storage import BlobWorkStore, changed_since, file_states
from ingest_pipeline.defs.partitions import PARTITION_TAG

DEPLOYMENT = deployment_from_env()
WAREHOUSE_TAGS = DEPLOYMENT.warehouse_tags()
IO_PREFIX = "dagster-io"


@functools.cache
def work_store() -> BlobWorkStore | None:
    """The work container of a distributed deployment; None on one machine (the local work folder)."""
    if not DEPLOYMENT.distributed:
        return None
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import ContainerClient

    from ingest_pipeline.defs.resources import AZURE_DOWNLOAD_CHUNK_BYTES

    credential = DEPLOYMENT.account_key or DEPLOYMENT.sas_token or DefaultAzureCredential()
    client = ContainerClient(
        account_url=DEPLOYMENT.account_url, container_name=DEPLOYMENT.work_container, credential=credential,
        max_single_get_size=AZURE_DOWNLOAD_CHUNK_BYTES, max_chunk_get_size=AZURE_DOWNLOAD_CHUNK_BYTES,
        max_block_size=AZURE_DOWNLOAD_CHUNK_BYTES, max_single_put_size=AZURE_DOWNLOAD_CHUNK_BYTES,
    )  # fmt: skip
    return BlobWorkStore(client)


@contextlib.contextmanager
def step_workspace(upload_id: str, chunk_index: int) -> Iterator[UploadWorkspace]:
    """A chunk step's own workspace in a fresh folder of this worker's temp folder, holding the
    upload's manifest, filespec, reference snapshot and this one chunk from the container; what
    the step writes there is pushed back, and the folder is removed, when it ends."""
    store = work_store()
    assert store is not None
    with tempfile.TemporaryDirectory(prefix="ingest-step-") as folder:
        workspace = UploadWorkspace(Path(folder) / upload_id)
        chunk = workspace.chunk_file(chunk_index).relative_to(workspace.root).as_posix()
        # REMOVED.txt: retention removed the upload's work files; the step then fails with its sentence.
        store.pull(workspace, ("manifest.json", "filespec.json", "reference/", chunk, "REMOVED.txt"))
        before = file_states(workspace.root)
        yield workspace
        store.push(workspace, changed_since(before, file_states(workspace.root)))


def pull_scan_outputs(workspace: UploadWorkspace) -> None:
    """Into the warehouse owner's work folder: what the chunk steps wrote (their scan files,
    metrics and chunk status), and any file it lacks (the columns stage re-reads chunk files for
    duplicate records' texts); files it has at their size are not downloaded again."""
    store = work_store()
    if store is not None:
        store.pull(workspace, ("",))


def pull_scan_metrics(workspace: UploadWorkspace) -> None:
    """Into the warehouse owner's work folder: the metrics file of each chunk scanned so far (new
    files only), which progress counts, so that it follows the scans on other machines."""
    store = work_store()
    if store is not None and workspace.manifest.exists():
        store.pull(workspace, ("metrics/scan-",))


def pull_chunk_progress(workspace: UploadWorkspace) -> None:
    """As `pull_scan_metrics`, and each chunk's status file as it is now (rewritten in place as the
    chunk starts and ends), for the chunk list."""
    store = work_store()
    if store is not None and workspace.manifest.exists():
        store.pull(workspace, ("chunk_status/", "metrics/scan-"), always=("chunk_status/",))


def push_chunk_status(workspace: UploadWorkspace, chunk_index: int) -> None:
    """From a chunk step's own folder: its chunk's status file, the moment the scan starts."""
    store = work_store()
    path = status_path(workspace, chunk_index)
    if store is not None and path.exists():
        store.push(workspace, [path.relative_to(workspace.root).as_posix()])


def push_prepared(workspace: UploadWorkspace) -> None:
    """After prepare, on the warehouse owner: the whole work folder to the container (a rerun's
    old files removed first), one file at a time, streamed. The owner keeps its copy: the columns
    stage re-reads chunk files."""
    store = work_store()
    if store is None:
        return
    store.clear(workspace.root.name)
    store.push(workspace, sorted(file_states(workspace.root)))


def remove_work_blobs(folder: Path, instance: DagsterInstance | None = None) -> None:
    """After retention removed an upload's local work folder (leaving its REMOVED.txt note): its
    work files in the container too, leaving the note there, for a chunk step re-executed later;
    and, given the instance, the step outputs of the upload's runs (`dagster-io/<run id>/`), which
    no re-execution can use once the work files are gone."""
    store = work_store()
    if store is None:
        return
    store.clear(folder.name)
    store.push(UploadWorkspace(folder), ["REMOVED.txt"])
    if instance is not None:
        for record in instance.get_run_records(RunsFilter(tags={PARTITION_TAG: folder.name})):
            store.remove_under(f"{IO_PREFIX}/{record.dagster_run.run_id}/")


class BlobPickleIOManager(ConfigurableIOManager):
    """Step outputs pickled in the work container, at `dagster-io/<run id>/<step>/<output>[/<mapping key>]`.

    The values are small (chunk indexes, record counts): the data moves as work files.
    """

    def _name(self, context: OutputContext) -> str:
        return "/".join([IO_PREFIX, *context.get_identifier()])

    def handle_output(self, context: OutputContext, obj) -> None:
        store = work_store()
        store._ensure_container()
        store.container.upload_blob(self._name(context), pickle.dumps(obj), overwrite=True)

    def load_input(self, context: InputContext):
        store = work_store()
        # The upstream output's run: this run's, or the parent run's when re-executed from failure.
        data = store.container.download_blob(self._name(context.upstream_output)).readall()
        return pickle.loads(data)
