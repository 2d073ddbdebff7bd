"""`describe` and `check-spec` through the real `ingest-pipeline` command; round trips through `run`."""

import csv
import shutil
from collections import Counter
from pathlib import Path

import duckdb

from ingest_pipeline.cli import main
from ingest_pipeline.core.filespec import load_filespec

PROJECT = Path(__file__).resolve().parents[2]


def query(home: Path, sql: str):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def describe_then_run(sample: Path, specs: Path, home: Path, form_type: str, *extra: str) -> Path:
    """describe SAMPLE into SPECS/<form_type>.yaml, then ingest the same sample with it: zero messages."""
    out = specs / f"{form_type}.yaml"
    assert main(["describe", str(sample), "--out", str(out), *extra]) == 0
    assert main(["run", str(sample), "--company", "acme", "--form-type", form_type, "--home", str(home),
                 "--filespecs", str(specs)]) == 0  # fmt: skip
    assert query(home, "SELECT rule, field, message FROM ingest.messages") == []
    ((status, rejected),) = query(home, "SELECT status, rows_rejected FROM ingest.uploads")
    assert status == "completed" and rejected == 0
    return out


def test_describe_a_generated_roster_then_ingest_it_with_no_message(home, tmp_path, capsys):
    roster = tmp_path / "roster.csv"
    assert main(["generate", "--form-type", "employee_roster", "--rows", "3000", "--out", str(roster),
                 "--home", str(home)]) == 0  # fmt: skip
    out = describe_then_run(roster, tmp_path / "specs", home, "roster")
    text = out.read_text()
    assert "# no empty cell in 3,000 rows" in text
    assert "enum: [active, leave, terminated]  # 3 distinct values in 3,000 rows" in text
    assert 'pattern: "E[0-9]{8}"' in text and "unique: true  # 3,000 distinct values in 3,000 rows" in text
    assert "type: date  # all" in text and 'format: "%Y-%m-%d"' in text
    assert query(home, "SELECT rows_total FROM ingest.uploads") == [(3000,)]


HAND_MADE = (
    "Code;Name;Joined;Last seen;Amount;Kind;Active;Note\r\n"
    "0012;Zoë;31/01/2024;2024-01-31 13:45:00;12.50;gold;yes;\r\n"
    '0345;  Ann Lee  ;01/02/2024;2024-02-01 08:00:00;-3;silver;no;"semi; colon"\r\n'
    '1001;Bob;29/02/2024;2024-02-29 23:59:59;100.00;gold;Y;"two\r\nlines"\r\n'
    "0002;Cé;15/03/2023;2023-03-15 00:00:00;0.25;bronze;N;\r\n"
    "7777;Dee;;2023-04-01 12:00:00;;gold;yes;x\r\n"
    "0100;Eve;02/12/2022;2022-12-02 09:30:15;7.125;silver;no;\r\n"
)


def test_describe_a_hand_made_file_with_dates_decimals_enums_and_blanks_then_ingest_it(home, tmp_path):
    sample = tmp_path / "members.csv"
    sample.write_bytes(HAND_MADE.encode("cp1252"))
    out = describe_then_run(sample, tmp_path / "specs", home, "members")
    text = out.read_text()
    assert "encoding: cp1252" in text and 'delimiter: ";"' in text
    fields = {f.name: f for f in load_filespec(out).fields}
    assert fields["code"].type == "string" and fields["code"].pattern == "[0-9]{4}"  # leading zeros kept
    assert (fields["joined"].type, fields["joined"].format, fields["joined"].required) == ("date", "%d/%m/%Y", False)
    assert (fields["last_seen"].type, fields["last_seen"].format) == ("datetime", "%Y-%m-%d %H:%M:%S")
    assert fields["last_seen"].source == "Last seen"
    assert fields["amount"].type == "decimal" and fields["amount"].minimum is None  # -3 was seen
    assert fields["kind"].enum == ["bronze", "gold", "silver"] and fields["active"].type == "boolean"
    assert fields["name"].required and not fields["note"].required
    values = query(home, "SELECT name, joined::VARCHAR, amount FROM results.members ORDER BY last_seen LIMIT 2")
    assert values == [("Eve", "2022-12-02", 7.125), ("Cé", "2023-03-15", 0.25)]


