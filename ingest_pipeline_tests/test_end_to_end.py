"""End to end through the real `ingest-pipeline` command and the real Dagster assets and instance."""

import shutil
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, ReexecutionOptions, execute_job, reconstructable

from ingest_pipeline.cli import command_line_run_config, main
from ingest_pipeline.definitions import defs, ingest_upload_job_def, validate_upload_job_def

PROJECT = Path(__file__).resolve().parents[1]
ROSTER_HEADER = "employee_id,first_name,last_name,email,phone,state,zip,role,department,hire_date,salary,hours_per_week,manager_id,status,notes"


def roster_line(i: int, **overrides: str) -> str:
    values = {
        "employee_id": f"E{i:08d}", "first_name": "Ann", "last_name": "Lee, Jr.", "email": f"u{i}@example.com",
        "phone": "+1-555-0100", "state": "CA", "zip": "94110", "role": "analyst", "department": "Finance",
        "hire_date": "2020-02-29", "salary": "51000.50", "hours_per_week": "40", "manager_id": "E00000001",
        "status": "active", "notes": "",
    }  # fmt: skip
    values.update(overrides)
    return ",".join(f'"{v}"' if "," in v else v for v in values.values())


def query(home: Path, sql: str, params=None):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute(sql, params or []).fetchall()


def write_roster(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([ROSTER_HEADER, *lines]) + "\n")
    return path


def test_definitions_load():
    job = defs.resolve_job_def("ingest_upload")
    assert {"upload_chunks", "chunk_scans", "column_profiles", "upload_findings", "accepted_rows"} <= set(job.graph.node_dict)
    checks = {key.name for key in job.asset_layer.asset_graph.asset_check_keys}
    assert {"error_rate", "drift", "conservation"} <= checks
    assert defs.resolve_job_def("validate_upload") is not None


@pytest.fixture
def filespecs_without_gate(tmp_path) -> Path:
    """The project's filespecs with employee_roster's quality gate removed (tests that reject most rows)."""
    folder = tmp_path / "filespecs"
    shutil.copytree(PROJECT / "filespecs", folder)
    roster = folder / "employee_roster.yaml"
    roster.write_text(roster.read_text().replace("quality:\n  max_error_rate: 0.05\n", ""))
    assert "max_error_rate" not in roster.read_text()
    return folder


def test_run_prints_the_outcome_and_fills_the_contract_tables(home, tmp_path, capsys, filespecs_without_gate):
    upload = write_roster(tmp_path / "roster.csv", [
        roster_line(1), roster_line(2, state="XX"), roster_line(3, hire_date="2019-1-5"), roster_line(1, first_name="Dup"),
    ])  # fmt: skip
    code = main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home),
                 "--filespecs", str(filespecs_without_gate)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    upload_id = out.split()[1].rstrip(":")
    assert "completed" in out and "4 total, 1 accepted, 3 rejected" in out
    assert query(home, "SELECT company_id, form_type, filespec_version, status, rows_total, rows_accepted, rows_rejected, error FROM ingest.uploads") == [
        ("acme", "employee_roster", 1, "completed", 4, 1, 3, None)]  # fmt: skip
    assert query(home, "SELECT row_number, line_number, field, rule, value FROM ingest.messages ORDER BY row_number") == [
        (2, 3, "state", "lookup", "XX"), (3, 4, "hire_date", "type", "2019-1-5"), (4, 5, "employee_id", "unique", "E00000001")]  # fmt: skip
    assert [r[0] for r in query(home, "SELECT row_number FROM ingest.rejects ORDER BY 1")] == [2, 3, 4]
    # Typed results with enrich columns from the company's users table.
    assert query(home, "SELECT _upload_id, _row_number, employee_id, last_name, hire_date::VARCHAR, salary, hours_per_week, user_id FROM results.employee_roster") == [
        (upload_id, 1, "E00000001", "Lee, Jr.", "2020-02-29", 51000.5, 40, "au00001")]  # fmt: skip
    stages = {row[0] for row in query(home, "SELECT stage FROM ingest.stage_metrics WHERE seconds >= 0 AND peak_rss_bytes > 0")}
    assert stages == {"prepare", "scan", "columns", "merge", "publish"}
    summary = query(home, "SELECT field, rows, nulls, distinct_values, errors FROM ingest.column_summary WHERE field IN ('employee_id', 'notes', 'state')")
    assert sorted(summary) == [("employee_id", 4, 0, 3, 1), ("notes", 4, 4, 0, 0), ("state", 4, 0, 2, 1)]
    # The run is a real Dagster run on the home's instance (so it shows in the UI).
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].tags["dagster/partition"] == upload_id and runs[0].is_success

    assert main(["status", "--home", str(home)]) == 0
    listed = capsys.readouterr().out
    assert upload_id in listed and " 1/1 " in listed
    assert main(["status", upload_id, "--home", str(home)]) == 0
    facts, chunks = capsys.readouterr().out.split("\n\n")  # the upload's figures, then its chunks
    shown = dict(line.strip().split(": ", 1) for line in facts.splitlines())
    assert shown["chunks_done"] == shown["chunks_total"] == "1"  # the figures of the list
    assert [line.split() for line in chunks.splitlines()[1:]] == [["1", "1", "4", "completed", "3"]]


