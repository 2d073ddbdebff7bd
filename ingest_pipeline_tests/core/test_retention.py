"""Retention of work folders: which are removed, which are kept and why, and what is left behind."""

import datetime as dt
import os
from pathlib import Path

import pytest

from ingest_pipeline.core.errors import ConfigurationError, WorkFilesRemovedError
from ingest_pipeline.core.prepare import UploadWorkspace
from ingest_pipeline.core.retention import (
    KEPT,
    REMOVABLE,
    REMOVED,
    UNKNOWN,
    RetentionPolicy,
    remove_expired_work_folders,
    remove_work_folder,
    survey_work_folders,
    work_folders_root,
)
from ingest_pipeline.core.uploads import now, register_upload, update_upload
from ingest_pipeline.core.warehouse import Warehouse

POLICY = RetentionPolicy(hours=24)
LONG_AGO = now() - dt.timedelta(days=3)


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "home" / "warehouse.duckdb")


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("INGEST_WORK_DIR", raising=False)
    return work_folders_root(tmp_path / "home")


def upload(warehouse: Warehouse, upload_id: str, status: str, finished_at: dt.datetime | None) -> None:
    register_upload(warehouse, upload_id=upload_id, company_id="acme", form_type="employee_roster", source="x.csv",
                    sha256=None, size=None, filespec_version=1)  # fmt: skip
    update_upload(warehouse, upload_id, status=status, finished_at=finished_at)


def work_folder(root: Path, upload_id: str, changed_at: dt.datetime = LONG_AGO) -> UploadWorkspace:
    """A work folder with a manifest and a chunk file, all last changed at `changed_at`."""
    workspace = UploadWorkspace(root / upload_id)
    workspace.chunks.mkdir(parents=True)
    workspace.manifest.write_text("{}")
    workspace.chunk_file(1).write_bytes(b"x" * 1000)
    stamp = changed_at.replace(tzinfo=dt.UTC).timestamp()
    for path in [workspace.chunk_file(1), workspace.manifest, workspace.chunks, workspace.root]:
        os.utime(path, (stamp, stamp))
    return workspace


def verdicts(warehouse: Warehouse, root: Path, in_use: set[str] = frozenset()) -> dict[str, tuple[str, str]]:
    return {f.upload_id: (f.state, f.reason) for f in survey_work_folders(warehouse, root, POLICY, in_use)}


def test_only_folders_of_uploads_finished_and_untouched_for_the_retention_time_are_removable(warehouse, root):
    recently = now() - dt.timedelta(hours=2)
    cases = {
        "completed_old": ("completed", LONG_AGO, LONG_AGO),
        "failed_old": ("failed", LONG_AGO, LONG_AGO),
        "completed_recent": ("completed", recently, recently),
        "failed_but_rerun_step_wrote": ("failed", LONG_AGO, recently),  # a stage re-executed since
        "queued": ("queued", LONG_AGO, LONG_AGO),
        "processing": ("processing", LONG_AGO, LONG_AGO),
        "in_a_run": ("failed", LONG_AGO, LONG_AGO),
    }
    for upload_id, (status, finished_at, changed_at) in cases.items():
        upload(warehouse, upload_id, status, finished_at)
        work_folder(root, upload_id, changed_at)
    work_folder(root, "not_in_the_warehouse")

    assert verdicts(warehouse, root, in_use={"in_a_run"}) == {
        "completed_old": (REMOVABLE, "finished and unchanged for more than 24 h"),
        "failed_old": (REMOVABLE, "finished and unchanged for more than 24 h"),
        "completed_recent": (KEPT, "finished less than 24 h ago"),
        "failed_but_rerun_step_wrote": (KEPT, "changed less than 24 h ago"),
        "queued": (KEPT, "the upload is queued"),
        "processing": (KEPT, "the upload is processing"),
        "in_a_run": (KEPT, "a run of the upload is queued or in progress"),
        "not_in_the_warehouse": (UNKNOWN, "the warehouse has no such upload; left alone"),
    }
    removed = remove_expired_work_folders(warehouse, root, POLICY, in_use={"in_a_run"})
    assert sorted(f.upload_id for f in removed) == ["completed_old", "failed_old"]
    assert all(f.bytes == 1002 for f in removed)
    assert {upload_id: state for upload_id, (state, _) in verdicts(warehouse, root).items()} == {
        "completed_old": REMOVED, "failed_old": REMOVED, "completed_recent": KEPT,
        "failed_but_rerun_step_wrote": KEPT, "queued": KEPT, "processing": KEPT, "in_a_run": REMOVABLE,
        "not_in_the_warehouse": UNKNOWN,
    }  # fmt: skip
    assert UploadWorkspace(root / "queued").chunk_file(1).exists()