def test_describe_a_fixed_width_file_then_ingest_it(home, tmp_path):
    sample = tmp_path / "ledger.txt"
    sample.write_text("ID    NAME        AMOUNT  DATE\n000001Ann Lee      12.50  2024-01-31\n"
                      "000002Bob         100.00  2024-02-29\n000003Cy Young     -3.25  2023-12-01\n")  # fmt: skip
    out = describe_then_run(sample, tmp_path / "specs", home, "ledger")
    assert "kind: fixed_width" in out.read_text() and "skip_rows: 1" in out.read_text()


def test_describe_refuses_in_one_line(tmp_path, capsys):
    sample = tmp_path / "a.csv"
    sample.write_text("a,b\n1,2\n")
    assert main(["describe", str(sample), "--out", str(tmp_path / "Bad-Name.yaml")]) == 2
    assert main(["describe", str(sample), "--out", str(tmp_path / "x.yaml"), "--form-type", "y"]) == 2
    assert main(["describe", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "x.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and "Traceback" not in err and "missing.csv: no such file" in err


def test_check_spec_names_an_unknown_key_and_its_likely_meaning(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("form_type: spec\nfeilds: [{name: a}]\n")
    assert main(["check-spec", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}: top level: unknown key 'feilds' (did you mean 'fields'?" in err and err.count("\n") == 1
    spec.write_text("form_type: spec\nfields: [{name: a, requried: true}]\n")
    assert main(["check-spec", str(spec)]) == 2
    assert "fields[0] (a): unknown key 'requried' (did you mean 'required'?" in capsys.readouterr().err


def test_check_spec_home_names_each_missing_table_and_column(home, tmp_path, capsys):
    filespecs = tmp_path / "filespecs"
    shutil.copytree(PROJECT / "filespecs", filespecs)
    spec = filespecs / "employee_roster.yaml"
    assert main(["check-spec", str(spec), "--home", str(home), "--filespecs", str(filespecs)]) == 0
    assert "every lookup and enrich table and column exists" in capsys.readouterr().out
    spec.write_text(spec.read_text().replace("ref.us_states.code", "ref.us_states.abbrev")
                    .replace("company.departments.name", "company.divisions.name"))  # fmt: skip
    assert main(["check-spec", str(spec), "--home", str(home), "--filespecs", str(filespecs)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert any("ref.us_states" in line and "has no column 'abbrev'" in line for line in err)
    assert any("company.divisions for company 'acme' not found" in line for line in err)
    assert any("company.divisions for company 'globex' not found" in line for line in err)
    assert len(err) == 3 and all(line.startswith(str(spec)) for line in err)


def test_check_spec_sample_counts_messages_by_field_and_rule_and_writes_nothing(home, tmp_path, capsys):
    upload = tmp_path / "roster.csv"
    assert main(["generate", "--form-type", "employee_roster", "--rows", "2000", "--error-rate", "0.05",
                 "--out", str(upload), "--home", str(home)]) == 0  # fmt: skip
    capsys.readouterr()
    with open(f"{upload}.expected.csv", newline="") as answers:
        expected = Counter((row["field"] or "-", row["rule"]) for row in csv.DictReader(answers))
    spec = PROJECT / "filespecs" / "employee_roster.yaml"
    assert main(["check-spec", str(spec), "--sample", str(upload), "--home", str(home)]) == 1  # rows rejected
    out = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith(f"{upload}: 2,000 rows, "))
    assert "nothing registered or written" in out[at]
    assert out[at + 1].split() == ["field", "rule", "severity", "messages"]
    found = Counter()
    for line in out[at + 2 :]:
        field, rule, _, count = line.split()
        found[(field, rule)] += int(count.replace(",", ""))
    assert found == expected and sum(expected.values()) > 50
    assert not (home / "warehouse.duckdb").exists() and not (home / "work").exists()


def test_check_spec_sample_of_a_clean_file_exits_0(home, tmp_path, capsys):
    upload = tmp_path / "roster.csv"
    assert (
        main(["generate", "--form-type", "employee_roster", "--rows", "100", "--out", str(upload), "--home", str(home)])
        == 0
    )
    spec = PROJECT / "filespecs" / "employee_roster.yaml"
    assert main(["check-spec", str(spec), "--sample", str(upload), "--home", str(home)]) == 0
    assert f"{upload}: 100 rows, 0 rejected, 0 messages" in capsys.readouterr().out