def test_the_same_upload_twice_leaves_the_tables_as_one_run_would(home, tmp_path):
    upload = write_roster(tmp_path / "roster.csv", [roster_line(i) for i in range(1, 30)] + [roster_line(5)])
    args = ["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home)]
    assert main(args) == 0
    snapshot = [query(home, f"SELECT * FROM {table} ORDER BY ALL") for table in ("ingest.messages", "ingest.rejects", "results.employee_roster", "ingest.column_summary")]
    assert main([*args, "--chunk-rows", "4"]) == 0
    again = [query(home, f"SELECT * FROM {table} ORDER BY ALL") for table in ("ingest.messages", "ingest.rejects", "results.employee_roster", "ingest.column_summary")]
    assert again == snapshot
    assert query(home, "SELECT count(*), min(rows_total) FROM ingest.uploads") == [(1, 30)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.csv", "--company", "acme", "--form-type", "employee_roster"], "no such file: missing.csv"),
        (["run", "{file}", "--company", "acme", "--form-type", "unknown_form"], "unknown form type 'unknown_form'"),
        (["run", "{file}", "--company", "acme"], "the following arguments are required: --form-type"),
        (["run", "{file}", "--company", "a/b", "--form-type", "employee_roster"], "company id 'a/b' must be"),
        (["run", "{file}", "--company", "..", "--form-type", "employee_roster"], "company id '..' must be"),
        (["run", "{file}", "--company", ".", "--form-type", "employee_roster"], "company id '.' must be"),
        (["run", "{file}", "--company", "", "--form-type", "employee_roster"], "company id '' must be"),
        (["generate", "--form-type", "employee_roster", "--rows", "1", "--out", "{file}", "--company", ".."],
         "company id '..' must be"),  # fmt: skip
        (["backfill", "--form-type", "employee_roster", "--company", "../x"], "company id '../x' must be"),
        (["run", "{file}", "--company", "acme", "--form-type", "employee_roster", "--chunk-rows", "0"], "--chunk-rows must be 1 or more"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(home, tmp_path, capsys, args, message):
    upload = write_roster(tmp_path / "roster.csv", [roster_line(1)])
    code = main([a.replace("{file}", str(upload)) for a in args] + (["--home", str(home)] if args[0] != "frobnicate" else []))
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_file_failing_an_upload_rule_exits_1_with_the_reason(home, tmp_path, capsys):
    upload = tmp_path / "short_header.csv"
    upload.write_text("employee_id,first_name\nE00000001,Ann\n")
    code = main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home)])
    captured = capsys.readouterr()
    assert code == 1
    assert "failed: The header has no column 'last_name' for field 'last_name'" in captured.err
    status, error = query(home, "SELECT status, error FROM ingest.uploads")[0]
    assert status == "failed" and error.startswith("The header has no column 'last_name'")
    assert query(home, "SELECT count(*) FROM ingest.messages WHERE rule = 'missing_column'") == [(13,)]


