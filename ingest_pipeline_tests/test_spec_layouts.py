"""import-spec, export-spec and spec-diff through the real command, plus their pure logic."""

import importlib.util
import shutil

import pytest
from openpyxl import load_workbook

from ingest_pipeline.authoring.dictionary_export import build_dictionary, render_html
from ingest_pipeline.authoring.impact import judge_file
from ingest_pipeline.authoring.layout_import import (
    import_layout,
    match_header_cell,
    parse_allowed_values,
    parse_date_format,
    parse_type,
    read_layout_rows,
    snake_name,
)
from ingest_pipeline.authoring.spec_diff import diff_specs
from ingest_pipeline.cli import main
from ingest_pipeline.core.filespec import FieldType, load_filespec, parse_filespec
from ingest_pipeline.defs.settings import PROJECT_ROOT

LAYOUTS = PROJECT_ROOT / "filespecs" / "layouts"
EXPECTED = LAYOUTS / "employee_roster_fixed.yaml"


# --- import-spec -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["xlsx", "xls"])
def test_the_shipped_layout_imports_to_the_expected_filespec(tmp_path, suffix, capsys):
    out = tmp_path / "employee_roster_fixed.yaml"
    layout = LAYOUTS / f"employee_roster_fixed_layout.{suffix}"
    assert main(["import-spec", str(layout), "--form-type", "employee_roster_fixed", "--out", str(out)]) == 0
    written, expected = out.read_text().splitlines(), EXPECTED.read_text().splitlines()
    assert written[0] == expected[0].replace("_layout.xlsx", f"_layout.{suffix}")  # the line naming the source
    assert written[1:] == expected[1:]
    printed = capsys.readouterr().out
    assert "column 'Start Pos' -> start" in printed and "column 'Mandatory (Y/N)' -> required" in printed
    assert "column 'Owner' matches no layout column" in printed
    assert "row 13 (bonus): type 'COMP-3' is not a known type; read as string" in printed

    spec = load_filespec(EXPECTED)
    assert spec.format.kind.value == "fixed_width"
    hire = spec.field("hire_date")
    assert (hire.start, hire.width, hire.type, hire.date_format, hire.required) == (
        52,
        8,
        FieldType.DATE,
        "%Y%m%d",
        True,
    )
    assert spec.field("status").enum == ["A", "L", "T"]
    assert "A=Active" in spec.field("status").description  # the codes' meanings are not dropped
    assert spec.field("hours_per_week").type == FieldType.INTEGER  # PIC 9(3)
    assert spec.field("salary").type == FieldType.DECIMAL  # Numeric(10,2)
    assert spec.field("full_time").boolean_texts == (("y",), ("n",))
    text = EXPECTED.read_text()
    assert "# not mapped: column 'Owner': 'Payroll'" in text  # an unknown column's values stay beside the field


