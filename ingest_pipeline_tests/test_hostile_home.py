"""A home folder's name is text from the user: `ingest-pipeline run` works in any, and none becomes SQL."""


import duckdb
import pytest

from ingest_pipeline.cli import main
from ingest_pipeline_tests.test_end_to_end import roster_line, write_roster

# Closes the quote of a `SET temp_directory = '<home>/...'`, runs a statement, reopens a quote.
CRAFTED = "y'; CREATE TABLE pwned AS SELECT 42 AS a; SET temp_directory = '"


@pytest.mark.parametrize("home_name", ["o'brien's home", f"h/{CRAFTED}"], ids=["apostrophe", "crafted"])
def test_run_works_in_a_home_whose_name_is_sql_and_creates_no_table(tmp_path, command_environment, capsys, home_name):
    command_environment.delenv("INGEST_WORK_DIR", raising=False)  # the work folder under the home as well
    home = tmp_path / home_name
    # 25 rows, one rejected: within the roster's quality gate (5%)
    upload = write_roster(tmp_path / "roster.csv", [roster_line(i, state="XX" if i == 2 else "CA") for i in range(1, 26)])
    code = main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home),
                 "--executor", "in_process"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "25 total, 24 accepted, 1 rejected" in out
    assert {"dagster", "warehouse.duckdb", "work"} <= {p.name for p in home.iterdir()}  # all under the crafted name
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        tables = connection.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        assert ("results", "employee_roster") in tables
        assert not [name for _, name in tables if name == "pwned"]
        assert connection.execute("SELECT count(*) FROM results.employee_roster").fetchone() == (24,)