def test_a_file_of_another_form_type_fails_at_once_naming_what_it_looks_like(home, tmp_path, capsys):
    claims = tmp_path / "claims.txt"
    assert main(["generate", "--form-type", "claims_extract", "--rows", "3000", "--out", str(claims), "--home", str(home)]) == 0
    code = main(["run", str(claims), "--company", "acme", "--form-type", "payroll", "--home", str(home)])
    err = capsys.readouterr().err
    assert code == 1
    assert "failed: The file does not look like payroll: 0 of its first 3000 records have the layout's cells" in err
    assert "it looks like claims_extract." in err
    assert query(home, "SELECT status, rows_total, rows_rejected FROM ingest.uploads") == [("failed", None, None)]
    assert query(home, "SELECT rule FROM ingest.messages") == [("layout",)]
    assert query(home, "SELECT count(*) FROM ingest.stage_metrics WHERE stage = 'scan'") == [(0,)]


def test_check_spec(tmp_path, capsys):
    assert main(["check-spec", str(PROJECT / "filespecs" / "payroll.yaml")]) == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("form_type: broken\nfields:\n  - {name: a, type: integer, minimun: 3}\n")
    assert main(["check-spec", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml: fields[0] (a): unknown key 'minimun'" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00", "spec.yaml: is a binary file"),
        (b"form_type: spec\nfields: [{name: a}]\nfields: [{name: b}]\n", "spec.yaml: line 3: duplicate key 'fields'"),
        (b"form_type: spec\nversion: 99999999999999999999999\nfields: [{name: a}]\n", "spec.yaml: version: must be at most"),
        (b"form_type: spec\nfields: [{name: a, pattern: '[[:digit:]]'}]\n", "spec.yaml: fields[0] (a).pattern: pattern"),
        (b"form_type: spec\nfeilds: [{name: a}]\n", "spec.yaml: top level: unknown key 'feilds'"),
    ],
)
def test_check_spec_refuses_in_one_line(tmp_path, capsys, content, expected):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(content)
    assert main(["check-spec", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ingest-pipeline: error: {spec}") and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_one_failed_chunk_is_re_executed_without_redoing_the_others(home, tmp_path, capsys):
    """Multiprocess run whose chunk 2 fails; re-executing from failure runs only that chunk and what follows."""
    upload = write_roster(tmp_path / "roster.csv", [roster_line(i) for i in range(1, 10)])
    # Register and prepare through the command (prepare only, then break chunk 2's work file).
    assert main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home),
                 "--chunk-rows", "3", "--executor", "multiprocess"]) == 0  # fmt: skip
    upload_id = query(home, "SELECT upload_id FROM ingest.uploads")[0][0]
    chunk = home / "work" / upload_id / "chunks" / "chunk-00002.bin"
    saved = chunk.read_bytes()
    with DagsterInstance.get() as instance:
        run_config = command_line_run_config(in_process=False)
        tags = {"dagster/partition": upload_id}
        # A run that skips prepare (it would rewrite the chunk files) and finds chunk 2 broken.
        chunk.write_bytes(saved[: len(saved) // 2])
        failed = execute_job(reconstructable(ingest_upload_job_def), instance, run_config=run_config, tags=tags,
                             asset_selection=[k for k in defs.resolve_job_def("ingest_upload").asset_layer.executable_asset_keys
                                              if k.path != ["upload_chunks"]])  # fmt: skip
        assert not failed.success
        assert query(home, "SELECT status FROM ingest.uploads") == [("failed",)]
        chunk.write_bytes(saved)
        retried = execute_job(
            reconstructable(ingest_upload_job_def), instance, run_config=run_config, tags=tags,  # the UI copies them too
            reexecution_options=ReexecutionOptions.from_failure(failed.run_id, instance),
        )  # fmt: skip
        assert retried.success
        executed = {e.step_key for e in instance.all_logs(retried.run_id, of_type=DagsterEventType.STEP_SUCCESS)}
    assert "chunk_scans.scan_upload_chunk[chunk_00002]" in executed
    assert not executed & {"chunk_scans.scan_upload_chunk[chunk_00001]", "chunk_scans.scan_upload_chunk[chunk_00003]", "upload_chunks"}
    assert query(home, "SELECT status, rows_total, rows_accepted FROM ingest.uploads") == [("completed", 9, 9)]
    assert query(home, "SELECT count(*) FROM results.employee_roster") == [(9,)]
    shutil.rmtree(home / "work")


def test_validate_only_run_judges_the_upload_but_publishes_nothing_and_keeps_its_status(home, tmp_path):
    upload = write_roster(tmp_path / "roster.csv", [roster_line(1), roster_line(2, state="XX"), roster_line(1)])
    assert main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home),
                 "--filespecs", str(PROJECT / "filespecs")]) == 1  # 2 of 3 rejected: above the 5% gate  # fmt: skip
    upload_id, status, error = query(home, "SELECT upload_id, status, error FROM ingest.uploads")[0]
    tables = [query(home, f"SELECT * FROM {t} ORDER BY ALL") for t in ("ingest.messages", "ingest.uploads")]
    with DagsterInstance.get() as instance:
        result = execute_job(reconstructable(validate_upload_job_def), instance,
                             run_config=command_line_run_config(in_process=True), tags={"dagster/partition": upload_id})  # fmt: skip
        assert result.success
        profiles = instance.get_latest_materialization_event(AssetKey("column_profiles"))
    assert profiles.asset_materialization.metadata["rows_rejected"].value == 2
    assert [query(home, f"SELECT * FROM {t} ORDER BY ALL") for t in ("ingest.messages", "ingest.uploads")] == tables
    assert (status, error) == ("failed", "66.7% of rows rejected, above the form type's limit of 5%.")