def test_the_shipped_layout_is_what_its_script_writes():
    spec = importlib.util.spec_from_file_location(
        "make_sample_layout", PROJECT_ROOT / "scripts" / "make_sample_layout.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for suffix in ("xlsx", "xls"):
        _, rows = read_layout_rows(LAYOUTS / f"employee_roster_fixed_layout.{suffix}")
        rows = [row for row in rows if any(row)]
        assert rows[1] == script.HEADER
        assert rows[2:] == [["" if v is None else str(v) for v in row] for row in script.ROWS]


def test_a_loosely_headed_csv_layout_imports_and_lists_what_it_cannot_map(tmp_path, command_environment):
    layout = tmp_path / "layout.csv"
    layout.write_text(
        "Client layout v2\n"
        "COLUMN NAME,data_type,Req?,Max Len,Valid Values,Widget,Date Format\n"
        "Employee ID,VARCHAR(9),Yes,,,blue,\n"
        "Start Date,date,no,,,,MM/DD/YYYY\n"
        'Grade,char,maybe,2,"A; B; C",,\n'
        "Score,blob,,,,,\n"
        ",,,,,,\n"
        "Amount,decimal(8;2),N,,,,\n",
        encoding="utf-8",
    )
    result = import_layout(layout, "client_feed")
    assert result.kind == "delimited"
    assert result.matched == {"COLUMN NAME": "name", "data_type": "type", "Req?": "required", "Max Len": "max_length",
                              "Valid Values": "enum", "Date Format": "format"}  # fmt: skip
    unmapped = "\n".join(result.unmapped)
    assert "column 'Widget' matches no layout column" in unmapped
    assert "(grade): required 'maybe' is not yes or no" in unmapped
    assert "(score): type 'blob' is not a known type; read as string" in unmapped
    assert "(amount): type 'decimal(8;2)' is not a known type" in unmapped
    out = tmp_path / "client_feed.yaml"
    out.write_text(result.yaml_text)
    spec = load_filespec(out)
    employee = spec.field("employee_id")
    assert (employee.source, employee.required, employee.max_length) == ("Employee ID", True, 9)
    assert spec.field("start_date").date_format == "%m/%d/%Y"
    assert spec.field("grade").enum == ["A", "B", "C"] and spec.field("grade").max_length == 2
    for line in result.unmapped:  # every one is also a comment in the file
        assert line.split(": ", 1)[-1][:40] in out.read_text()
    assert "# not mapped: column 'Widget': 'blue'" in out.read_text()


def test_import_spec_refuses_what_it_cannot_read_in_one_sentence(tmp_path, capsys):
    bad = tmp_path / "layout.xlsx"
    bad.write_bytes(b"not a workbook")
    assert main(["import-spec", str(bad), "--form-type", "x", "--out", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("ingest-pipeline: error: ") and "cannot be read as an .xlsx workbook" in err and "\n" not in err
    )
    headless = tmp_path / "layout.csv"
    headless.write_text("a,b\n1,2\n")
    assert main(["import-spec", str(headless), "--form-type", "x", "--out", str(tmp_path / "x.yaml")]) == 2
    assert "no header row found" in capsys.readouterr().err
    assert main(["import-spec", str(headless), "--form-type", "x", "--out", str(tmp_path / "y.yaml")]) == 2
    assert "must be x.yaml" in capsys.readouterr().err


def test_header_and_value_parsing():
    assert [match_header_cell(t) for t in ("Field Name", "start pos", "LEN", "Data Type", "Mandatory", "Y/N",
                                           "Valid Values", "Column", "Required Y/N", "Position", "Frobnicate")] == [
        "name", "start", "width", "type", "required", "required", "enum", "name", "required", "position", None]  # fmt: skip
    assert match_header_cell("From Value") == "minimum"
    assert [snake_name(t) for t in ("Employee ID", "EmployeeId", "hire-date", "1st Line")] == [
        "employee_id", "employee_id", "hire_date", "_1st_line"]  # fmt: skip
    assert parse_type("VARCHAR(50)") == (FieldType.STRING, 50, None)
    assert parse_type("Numeric(10,2)")[0] == FieldType.DECIMAL and parse_type("PIC 9(3)")[0] == FieldType.INTEGER
    assert parse_type("COMP-3")[0] is None
    assert parse_date_format("CCYYMMDD") == "%Y%m%d" and parse_date_format("DD.MM.YY") == "%d.%m.%y"
    assert parse_date_format("YYYY-MM-DD HH:MI:SS") == "%Y-%m-%d %H:%M:%S" and parse_date_format("Julian") is None
    assert parse_allowed_values("A=Active, L=Leave\nT - Terminated") == (["A", "L", "T"], True)
    assert parse_allowed_values("x|y|x") == (["x", "y"], False)


def test_a_fixed_width_layout_with_position_ranges(tmp_path):
    layout = tmp_path / "layout.csv"
    layout.write_text("Field,Position,Type\nCode,1-3,X\nAmount,4 - 11,N\nOdd,twelve,X\n")
    result = import_layout(layout, "ranges")
    assert result.kind == "fixed_width"
    assert [(f["name"], f["start"], f["width"]) for f in result.fields] == [
        ("code", 1, 3),
        ("amount", 4, 8),
        ("odd", 1, 1),
    ]
    assert any("position 'twelve' is not start-end" in line for line in result.unmapped)
    assert any("no start could be read" in line for line in result.unmapped)


# --- export-spec -----------------------------------------------------------------------------


def test_export_spec_xlsx_has_every_field_example_and_list(tmp_path, command_environment):
    out = tmp_path / "roster.xlsx"
    home = tmp_path / "home"
    assert main(["export-spec", "employee_roster", "--out", str(out), "--company", "acme", "--home", str(home)]) == 0
    workbook = load_workbook(out)
    rows = list(workbook["Fields"].iter_rows(values_only=True))
    header = rows.index(next(r for r in rows if r[0] == "#"))
    table = {r[1]: dict(zip(rows[header], r, strict=True)) for r in rows[header + 1 :]}
    spec = load_filespec(PROJECT_ROOT / "filespecs" / "employee_roster.yaml")
    assert list(table) == [f.name for f in spec.fields]
    assert table["role"]["Allowed values"] == "admin, manager, analyst, engineer, clerk, auditor, viewer"
    assert "one of the allowed values" in table["role"]["Rules"].lower()
    assert table["hire_date"]["Format"] == "YYYY-MM-DD (%Y-%m-%d)"
    assert "168 or less" in table["hours_per_week"]["Rules"]
    assert "us_states" in table["state"]["Allowed values"]
    lists = list(workbook["Lists"].iter_rows(values_only=True))
    states = [r[2] for r in lists if r[0] == "the shared us_states list"]
    assert "CA" in states and len(states) == 51
    assert [r[2] for r in lists if r[0] == "acme's departments list"]

    # Every example is a valid value: a file of one row of them is accepted by the pipeline's own judge.
    sample = tmp_path / "examples.csv"
    sample.write_text(
        ",".join(table) + "\n" + ",".join(table[f]["Example of a valid value"] or "" for f in table) + "\n"
    )
    judged = judge_file(sample, spec, company_id="acme", home=home, filespecs_dir=PROJECT_ROOT / "filespecs",
                        scratch=tmp_path / "scratch")  # fmt: skip
    assert judged.failure is None and judged.rows_total == 1 and judged.rows_rejected == 0


def test_export_spec_html_is_escaped_and_self_contained(tmp_path, command_environment):
    spec = parse_filespec({
        "form_type": "hostile", "title": "<b>Bold</b> & co",
        "fields": [{"name": "a", "description": "<script>alert(1)</script> \"quoted\"", "enum": ["<i>", "=1+1"]},
                   {"name": "b", "type": "date", "format": "%d/%m/%Y"}],
    }, "test")  # fmt: skip
    page = render_html(build_dictionary(spec, home=tmp_path, filespecs_dir=tmp_path))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<i>" not in page and "&lt;i&gt;" in page and "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in page
    assert "http" not in page and "src=" not in page  # nothing fetched from outside
    spec_file = tmp_path / "hostile.yaml"
    spec_file.write_text("form_type: hostile\nfields:\n  - {name: a, enum: ['=1+1', '<i>']}\n")
    out = tmp_path / "hostile.xlsx"
    assert main(["export-spec", str(spec_file), "--out", str(out), "--home", str(tmp_path)]) == 0
    cell = next(c for row in load_workbook(out)["Fields"].iter_rows() for c in row if c.value == "=1+1")
    assert cell.data_type == "s"  # text, never a formula


def test_export_spec_says_which_lists_it_cannot_show(tmp_path, command_environment, capsys):
    filespecs = tmp_path / "filespecs"
    shutil.copytree(PROJECT_ROOT / "filespecs", filespecs)
    (filespecs / "reference" / "ref" / "us_states.csv").unlink()
    out = tmp_path / "roster.html"
    assert main(["export-spec", "employee_roster", "--out", str(out), "--home", str(tmp_path / "h"),
                 "--filespecs", str(filespecs)]) == 0  # fmt: skip
    assert "note: reference table ref.us_states for company '' not found" in capsys.readouterr().out
    page = out.read_text()
    assert "Each company&#x27;s own list" in page and "Not available." in page


# --- spec-diff -------------------------------------------------------------------------------

BASE = {
    "form_type": "claims",
    "version": "1",
    "format": {"kind": "delimited", "delimiter": ","},
    "fields": [
        {"name": "id", "required": "true", "unique": "true", "pattern": "C[0-9]{6}"},
        {"name": "kind", "enum": ["a", "b", "c"]},
        {"name": "amount", "type": "decimal", "minimum": "0"},
        {"name": "code", "lookup": "ref.procedure_codes.code"},
        {"name": "gone"},
    ],
    "quality": {"max_error_rate": "0.05"},
}


def _spec(**changes):
    import copy

    raw = copy.deepcopy(BASE)
    for key, value in changes.items():
        raw[key] = value
    return parse_filespec(raw, "test")


def test_spec_diff_lists_each_rule_change_once():
    new_fields = [
        {"name": "id", "required": "false", "unique": "false", "pattern": "C[0-9]{7}", "max_length": "8"},
        {"name": "kind", "enum": ["a", "c", "d"]},
        {"name": "amount", "type": "integer", "minimum": "0"},
        {"name": "code", "lookup": "company.codes.code"},
        {"name": "plan", "required": "true"},
    ]
    lines = diff_specs(
        _spec(), _spec(version="2", fields=new_fields, format={"delimiter": ";"}, quality={"max_error_rate": "0.1"})
    )
    assert lines == [
        "version: 1 -> 2",
        "format.delimiter: ',' -> ';'",
        "quality.max_error_rate: 0.05 -> 0.1",
        "field plan: added (string, required)",
        "field gone: removed",
        "field id: required True -> False",
        "field id: unique True -> False",
        "field id: max_length (none) -> 8",
        "field id: pattern 'C[0-9]{6}' -> 'C[0-9]{7}'",
        "field kind: enum values added 'd'",
        "field kind: enum values removed 'b'",
        "field amount: type decimal -> integer",
        "field code: lookup 'ref.procedure_codes.code' -> 'company.codes.code'",
    ]


def test_spec_diff_exit_codes(tmp_path, capsys):
    old = PROJECT_ROOT / "filespecs" / "employee_roster.yaml"
    same = tmp_path / "roster.v1.yaml"  # any name: versions are kept side by side
    same.write_text(
        old.read_text().replace("format:\n  kind: delimited\n", "format:\n  kind: delimited\n  encoding: utf-8\n")
    )
    assert main(["spec-diff", str(old), str(same)]) == 0
    assert "have the same rules" in capsys.readouterr().out
    changed = tmp_path / "roster.v2.yaml"
    changed.write_text(old.read_text().replace("{name: status, enum: [active, leave, terminated]}",
                                               "{name: status, required: true, enum: [active, leave]}"))  # fmt: skip
    assert main(["spec-diff", str(old), str(changed)]) == 1
    assert capsys.readouterr().out.splitlines() == ["field status: required False -> True",
                                                    "field status: enum values removed 'terminated'"]  # fmt: skip
    broken = tmp_path / "broken.yaml"
    broken.write_text("form_type: broken\nfeilds: []\n")
    assert main(["spec-diff", str(old), str(broken)]) == 2
    assert "unknown key 'feilds'" in capsys.readouterr().err


def test_the_imported_filespec_ingests_a_file_that_follows_it(tmp_path, command_environment, capsys):
    filespecs = tmp_path / "filespecs"
    filespecs.mkdir()
    layout = LAYOUTS / "employee_roster_fixed_layout.xls"
    assert main(["import-spec", str(layout), "--form-type", "employee_roster_fixed",
                 "--out", str(filespecs / "employee_roster_fixed.yaml")]) == 0  # fmt: skip
    common = ["--home", str(tmp_path / "home"), "--filespecs", str(filespecs)]
    data = tmp_path / "roster.txt"
    assert main(["generate", "--form-type", "employee_roster_fixed", "--rows", "50", "--out", str(data), *common]) == 0
    capsys.readouterr()
    assert main(["run", str(data), "--company", "acme", "--form-type", "employee_roster_fixed", *common]) == 0
    assert "rows: 50 total, 50 accepted, 0 rejected" in capsys.readouterr().out


def test_columns_the_layout_kind_does_not_use_are_reported_not_ignored(tmp_path):
    delimited = tmp_path / "delimited.csv"
    delimited.write_text("Name,Len,Max Length,Type\nCode,3,3,X\n")  # a width beside a max length, no position
    result = import_layout(delimited, "d")
    assert result.kind == "delimited" and result.fields == [{"name": "code", "max_length": 3}]
    assert sum("which a delimited (no start or position column) layout does not use" in u for u in result.unmapped) == 1
    assert "# not mapped: column 'Len': '3'" in result.yaml_text
    fixed = tmp_path / "fixed.csv"
    fixed.write_text("Name,End,Width,Header\nCode,3,3,CODE\nRest,10,7,REST\n")
    result = import_layout(fixed, "f")
    assert result.kind == "fixed_width"
    assert [(f["start"], f["width"]) for f in result.fields] == [(1, 3), (4, 7)]
    assert any("column 'Header' is a delimited file's header text" in u for u in result.unmapped)


def test_a_workbook_layout_is_found_past_a_cover_sheet(tmp_path, capsys):
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.title = "Cover"
    workbook.active.append(["Layout of the claims feed, see next sheet"])
    layout = workbook.create_sheet("Fields")
    layout.append(["Column", "Data Type", "Required", "Minimum"])
    layout.append(["Claim Amount", "Decimal", "Y", 0.5])
    layout.append(["Visits", "Integer", "N", 3])
    path = tmp_path / "claims.xlsx"
    workbook.save(path)
    result = import_layout(path, "claims_feed")
    assert result.sheet == "Fields" and [f["name"] for f in result.fields] == ["claim_amount", "visits"]
    assert result.fields[0]["minimum"] == "0.5" and result.fields[1]["minimum"] == "3"
    out = tmp_path / "claims_feed.yaml"
    assert main(["import-spec", str(path), "--form-type", "claims_feed", "--out", str(out), "--sheet", "Nope"]) == 2
    assert "no sheet 'Nope' (it has Cover, Fields)" in capsys.readouterr().err
    assert main(["import-spec", str(path), "--form-type", "claims_feed", "--out", str(out), "--sheet", "Fields"]) == 0
    assert load_filespec(out).field("claim_amount").source == "Claim Amount"
