"""Generate a file with injected errors, ingest it through the real command, and require the
messages to equal the generator's answer key: every injected error found, nothing else reported."""

import csv
from pathlib import Path

import duckdb
import pytest

from ingest_pipeline.cli import main

CASES = [
    # form type, company, rows, error rate, chunk rows (several chunks, so uniqueness crosses them)
    ("employee_roster", "acme", 3000, 0.05, 700),
    ("claims_extract", "acme", 2000, 0.08, 600),
    ("payroll", "globex", 2000, 0.08, 900),
]


def answer_key(path: Path) -> list[tuple[int, str | None, str]]:
    with open(path, newline="") as key:
        return sorted((int(row["row_number"]), row["field"] or None, row["rule"]) for row in csv.DictReader(key))


@pytest.mark.parametrize(("form_type", "company", "rows", "error_rate", "chunk_rows"), CASES, ids=[c[0] for c in CASES])
def test_messages_equal_the_answer_key(home, tmp_path, form_type, company, rows, error_rate, chunk_rows, capsys):
    upload = tmp_path / f"{form_type}.txt"
    assert main(["generate", "--form-type", form_type, "--rows", str(rows), "--out", str(upload), "--error-rate",
                 str(error_rate), "--seed", "11", "--company", company, "--home", str(home)]) == 0  # fmt: skip
    expected = answer_key(upload.with_name(upload.name + ".expected.csv"))
    assert len({rule for _, _, rule in expected}) >= 5, "the generator should inject many kinds of errors"

    code = main(["run", str(upload), "--company", company, "--form-type", form_type, "--home", str(home),
                 "--chunk-rows", str(chunk_rows), "--executor", "in_process"])  # fmt: skip
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        messages = sorted(db.execute("SELECT row_number, field, rule FROM ingest.messages WHERE row_number IS NOT NULL").fetchall())
        total, accepted, rejected, status = db.execute("SELECT rows_total, rows_accepted, rows_rejected, status FROM ingest.uploads").fetchone()
        published = db.execute(f"SELECT count(*) FROM results.{form_type}").fetchone()[0] if status == "completed" else accepted
        rejects = db.execute("SELECT count(*) FROM ingest.rejects").fetchone()[0]
    missed = sorted(set(expected) - set(messages))
    unexpected = sorted(set(messages) - set(expected))
    assert not missed and not unexpected, f"missed {missed[:10]}, unexpected {unexpected[:10]}"
    assert messages == expected
    assert total == rows and accepted + rejected == rows and rejects == rejected and published == accepted
    assert code == (0 if status == "completed" else 1)