def test_several_runs_started_together_on_a_fresh_home_all_complete(home, tmp_path):
    """Separate `ingest-pipeline run` processes share one fresh home: the Dagster instance is
    created once (not migrated by two processes at the same time) and DuckDB writers take turns."""
    import subprocess
    import sys

    uploads = [write_roster(tmp_path / f"roster{i}.csv", [roster_line(j) for j in range(i, i + 20)]) for i in range(3)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "ingest_pipeline.cli", "run", str(upload), "--company", "acme", "--form-type",
             "employee_roster", "--home", str(home), "--executor", "in_process"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for upload in uploads
    ]  # fmt: skip
    outcomes = [(process.wait(timeout=300), process.stderr.read()) for process in processes]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    assert query(home, "SELECT status, count(*) FROM ingest.uploads GROUP BY status") == [("completed", 3)]
    assert query(home, "SELECT count(*) FROM results.employee_roster") == [(60,)]


def test_the_work_folder_can_live_outside_the_home(home, tmp_path, monkeypatch):
    shared = tmp_path / "shared-mount" / "work"
    monkeypatch.setenv("INGEST_WORK_DIR", str(shared))
    upload = write_roster(tmp_path / "roster.csv", [roster_line(i) for i in range(1, 8)])
    assert main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home),
                 "--chunk-rows", "3", "--executor", "multiprocess"]) == 0  # fmt: skip
    upload_id = query(home, "SELECT upload_id FROM ingest.uploads")[0][0]
    assert sorted(p.name for p in (shared / upload_id / "chunks").iterdir()) == [f"chunk-0000{i}.bin" for i in (1, 2, 3)]
    assert not (home / "work").exists()
    assert query(home, "SELECT rows_accepted FROM ingest.uploads") == [(7,)]
