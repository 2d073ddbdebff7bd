"""A hand-written awkward form type and file, judged twice: by the pipeline, and by an independent
reading of filespec.md in plain Python (the csv module for records, the generator's pure-Python
cell judge for cells). The two must agree on every message and every published value."""

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from ingest_pipeline.cli import main
from ingest_pipeline.core.filespec import load_filespec
from ingest_pipeline.core.generate import CellJudge

FILESPEC = """
form_type: awkward
format: {delimiter: ";", header: true, skip_rows: 2, encoding: utf-8}
fields:
  - {name: id, source: "Customer ID", type: integer, required: true, unique: true, minimum: 1}
  - {name: amount, source: "Amount (EUR)", type: decimal, minimum: "-10.5", maximum: "1000", unique: true}
  - {name: joined, type: datetime, format: "%d/%m/%Y %I:%M %p"}
  - {name: active, type: boolean, format: {true: [Ja, J], false: [Nein, N]}, required: true}
  - {name: code, trim: false, pattern: "[A-Z]{2}", severity: warning}
  - {name: tier, enum: ["1", "2", "3"]}
  - {name: region, lookup: company.regions.code}
  - {name: comment, max_length: 20}
enrich:
  - {lookup: company.regions, on: {region: code, tier: tier}, add: {region_name: name}, required: true}
"""
REGIONS = "code,tier,name\nN,1,North\nS,2,South\nE,3,East\nW,3,West\nN,2,North again\nN,1,North twice\n"
LINES = [
    "Report generated 2026-11-01;;;",
    "=== do not edit ===",
    " CUSTOMER id ;amount (eur);Joined;ACTIVE;code;tier;region;comment;Unused",
    '1;10.50;05/01/2020 01:30 PM;ja;AB;1;N;"hello; world";x',
    '2;1000.0;05/01/2020 13:30 PM;N; AB;2;S;"multi\r\nline";',
    "",
    "3;-10.50;31/12/1999 12:00 AM;X;ab;4;E;x;extra;cells",
    '4;1e3;;Ja;CD;3;W;"this comment is definitely too long";',
    "5;10.5;01/01/2021 09:00 AM;J;EF;1;N;dup amount;",
    "  1 ;7;;N;;;;   ;",
    "0;+7.000;1/1/2021 9:00 AM;Nein;GH;2;N;;",
    '6;;;j;""""A;3;E;"";',
    "7;8;12/12/2012 12:12 AM;nein;  ;3;Q;ok;",
]


@pytest.fixture
def upload(tmp_path, command_environment) -> tuple[Path, Path, Path]:
    filespecs = tmp_path / "filespecs"
    filespecs.mkdir()
    (filespecs / "awkward.yaml").write_text(FILESPEC)
    home = tmp_path / "home"
    (home / "reference" / "company" / "c1").mkdir(parents=True)
    (home / "reference" / "company" / "c1" / "regions.csv").write_text(REGIONS)
    path = tmp_path / "upload.csv"
    content = "\ufeff" + "\r\n".join(LINES) + "\r\n"
    bad_record = "8;9;;N;ZZ;1;N;caf\udcff;"  # a byte that is not UTF-8
    path.write_bytes(content.encode() + bad_record.encode("utf-8", "surrogateescape") + b"\r\n")
    return path, home, filespecs


def independent_reading(path: Path, spec, regions: list[dict]) -> tuple[set, dict]:
    """(messages as (row, line, field, rule, severity), converted values of accepted rows by row)."""
    text = path.read_bytes().decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    lines = text.split("\n")
    body = "\n".join(lines[spec.format.skip_rows :])
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=spec.format.delimiter, quotechar=spec.format.quote)
    header, line, records = None, spec.format.skip_rows + 1, []
    for cells in reader:
        if cells and header is None:
            header = cells
        elif cells:
            records.append((line, cells))
        line = spec.format.skip_rows + reader.line_num + 1
    column = {f.name: [c.strip().lower() for c in header].index(f.header_text) for f in spec.fields}
    lookup = {f.name: frozenset(r["code"] for r in regions) for f in spec.fields if f.lookup}
    judges = {f.name: CellJudge(f, lookup.get(f.name)) for f in spec.fields}
    messages, values, seen = set(), {}, {f.name: {} for f in spec.fields if f.unique}
    for row_number, (line_number, cells) in enumerate(records, start=1):
        if any("\udc80" <= ch <= "\udcff" for cell in cells for ch in cell):
            messages.add((row_number, line_number, None, "encoding", "error"))
            continue
        if len(cells) != len(header):
            messages.add((row_number, line_number, None, "field_count", "error"))
            continue
        row = {}
        for field in spec.fields:
            rules, value = judges[field.name].judge(cells[column[field.name]])
            messages.update((row_number, line_number, field.name, rule, field.severity.value) for rule in rules)
            if field.unique and value is not None:
                if value in seen[field.name]:
                    messages.add((row_number, line_number, field.name, "unique", field.severity.value))
                seen[field.name].setdefault(value, row_number)
            row[field.name] = value
        keys = (cells[column["region"]].strip(), cells[column["tier"]].strip())
        match = next((r for r in regions if (r["code"], r["tier"]) == keys), None)
        if match is None:
            messages.add((row_number, line_number, "region", "enrich", "error"))
        row["region_name"] = match["name"] if match else None
        values[row_number] = row
    rejected = {m[0] for m in messages if m[4] == "error"}
    return messages, {row: v for row, v in values.items() if row not in rejected}


def test_the_pipeline_agrees_with_an_independent_reading_of_the_contract(upload):
    path, home, filespecs = upload
    spec = load_filespec(filespecs / "awkward.yaml")
    regions = list(csv.DictReader(io.StringIO(REGIONS)))
    expected_messages, expected_rows = independent_reading(path, spec, regions)
    assert len({m[3] for m in expected_messages}) >= 9  # the file really is awkward

    code = main(["run", str(path), "--company", "c1", "--form-type", "awkward", "--home", str(home),
                 "--filespecs", str(filespecs), "--executor", "in_process"])  # fmt: skip
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        messages = set(db.execute("SELECT row_number, line_number, field, rule, severity FROM ingest.messages "
                                  "WHERE row_number IS NOT NULL").fetchall())  # fmt: skip
        upload_level = db.execute("SELECT rule, value FROM ingest.messages WHERE row_number IS NULL").fetchall()
        results = db.execute("SELECT * EXCLUDE (_upload_id) FROM results.awkward ORDER BY _row_number").fetchall()
        names = [d[0] for d in db.execute("SELECT * EXCLUDE (_upload_id) FROM results.awkward LIMIT 0").description]
    assert code == 0
    assert sorted(messages, key=str) == sorted(expected_messages, key=str)
    assert upload_level == [("extra_column", "Unused")]
    published = {row[0]: dict(zip(names[1:], row[1:], strict=True)) for row in results}
    assert published.keys() == expected_rows.keys()
    for row_number, expected in expected_rows.items():
        got = published[row_number]
        for name, value in expected.items():
            if isinstance(value, Decimal):
                value = float(value)
            if isinstance(value, dt.datetime) and value.tzinfo:
                value = value.replace(tzinfo=None)
            assert got[name] == value, (row_number, name, got[name], value)
