"""`ingest-pipeline backfill`: registered uploads re-run under a changed filespec, nothing duplicated."""

import shutil
from pathlib import Path

import duckdb
import pytest

from ingest_pipeline.cli import main
from ingest_pipeline.defs.settings import PROJECT_ROOT

ROSTER_HEADER = (
    "employee_id,first_name,last_name,email,phone,state,zip,role,department,hire_date,salary,hours_per_week,"
    "manager_id,status,notes"
)


def roster(*first_names: str) -> str:
    lines = [
        f"E{i:08d},{name},Lee,u{i}@example.com,+1-555-0100,CA,94110,analyst,Sales,2020-02-29,51000.50,40,E00000001,active,"
        for i, name in enumerate(first_names, start=1)
    ]
    return "\n".join([ROSTER_HEADER, *lines]) + "\n"


@pytest.fixture
def env(tmp_path, command_environment) -> tuple[Path, Path]:
    """A fresh home and a copy of the project's filespecs; the environment the command sets is restored."""
    filespecs = tmp_path / "filespecs"
    shutil.copytree(PROJECT_ROOT / "filespecs", filespecs)
    return tmp_path / "home", filespecs


def query(home: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def run(home: Path, filespecs: Path, *args: str) -> int:
    return main([*args, "--home", str(home), "--filespecs", str(filespecs)])


def test_backfill_applies_the_new_rules_without_duplicates(env, tmp_path, capsys):
    home, filespecs = env
    acme = tmp_path / "acme.csv"
    acme.write_text(roster("Ann", "Bob", "Christopher", "Dee"))
    globex = tmp_path / "globex.csv"
    globex.write_text(roster("Maximilian", "Al"))
    assert run(home, filespecs, "run", str(acme), "--company", "acme", "--form-type", "employee_roster") == 0
    assert run(home, filespecs, "run", str(globex), "--company", "globex", "--form-type", "employee_roster") == 0
    counts = "SELECT company_id, filespec_version, status, rows_total, rows_accepted, rows_rejected FROM ingest.uploads ORDER BY 1"
    assert query(home, counts) == [("acme", 1, "completed", 4, 4, 0), ("globex", 1, "completed", 2, 2, 0)]

    # A stricter rule, a looser quality gate (so that the rejects do not fail the upload), a new version.
    spec_file = filespecs / "employee_roster.yaml"
    text = spec_file.read_text()
    for old, new in [("version: 1", "version: 2"), ("{name: first_name, required: true, max_length: 50}",
                     "{name: first_name, required: true, max_length: 5}"), ("max_error_rate: 0.05", "max_error_rate: 0.9")]:  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    spec_file.write_text(text)
    capsys.readouterr()

    assert run(home, filespecs, "backfill", "--form-type", "employee_roster", "--company", "acme") == 0
    out = capsys.readouterr().out
    assert "re-running 1 upload(s) of form type 'employee_roster', company 'acme' under filespec version 2" in out
    assert "completed, rows total/accepted/rejected 4/3/1 (was completed, 4/4/0)" in out
    assert query(home, counts) == [("acme", 2, "completed", 4, 3, 1), ("globex", 1, "completed", 2, 2, 0)]

    assert run(home, filespecs, "backfill", "--form-type", "employee_roster", "--since", "2000-01-01") == 0
    assert "2 of 2 upload(s) completed" in capsys.readouterr().out
    assert query(home, counts) == [("acme", 2, "completed", 4, 3, 1), ("globex", 2, "completed", 2, 1, 1)]
    # Every upload's rows once: accepted rows in results, rejected ones in ingest.rejects, no duplicates.
    results = "SELECT count(*), count(DISTINCT (_upload_id, _row_number)) FROM results.employee_roster"
    assert query(home, results) == [(4, 4)]
    assert query(home, "SELECT count(*), count(DISTINCT (upload_id, row_number)) FROM ingest.rejects") == [(2, 2)]
    assert query(home, "SELECT count(*) FROM ingest.messages WHERE rule = 'max_length'") == [(2,)]
    names = sorted(r[0] for r in query(home, "SELECT first_name FROM results.employee_roster"))
    assert names == ["Al", "Ann", "Bob", "Dee"]


def test_backfill_lists_partition_keys_and_reports_what_it_cannot_run(env, tmp_path, capsys):
    home, filespecs = env
    upload = tmp_path / "roster.csv"
    upload.write_text(roster("Ann"))
    assert run(home, filespecs, "run", str(upload), "--company", "acme", "--form-type", "employee_roster") == 0
    [(upload_id,)] = query(home, "SELECT upload_id FROM ingest.uploads")
    capsys.readouterr()

    assert run(home, filespecs, "backfill", "--form-type", "employee_roster", "--dry-run") == 0
    assert capsys.readouterr().out.splitlines()[-1] == upload_id  # paste into the UI's partition selection

    assert run(home, filespecs, "backfill", "--form-type", "employee_roster", "--since", "2999-01-01") == 0
    assert "no uploads of form type 'employee_roster', received on or after 2999-01-01" in capsys.readouterr().out

    upload.unlink()
    assert run(home, filespecs, "backfill", "--form-type", "employee_roster") == 1
    assert f"upload {upload_id}: skipped, its source {upload} no longer exists" in capsys.readouterr().out
    assert query(home, "SELECT status, rows_accepted FROM ingest.uploads") == [("completed", 1)]

    assert run(home, filespecs, "backfill", "--form-type", "timesheets") == 2
    assert "unknown form type 'timesheets'" in capsys.readouterr().err
    assert run(home, filespecs, "backfill", "--form-type", "employee_roster", "--since", "last week") == 2


def test_backfill_skips_an_entry_that_was_reported_without_being_read(env, tmp_path, capsys):
    """A symbolic link in the landing folder is recorded failed, unread; a backfill must not read it either."""
    from ingest_pipeline.core.uploads import FAILED, register_upload, unread_upload_id
    from ingest_pipeline.core.warehouse import Warehouse

    home, filespecs = env
    secret = tmp_path / "secret.csv"
    secret.write_text(roster("Zed"))
    link = home / "landing" / "evilco" / "employee_roster" / "x.csv"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    upload_id = unread_upload_id("evilco", "employee_roster", str(link), "etag")
    register_upload(Warehouse(home / "warehouse.duckdb"), upload_id=upload_id, company_id="evilco",
                    form_type="employee_roster", source=str(link), sha256=None, size=None, filespec_version=None,
                    status=FAILED, error="Not ingested: 'evilco/employee_roster/x.csv' is a symbolic link.")  # fmt: skip
    assert run(home, filespecs, "backfill", "--form-type", "employee_roster") == 1
    assert f"upload {upload_id}: skipped, its source {link} was never read" in capsys.readouterr().out
    assert query(home, "SELECT status, rows_total FROM ingest.uploads") == [(FAILED, None)]
    assert not (home / "work" / upload_id).exists()
