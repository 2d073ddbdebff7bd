"""The quality checks end to end: real uploads through `ingest-pipeline run` and the Dagster instance."""

from pathlib import Path

import duckdb
import pytest
from dagster import AssetCheckSeverity, AssetKey, DagsterEventType, DagsterInstance, EventRecordsFilter, materialize

from ingest_pipeline.cli import main
from ingest_pipeline.definitions import defs
from ingest_pipeline.defs.assets import accepted_rows
from ingest_pipeline.defs.settings import IngestSettings

ROSTER_HEADER = (
    "employee_id,first_name,last_name,email,phone,state,zip,role,department,hire_date,salary,hours_per_week,"
    "manager_id,status,notes"
)
LIMIT_SENTENCE = "12.5% of rows rejected, above the form type's limit of 5%."


def roster_line(i: int, state: str = "CA", extra: str | None = None) -> str:
    cells = [f"E{i:08d}", "Ann", "Lee", f"u{i}@example.com", "+1-555-0100", state, "94110", "analyst", "Finance",
             "2020-02-29", "51000.50", "40", "E00000001", "active", ""]  # fmt: skip
    if extra is not None:
        cells.append(extra)
    return ",".join(cells)


def write_roster(path: Path, rows: int, bad: int, extra_column: bool = False) -> Path:
    """`rows` records, the last `bad` of them rejected (an unknown state)."""
    header = ROSTER_HEADER + (",badge" if extra_column else "")
    lines = [
        roster_line(i, state="XX" if i > rows - bad else "CA", extra="B1" if extra_column else None)
        for i in range(1, rows + 1)
    ]
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


@pytest.fixture
def home(tmp_path, command_environment) -> Path:
    """A fresh home, with no webhook configured."""
    command_environment.delenv("INGEST_WEBHOOK_URL", raising=False)
    return tmp_path / "home"


def run(home: Path, upload: Path) -> int:
    return main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home),
                 "--executor", "in_process", "--report"])  # fmt: skip


def query(home: Path, sql: str, params=None):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute(sql, params or []).fetchall()


def upload_id_of(home: Path, source: Path) -> str:
    return query(home, "SELECT upload_id FROM ingest.uploads WHERE source = ?", [str(source.resolve())])[0][0]


def check_results(home: Path, upload_id: str) -> dict[str, object]:
    """The latest evaluation of each check for the upload (named in its metadata), by check name."""
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        records = instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION))
    results = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.metadata["upload_id"].value == upload_id:
            results[evaluation.check_name] = evaluation
    return results


def materialized(home: Path, asset: str, upload_id: str) -> bool:
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        records = instance.get_event_records(
            EventRecordsFilter(
                event_type=DagsterEventType.ASSET_MATERIALIZATION,
                asset_key=AssetKey(asset),
                asset_partitions=[upload_id],
            )  # fmt: skip
        )
    return bool(records)


def test_the_checks_are_part_of_the_ingest_job():
    job = defs.resolve_job_def("ingest_upload")
    assert {"upload_findings_error_rate", "upload_findings_drift", "accepted_rows"} <= set(job.graph.node_dict)
    assert {key.name for key in job.asset_layer.asset_graph.asset_check_keys} == {"error_rate", "drift", "conservation"}


def test_an_upload_within_the_limit_completes_and_passes_every_check(home, tmp_path):
    upload = write_roster(tmp_path / "roster.csv", rows=40, bad=1)
    assert run(home, upload) == 0
    upload_id = upload_id_of(home, upload)
    assert query(home, "SELECT status, error FROM ingest.uploads WHERE upload_id = ?", [upload_id]) == [
        ("completed", None)
    ]
    results = check_results(home, upload_id)
    assert {name: r.passed for name, r in results.items()} == {"error_rate": True, "drift": True, "conservation": True}
    gate = results["error_rate"]
    assert gate.severity == AssetCheckSeverity.ERROR
    assert gate.metadata["error_rate"].value == 0.025 and gate.metadata["max_error_rate"].value == 0.05
    assert results["conservation"].metadata["results_rows"].value == 39
    assert results["conservation"].metadata["rejects_rows"].value == 1
    assert materialized(home, "accepted_rows", upload_id)
    assert materialized(home, "client_report", upload_id)
    assert (home / "reports" / f"{upload_id}.xlsx").is_file()


