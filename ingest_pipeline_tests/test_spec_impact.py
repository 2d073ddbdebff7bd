"""`backfill --dry-run --impact`: generated uploads registered by real runs, a rule tightened and
another loosened, and the rows that would flip counted exactly, against an independent count
from the files and the warehouse's recorded messages; the warehouse is left as it was."""

import csv
import shutil
from pathlib import Path

import duckdb
import pytest

from ingest_pipeline.cli import main
from ingest_pipeline.defs.settings import PROJECT_ROOT


@pytest.fixture
def env(tmp_path, command_environment) -> tuple[Path, Path]:
    filespecs = tmp_path / "filespecs"
    shutil.copytree(PROJECT_ROOT / "filespecs", filespecs)
    spec = filespecs / "employee_roster.yaml"
    spec.write_text(spec.read_text().replace("max_error_rate: 0.05", "max_error_rate: 0.9"))  # every upload completes
    return tmp_path / "home", filespecs


def cli(home: Path, filespecs: Path, *args: str) -> int:
    return main([*args, "--home", str(home), "--filespecs", str(filespecs)])


def query(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute(sql, params or []).fetchall()


def tightened(filespecs: Path, out: Path) -> Path:
    """hours_per_week at most 40 (was 168), role without `viewer`, zip without its pattern; version 2."""
    text = (filespecs / "employee_roster.yaml").read_text()
    for old, new in [("version: 1", "version: 2"), ("maximum: '168'", "maximum: '40'"),
                     ("clerk, auditor, viewer]", "clerk, auditor]"), ("{name: zip, pattern: '[0-9]{5}'}", "{name: zip}")]:  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    out.write_text(text)
    return out


def independent_counts(home: Path, upload_id: str, source: Path) -> dict[str, tuple[int, int]]:
    """rule -> (accepted -> rejected, rejected -> accepted), from the file's cells and the recorded messages."""
    rejected = {r for (r,) in query(home, "SELECT row_number FROM ingest.rejects WHERE upload_id = ?", [upload_id])}
    errors: dict[int, set[str]] = {}
    for row, field, rule in query(home, "SELECT row_number, field, rule FROM ingest.messages WHERE upload_id = ? "
                                        "AND severity = 'error' AND row_number IS NOT NULL", [upload_id]):  # fmt: skip
        errors.setdefault(row, set()).add(f"{field}.{rule}" if field else rule)
    counts = {"hours_per_week.maximum": [0, 0], "role.enum": [0, 0], "zip.pattern": [0, 0]}
    with open(source, newline="", encoding="utf-8", errors="surrogateescape") as stream:
        records = [r for r in csv.reader(stream) if r][1:]
    for row_number, record in enumerate(records, start=1):  # columns as in filespecs/employee_roster.yaml
        if len(record) != 15:
            assert row_number in rejected
            continue
        hours, role = record[11].strip(), record[7].strip()
        too_long = hours.lstrip("+-").isdigit() and int(hours) > 40
        newly_broken = {"hours_per_week.maximum"} if too_long else set()
        if role == "viewer":
            newly_broken.add("role.enum")
        if row_number not in rejected:
            for rule in newly_broken:
                counts[rule][0] += 1
        elif errors.get(row_number) == {"zip.pattern"} and not newly_broken:
            counts["zip.pattern"][1] += 1
    return {rule: tuple(pair) for rule, pair in counts.items()}


def test_impact_counts_rows_that_flip_exactly_and_changes_nothing(env, tmp_path, capsys):
    home, filespecs = env
    sources = []
    for seed, company in [(1, "acme"), (2, "globex")]:
        source = tmp_path / f"{company}.csv"
        assert cli(home, filespecs, "generate", "--form-type", "employee_roster", "--rows", "400", "--error-rate", "0.05",
                   "--seed", str(seed), "--company", company, "--out", str(source)) == 0  # fmt: skip
        assert cli(home, filespecs, "run", str(source), "--company", company, "--form-type", "employee_roster") == 0
        sources.append(source)
    uploads = query(home, "SELECT upload_id, source FROM ingest.uploads ORDER BY received_at")
    assert len(uploads) == 2
    new_spec = tightened(filespecs, tmp_path / "roster_v2.yaml")
    before = query(home, "SELECT * FROM ingest.uploads ORDER BY upload_id")
    published = query(home, "SELECT count(*) FROM results.employee_roster")
    runs_before = len(list((home / "logs").glob("*")))
    capsys.readouterr()

    assert cli(home, filespecs, "backfill", "--form-type", "employee_roster", "--dry-run", "--impact",
               "--spec", str(new_spec)) == 0  # fmt: skip
    out = capsys.readouterr().out

    expected = {"hours_per_week.maximum": [0, 0], "role.enum": [0, 0], "zip.pattern": [0, 0]}
    for upload_id, source in uploads:
        counts = independent_counts(home, upload_id, Path(source))
        for rule, (to_rejected, to_accepted) in counts.items():
            expected[rule][0] += to_rejected
            expected[rule][1] += to_accepted
        assert f"upload {upload_id} " in out
    # The loosened rule and the tightened ones all have rows to show (else the test proves little).
    assert (
        expected["hours_per_week.maximum"][0] > 20 and expected["role.enum"][0] > 20 and expected["zip.pattern"][1] > 0
    )
    for rule, (to_rejected, to_accepted) in expected.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(rule + " "))
        assert line.split() == [
            rule,
            str(to_rejected),
            "accepted",
            "->",
            "rejected",
            str(to_accepted),
            "rejected",
            "->",
            "accepted",
        ], line
    # Nothing changed: the uploads, their status and version, the published rows, no new run.
    assert query(home, "SELECT * FROM ingest.uploads ORDER BY upload_id") == before
    assert query(home, "SELECT count(*) FROM results.employee_roster") == published
    assert len(list((home / "logs").glob("*"))) == runs_before
    assert not any((home / "tmp").iterdir())  # the scratch folders are gone

    # The home's own filespec, once changed, is what --impact compares with by default.
    shutil.copyfile(new_spec, filespecs / "employee_roster.yaml")
    assert cli(home, filespecs, "backfill", "--form-type", "employee_roster", "--dry-run", "--impact") == 0
    default_out = capsys.readouterr().out
    total = next(line for line in out.splitlines() if line.startswith("total:"))
    assert total in default_out

    # A gate the new rules' rejects exceed is named per upload.
    gated = tmp_path / "gated" / "employee_roster.yaml"
    gated.parent.mkdir()
    gated.write_text(new_spec.read_text().replace("max_error_rate: 0.9", "max_error_rate: 0.05"))
    assert (
        cli(
            home, filespecs, "backfill", "--form-type", "employee_roster", "--dry-run", "--impact", "--spec", str(gated)
        )
        == 0
    )
    assert capsys.readouterr().out.count("now FAILS the quality gate (") == 2

    # Once an upload's work folder (with the filespec it was judged by) is removed, it is not guessed at.
    removed = uploads[0][0]
    shutil.rmtree(home / "work" / removed)
    assert cli(home, filespecs, "backfill", "--form-type", "employee_roster", "--dry-run", "--impact") == 0
    out = capsys.readouterr().out
    assert f"upload {removed} (acme): not compared: its work folder (with the filespec version 1" in out
    assert "in 1 of 2 upload(s)" in out


def test_impact_needs_dry_run_and_spec_needs_impact(env, capsys):
    home, filespecs = env
    assert cli(home, filespecs, "backfill", "--form-type", "employee_roster", "--impact") == 2
    assert "--impact only goes with --dry-run" in capsys.readouterr().err
    assert cli(home, filespecs, "backfill", "--form-type", "employee_roster", "--dry-run", "--spec", "x.yaml") == 2
    assert "--spec only goes with --impact" in capsys.readouterr().err
    assert cli(home, filespecs, "backfill", "--form-type", "employee_roster", "--dry-run", "--impact", "--launch") == 2