def test_a_removed_folder_keeps_only_its_note_and_a_rerun_of_a_stage_says_what_to_do(warehouse, root):
    upload(warehouse, "u1", "failed", LONG_AGO)
    workspace = work_folder(root, "u1")

    told = []  # what a distributed deployment removes from its work container (defs/distributed.py)
    (removed,) = remove_expired_work_folders(warehouse, root, POLICY, on_removed=told.append)

    assert told == [workspace.root]
    assert [p.name for p in workspace.root.iterdir()] == ["REMOVED.txt"]
    for load in (workspace.load_manifest, workspace.load_filespec):
        with pytest.raises(WorkFilesRemovedError) as error:
            load()
        message = str(error.value)
        assert message.startswith("the work files of upload u1 were removed on ")
        assert message.endswith(
            "UTC, more than 24 hours after it finished (INGEST_WORK_RETENTION_HOURS); run the whole upload again "
            "instead of re-executing one of its stages"
        )
    assert remove_expired_work_folders(warehouse, root, POLICY) == []  # removed once


def test_an_upload_that_starts_again_between_the_survey_and_the_removal_keeps_its_folder(warehouse, root):
    upload(warehouse, "u1", "completed", LONG_AGO)
    workspace = work_folder(root, "u1")
    (folder,) = survey_work_folders(warehouse, root, POLICY)
    assert folder.state == REMOVABLE

    update_upload(warehouse, "u1", status="processing", finished_at=None)  # a rerun's prepare, meanwhile

    assert remove_work_folder(warehouse, folder, POLICY) is False
    assert workspace.chunk_file(1).exists() and not workspace.removal_note.exists()


def test_leftovers_of_an_interrupted_removal_are_deleted(warehouse, root):
    upload(warehouse, "u1", "completed", now())
    work_folder(root, "u1", now())
    leftover = root / ".removing-u0-1234abcd"
    (leftover / "chunks").mkdir(parents=True)
    remove_expired_work_folders(warehouse, root, POLICY)
    assert not leftover.exists() and (root / "u1").exists()


def test_the_work_folders_root_follows_ingest_work_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INGEST_WORK_DIR", str(tmp_path / "shared"))
    assert work_folders_root(tmp_path / "home") == tmp_path / "shared"
    assert work_folders_root(tmp_path / "home", tmp_path / "other") == tmp_path / "other"


def test_retention_is_hours_above_zero_or_never():
    assert RetentionPolicy.from_env({}) == RetentionPolicy(hours=24)
    assert RetentionPolicy.from_env({"INGEST_WORK_RETENTION_HOURS": "0.5"}).hours == 0.5
    assert RetentionPolicy.from_env({"INGEST_WORK_RETENTION_HOURS": "Never"}).keeps_for_ever
    for value in ("0", "-1", "a day", "inf"):
        with pytest.raises(ConfigurationError, match=f"INGEST_WORK_RETENTION_HOURS is '{value}'; it must be"):
            RetentionPolicy.from_env({"INGEST_WORK_RETENTION_HOURS": value})


def test_never_keeps_every_folder(warehouse, root):
    upload(warehouse, "u1", "completed", LONG_AGO)
    work_folder(root, "u1")
    assert remove_expired_work_folders(warehouse, root, RetentionPolicy(hours=None)) == []
    assert (root / "u1" / "manifest.json").exists()