def test_an_upload_above_the_limit_fails_its_gate_and_publishes_nothing(home, tmp_path, capsys):
    upload = write_roster(tmp_path / "roster.csv", rows=40, bad=5)
    assert run(home, upload) == 1
    assert LIMIT_SENTENCE in capsys.readouterr().err
    upload_id = upload_id_of(home, upload)
    assert query(home, "SELECT status, error, rows_total, rows_accepted, rows_rejected FROM ingest.uploads "
                       "WHERE upload_id = ?", [upload_id]) == [("failed", LIMIT_SENTENCE, 40, 35, 5)]  # fmt: skip
    published = query(home, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'employee_roster'")[0][0]
    if published:
        assert query(home, "SELECT count(*) FROM results.employee_roster WHERE _upload_id = ?", [upload_id]) == [(0,)]
    assert query(home, "SELECT count(*) FROM ingest.rejects WHERE upload_id = ?", [upload_id]) == [(5,)]
    assert query(home, "SELECT count(*) FROM ingest.messages WHERE upload_id = ? AND rule = 'lookup'", [upload_id]) == [
        (5,)
    ]
    assert query(home, "SELECT count(*) FROM ingest.column_summary WHERE upload_id = ?", [upload_id]) == [(15,)]

    results = check_results(home, upload_id)
    gate = results["error_rate"]
    assert not gate.passed and gate.severity == AssetCheckSeverity.ERROR
    assert gate.description == LIMIT_SENTENCE
    assert gate.metadata["rows_rejected"].value == 5 and gate.metadata["published"].value is False
    conservation = results["conservation"]  # the publish step checks that nothing of it was published
    assert conservation.passed and conservation.metadata["results_rows"].value == 0
    assert conservation.metadata["rejects_rows"].value == 5
    assert not materialized(home, "accepted_rows", upload_id)
    assert materialized(home, "upload_findings", upload_id)
    assert materialized(home, "client_report", upload_id)  # the report exists for gated uploads too
    assert (home / "reports" / f"{upload_id}.xlsx").is_file()


def test_publishing_alone_still_holds_the_gate(home, tmp_path):
    """A run of accepted_rows without the check (say, from the UI) does not publish a gated upload."""
    upload = write_roster(tmp_path / "roster.csv", rows=40, bad=5)
    assert run(home, upload) == 1
    upload_id = upload_id_of(home, upload)
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        result = materialize([accepted_rows], partition_key=upload_id, instance=instance, raise_on_error=False,
                             resources={"ingest_settings": IngestSettings(home=str(home))})  # fmt: skip
    assert not result.success
    assert query(home, "SELECT status, error FROM ingest.uploads WHERE upload_id = ?", [upload_id]) == [
        ("failed", LIMIT_SENTENCE)
    ]
    published = query(home, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'employee_roster'")[0][0]
    if published:
        assert query(home, "SELECT count(*) FROM results.employee_roster WHERE _upload_id = ?", [upload_id]) == [(0,)]


def test_drift_warns_of_an_extra_column_without_stopping_the_upload(home, tmp_path):
    upload = write_roster(tmp_path / "roster.csv", rows=20, bad=0, extra_column=True)
    assert run(home, upload) == 0
    upload_id = upload_id_of(home, upload)
    results = check_results(home, upload_id)
    drift = results["drift"]
    assert not drift.passed and drift.severity == AssetCheckSeverity.WARN
    assert "extra column(s) 'badge'" in drift.description
    assert drift.metadata["extra_columns"].value == ["badge"]
    assert results["error_rate"].passed and results["conservation"].passed
    assert query(home, "SELECT status FROM ingest.uploads WHERE upload_id = ?", [upload_id]) == [("completed",)]


def test_a_run_launched_without_tags_names_its_upload(home, tmp_path):
    """As from the launchpad or a backfill: only the partition is given; prepare tags the run."""
    from ingest_pipeline.defs.assets import upload_chunks
    from ingest_pipeline.defs.resources import landing_storage_resource_from_env

    upload = write_roster(tmp_path / "roster.csv", rows=10, bad=0)
    assert run(home, upload) == 0
    upload_id = upload_id_of(home, upload)
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        result = materialize([upload_chunks], partition_key=upload_id, instance=instance,
                             resources={"ingest_settings": IngestSettings(home=str(home)),
                                        "landing": landing_storage_resource_from_env()})  # fmt: skip
        tags = instance.get_run_by_id(result.run_id).tags
    received_at = query(home, "SELECT received_at FROM ingest.uploads WHERE upload_id = ?", [upload_id])[0][0]
    assert tags["ingest/company_id"] == "acme" and tags["ingest/form_type"] == "employee_roster"
    assert tags["ingest/source"] == str(upload.resolve()) and tags["ingest/received_at"] == str(received_at)
