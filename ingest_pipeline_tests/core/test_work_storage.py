"""Work files in a blob container (core/work_storage.py), against Azurite."""

import pytest
from dagster import DagsterInstance, DagsterRun

from ingest_pipeline.core.prepare import UploadWorkspace
from ingest_pipeline.core.work_storage import BlobWorkStore, file_states
from ingest_pipeline.defs.partitions import PARTITION_TAG

pytestmark = pytest.mark.azurite


def test_files_go_through_the_container_from_one_folder_to_another(azurite, tmp_path):
    store = BlobWorkStore(azurite.container_client(create=False), prefix="work")
    owner = UploadWorkspace(tmp_path / "owner" / "u1")
    owner.chunks.mkdir(parents=True)
    owner.manifest.write_text('{"rows": 3}')
    big = bytes(range(256)) * 40_000  # 10 MiB: several blocks each way
    owner.chunk_file(1).write_bytes(big)
    owner.chunk_file(2).write_bytes(b"second")
    assert store.push(owner, sorted(file_states(owner.root))) == len(big) + 6 + 11
    assert store.url("u1", "manifest.json") == f"az://{store.container.container_name}/work/u1/manifest.json"

    worker = UploadWorkspace(tmp_path / "worker" / "u1")
    assert store.pull(worker, ("manifest.json", "chunks/chunk-00001.bin")) == 11 + len(big)
    assert worker.chunk_file(1).read_bytes() == big and not worker.chunk_file(2).exists()
    assert (
        store.pull(worker, ("",), skip=("chunks/chunk-00002",)) == 0
    )  # what it has, at its size, is not fetched again

    assert store.clear("u1") == 3
    assert store.pull(UploadWorkspace(tmp_path / "again" / "u1")) == 0


def test_after_retention_only_the_note_is_left_in_the_container(azurite, tmp_path, monkeypatch):
    from ingest_pipeline.defs import distributed

    store = BlobWorkStore(azurite.container_client(create=False))
    monkeypatch.setattr(distributed, "work_store", lambda: store)
    workspace = UploadWorkspace(tmp_path / "u2")
    workspace.chunks.mkdir(parents=True)
    workspace.chunk_file(1).write_bytes(b"rows")
    store.push(workspace, ["chunks/chunk-00001.bin"])
    workspace.chunk_file(1).unlink()
    workspace.removal_note.write_text("the work files of upload u2 were removed\n")

    # Step outputs of the upload's runs, and of another upload's run, which must stay.
    instance = DagsterInstance.ephemeral()
    for run_id, upload_id in (("run-of-u2", "u2"), ("run-of-u3", "u3")):
        instance.add_run(DagsterRun(job_name="ingest_upload", run_id=run_id, tags={PARTITION_TAG: upload_id}))
        store.container.upload_blob(f"{distributed.IO_PREFIX}/{run_id}/chunk_scans.plan_chunk_scans/result", b"x")

    distributed.remove_work_blobs(workspace.root, instance)

    assert sorted(b.name for b in store.container.list_blobs()) == [
        "dagster-io/run-of-u3/chunk_scans.plan_chunk_scans/result", "u2/REMOVED.txt"]  # fmt: skip
