"""The maintenance sensors and commands on a real home: work folder retention after real runs."""

import datetime as dt
import hashlib
import os
import uuid
from pathlib import Path

import pytest
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    build_sensor_context,
    materialize,
)

from ingest_pipeline.cli import main
from ingest_pipeline.core.uploads import compute_upload_id, get_upload, now, update_upload
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.definitions import defs
from ingest_pipeline.defs.assets import column_profiles
from ingest_pipeline.defs.maintenance import uploads_with_unfinished_runs, webhook_outbox_sensor, work_retention_sensor
from ingest_pipeline.defs.settings import IngestSettings

ROSTER_HEADER = (
    "employee_id,first_name,last_name,email,phone,state,zip,role,department,hire_date,salary,hours_per_week,"
    "manager_id,status,notes"
)


def write_roster(path: Path, rows: int = 30) -> Path:
    lines = [f"E{i:08d},Ann,Lee,u{i}@example.com,+1-555-0100,CA,94110,analyst,Finance,2020-02-29,51000.50,40,"
             "E00000001,active," for i in range(1, rows + 1)]  # fmt: skip
    path.write_text("\n".join([ROSTER_HEADER, *lines]) + "\n")
    return path


def run(home: Path, upload: Path) -> str:
    """`ingest-pipeline run` on the file; returns its upload id."""
    assert main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home),
                 "--executor", "in_process"]) == 0  # fmt: skip
    return compute_upload_id("acme", "employee_roster", hashlib.sha256(upload.read_bytes()).hexdigest())


def age(home: Path, upload_id: str, days: float = 3) -> None:
    """Make the upload look finished `days` ago, its work folder untouched since."""
    then = now() - dt.timedelta(days=days)
    update_upload(Warehouse(home / "warehouse.duckdb"), upload_id, finished_at=then)
    stamp = then.replace(tzinfo=dt.UTC).timestamp()
    for folder, folders, files in os.walk(home / "work" / upload_id):
        for name in [*files, *folders]:
            os.utime(os.path.join(folder, name), (stamp, stamp))
        os.utime(folder, (stamp, stamp))


def tick_retention(home: Path, instance: DagsterInstance) -> str:
    resources = {"ingest_settings": IngestSettings(home=str(home))}
    with build_sensor_context(instance=instance, resources=resources) as context:
        return work_retention_sensor(context).skip_message


@pytest.fixture
def retention_environment(command_environment):
    command_environment.delenv("INGEST_WORK_DIR", raising=False)
    command_environment.delenv("INGEST_WORK_RETENTION_HOURS", raising=False)
    command_environment.delenv("INGEST_WEBHOOK_URL", raising=False)
    return command_environment


def test_the_sensor_removes_an_expired_work_folder_and_a_rerun_of_a_stage_says_to_run_the_upload_again(
    home, tmp_path, retention_environment, capsys
):
    upload_id = run(home, write_roster(tmp_path / "roster.csv"))
    work = home / "work" / upload_id
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert (
            tick_retention(home, instance) == f"no work folder under {home / 'work'} is past its retention time (24 h)"
        )
        assert (work / "manifest.json").exists()

        age(home, upload_id)
        capsys.readouterr()
        assert main(["work-folders", "--home", str(home)]) == 0
        (listed,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(upload_id)]
        assert (
            "completed" in listed and "removed at the next clean: finished and unchanged for more than 24 h" in listed
        )

        assert tick_retention(home, instance).startswith("removed 1 work folder(s), ")
        assert [p.name for p in work.iterdir()] == ["REMOVED.txt"]

        resources = {"ingest_settings": IngestSettings(home=str(home))}
        result = materialize([column_profiles], partition_key=upload_id, instance=instance, resources=resources,
                             raise_on_error=False)  # fmt: skip
        assert not result.success
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        message = failure.step_failure_data.error.message
        assert f"the work files of upload {upload_id} were removed on " in message
        assert "run the whole upload again instead of re-executing one of its stages" in message
        after = get_upload(Warehouse(home / "warehouse.duckdb"), upload_id)
        assert (after["status"], after["error"]) == ("completed", None)  # a refused re-execution changes nothing

    assert run(home, tmp_path / "roster.csv") == upload_id  # the whole upload again: from its source
    assert (work / "manifest.json").exists() and not (work / "REMOVED.txt").exists()
    assert get_upload(Warehouse(home / "warehouse.duckdb"), upload_id)["status"] == "completed"


def test_the_command_cleans_without_a_daemon_and_keeps_recent_folders(home, tmp_path, retention_environment, capsys):
    old = run(home, write_roster(tmp_path / "old.csv", rows=30))
    recent = run(home, write_roster(tmp_path / "recent.csv", rows=31))
    age(home, old)
    capsys.readouterr()

    assert main(["work-folders", "--clean", "--home", str(home)]) == 0

    out = capsys.readouterr().out
    assert f"removed {home / 'work' / old} (" in out and "removed 1 work folder(s)" in out
    assert (home / "work" / recent / "manifest.json").exists()
    assert [p.name for p in (home / "work" / old).iterdir()] == ["REMOVED.txt"]


def test_a_folder_whose_upload_has_a_run_in_progress_is_kept(home, tmp_path, retention_environment):
    upload_id = run(home, write_roster(tmp_path / "roster.csv"))
    age(home, upload_id)
    instance = DagsterInstance.ephemeral()
    instance.add_run(DagsterRun(job_name="ingest_upload", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED,
                                tags={"dagster/partition": upload_id}))  # fmt: skip
    instance.add_run(DagsterRun(job_name="ingest_upload", run_id=str(uuid.uuid4()), status=DagsterRunStatus.SUCCESS,
                                tags={"dagster/partition": "done"}))  # fmt: skip
    assert uploads_with_unfinished_runs(instance) == {upload_id}
    assert tick_retention(home, instance).startswith("no work folder")
    assert (home / "work" / upload_id / "manifest.json").exists()


def test_a_bad_setting_is_one_sentence_in_the_tick_not_a_crash(home, tmp_path, retention_environment):
    retention_environment.setenv("INGEST_WORK_RETENTION_HOURS", "0")
    retention_environment.setenv("INGEST_WEBHOOK_RETRY_SECONDS", "soon")
    with Warehouse(home / "warehouse.duckdb").connect():
        pass  # an empty warehouse
    assert tick_retention(home, DagsterInstance.ephemeral()).startswith(
        "INGEST_WORK_RETENTION_HOURS is '0'; it must be"
    )
    resources = {"ingest_settings": IngestSettings(home=str(home))}
    with build_sensor_context(instance=DagsterInstance.ephemeral(), resources=resources) as context:
        assert webhook_outbox_sensor(context).skip_message.startswith("INGEST_WEBHOOK_RETRY_SECONDS is 'soon'")
    assert main(["work-folders", "--home", str(home)]) == 1  # the command says the same sentence on stderr


def test_the_maintenance_sensors_run_in_the_daemon_by_default():
    sensors = {s.name: s for s in defs.sensors}
    assert sensors["webhook_outbox_sensor"].default_status == DefaultSensorStatus.RUNNING
    assert sensors["work_retention_sensor"].default_status == DefaultSensorStatus.RUNNING
