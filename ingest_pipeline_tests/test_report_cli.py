"""`ingest-pipeline report`: the client report of an upload, labelled by the file's own header."""

import json
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance, RunRequest, SkipReason, build_run_status_sensor_context
from openpyxl import load_workbook

from ingest_pipeline.cli import main
from ingest_pipeline.defs.reports import client_report_after_success

# The file's columns in another order than the filespec's, with one it does not know.
HEADER = (
    "state,employee_id,first_name,last_name,email,phone,zip,role,department,hire_date,salary,hours_per_week,"
    "manager_id,status,notes,badge"
)


def write_upload(path: Path, rows: int = 30) -> Path:
    lines = [
        f"{'XX' if i == 2 else 'CA'},E{i:08d},Ann,Lee,u{i}@example.com,+1-555-0100,94110,analyst,Finance,2020-02-29,"
        f"51000.50,40,E00000001,active,,B{i}"
        for i in range(1, rows + 1)
    ]
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return path


@pytest.fixture
def home(tmp_path, command_environment) -> Path:
    command_environment.delenv("INGEST_WEBHOOK_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def upload_id(home, tmp_path) -> str:
    upload = write_upload(tmp_path / "roster.csv")
    code = main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home),
                 "--executor", "in_process"])  # fmt: skip
    assert code == 0
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute("SELECT upload_id FROM ingest.uploads").fetchone()[0]


def test_the_manifest_keeps_the_files_header(home, upload_id):
    manifest = json.loads((home / "work" / upload_id / "manifest.json").read_text())
    assert manifest["header"] == HEADER.split(",")


def test_report_writes_a_workbook_labelled_by_the_files_header(home, upload_id, tmp_path, capsys):
    out = tmp_path / "out" / "report.xlsx"
    assert main(["report", upload_id, "--out", str(out), "--home", str(home)]) == 0
    assert str(out) in capsys.readouterr().out
    workbook = load_workbook(out)
    assert workbook.sheetnames[0] == "Summary"
    rejected = workbook["Rejected rows"]
    labels = [cell.value for cell in rejected[1]]
    assert labels == ["row_number", "line_number", "problems", *HEADER.split(",")]
    row = rejected[2]
    assert row[0].value == 2
    state = row[labels.index("state")]
    assert state.value == "XX"
    assert state.fill.fgColor.rgb.endswith("FFC7CE")  # the broken cell, found by its header label
    assert row[labels.index("employee_id")].fill.fill_type is None


def test_report_of_an_unknown_upload_is_a_usage_error(home, upload_id, tmp_path, capsys):
    out = tmp_path / "report.xlsx"
    assert main(["report", "0000000000000000", "--out", str(out), "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no upload '0000000000000000'" in err
    assert not out.exists()
    assert main(["report", upload_id, "--out", str(tmp_path / "report.csv"), "--home", str(home)]) == 2


def test_report_in_a_home_without_a_warehouse_creates_nothing(tmp_path, capsys):
    empty = tmp_path / "empty-home"
    assert main(["report", "abc", "--out", str(tmp_path / "r.xlsx"), "--home", str(empty)]) == 2
    assert "no upload 'abc'" in capsys.readouterr().err
    assert not empty.exists()


def test_runs_launched_elsewhere_get_their_report_from_a_sensor(home, upload_id):
    """Runs of the sensor or the UI get a report run; the command line's, which write their own, do not."""
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        run = next(r for r in instance.get_runs() if r.job_name == "ingest_upload")
        event = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_SUCCESS).records[0]
        dagster_event = event.event_log_entry.dagster_event
        context = build_run_status_sensor_context("client_report_after_success", dagster_event, instance, run)
        request = client_report_after_success(context)
        assert isinstance(request, RunRequest)
        assert request.partition_key == upload_id and request.run_key == f"report-{run.run_id}"

        inline = run.with_tags({**run.tags, "ingest/report": "inline"})
        context = build_run_status_sensor_context("client_report_after_success", dagster_event, instance, inline)
        assert isinstance(client_report_after_success(context), SkipReason)
