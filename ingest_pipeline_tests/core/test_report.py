"""The client report, written from a warehouse filled by hand and read back with openpyxl."""

import datetime as dt
import zipfile
from pathlib import Path

import openpyxl
import pytest

from ingest_pipeline.core.errors import IngestError
from ingest_pipeline.core.filespec import FileSpec, parse_filespec
from ingest_pipeline.core.report import write_upload_report
from ingest_pipeline.core.warehouse import Warehouse

HYPERLINK = '=HYPERLINK("http://x")'
SPEC = parse_filespec(
    {
        "form_type": "roster",
        "version": "1",
        "fields": [
            {"name": "employee_id", "required": "true", "pattern": "E[0-9]{3}", "description": "E and 3 digits"},
            {"name": "name", "max_length": "10"},
            {"name": "amount", "type": "decimal"},
            {"name": "note", "max_length": "5", "severity": "warning"},
        ],
    },
    "test",
)
UPLOAD = {
    "upload_id": "u1",
    "company_id": "acme",
    "form_type": "roster",
    "filespec_version": 1,
    "source": "landing/acme/roster/roster.csv",
    "sha256": "ab" * 32,
    "bytes": 123,
    "received_at": dt.datetime(2024, 5, 6, 7, 0, 0),
    "status": "completed",
    "rows_total": 5,
    "rows_accepted": 1,
    "rows_rejected": 4,
    "started_at": dt.datetime(2024, 5, 6, 7, 0, 1),
    "finished_at": dt.datetime(2024, 5, 6, 7, 0, 9),
    "error": None,
}
# (row_number, line_number, raw)
REJECTS = [
    (1, 2, "X1,Carl,1,x"),
    (2, 3, "E12,Al\x01ice,10.5,ok"),
    (3, 4, 'E003,"=HYPERLINK(""http://x"")",abc,@SUM(A1)'),
    (5, 7, "E005,Bob"),
]
# (row_number, line_number, field, rule, severity, value, message)
MESSAGES = [
    (1, 2, "employee_id", "pattern", "error", "X1", "employee_id 'X1' is not E and 3 digits."),
    (2, 3, "employee_id", "pattern", "error", "E12", "'E12' is not E and 3 digits."),
    (3, 4, "name", "max_length", "error", HYPERLINK, "name is longer than 10 characters."),
    (3, 4, "amount", "type", "error", "abc", "amount 'abc' is not a decimal number."),
    (3, 4, "note", "max_length", "warning", "@SUM(A1)", "note is longer than 5 characters."),
    (4, 5, "note", "max_length", "warning", "+1-555-0100", "note is longer than 5 characters."),
    (5, 7, None, "field_count", "error", None, "row 5 has 2 cells where the header has 4."),
    (None, None, "extra", "extra_column", "warning", "extra", "the column 'extra' is not in the form and was ignored."),
]
# (field, rows, nulls, distinct_values, errors, warnings, min_value, max_value)
COLUMN_SUMMARY = [
    ("note", 5, 0, 5, 0, 2, "@SUM(A1)", "x"),
    ("employee_id", 5, 0, 5, 2, 0, "E003", "X1"),
    ("name", 5, 0, 5, 1, 0, "#N/A", HYPERLINK),
    ("amount", 5, 0, 4, 1, 0, "1", "abc"),
]


def fill_warehouse(warehouse: Warehouse, upload: dict, rejects: list, messages: list, column_summary: list) -> None:
    upload_id = upload["upload_id"]
    with warehouse.transaction() as connection:
        columns = ", ".join(upload)
        connection.execute(
            f"INSERT INTO ingest.uploads ({columns}) VALUES ({', '.join('?' * len(upload))})", list(upload.values())
        )
        if rejects:
            connection.executemany("INSERT INTO ingest.rejects VALUES (?, ?, ?, ?)", [(upload_id, *r) for r in rejects])
        if messages:
            connection.executemany(
                "INSERT INTO ingest.messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(upload_id, *m) for m in messages]
            )
        if column_summary:
            connection.executemany(
                "INSERT INTO ingest.column_summary VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(upload_id, *c) for c in column_summary],
            )


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    fill_warehouse(warehouse, UPLOAD, REJECTS, MESSAGES, COLUMN_SUMMARY)
    return warehouse


def write_and_open(warehouse: Warehouse, spec: FileSpec | None, out: Path, **options) -> openpyxl.Workbook:
    assert write_upload_report(warehouse, "u1", spec, out, **options) == out
    return openpyxl.load_workbook(out)


def table(sheet) -> list[tuple]:
    return [tuple(cell.value for cell in row) for row in sheet.iter_rows()]


def labelled(sheet) -> dict:
    """Column A -> column B of the Summary's facts."""
    return {row[0].value: row[1].value for row in sheet.iter_rows(max_col=2) if isinstance(row[0].value, str)}


def rejected_row(sheet, row_number: int) -> dict:
    header = [cell.value for cell in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        if row[0].value == row_number:
            return {label: cell for label, cell in zip(header, row, strict=False)}
    raise AssertionError(f"no rejected row {row_number}")


def test_report_sheets_and_summary(warehouse, tmp_path):
    book = write_and_open(warehouse, SPEC, tmp_path / "reports" / "u1.xlsx")

    assert book.sheetnames == ["Summary", "Problems", "Messages", "Rejected rows"]
    facts = labelled(book["Summary"])
    assert facts["Upload id"] == "u1" and facts["Company"] == "acme" and facts["Status"] == "completed"
    assert (facts["Rows total"], facts["Rows accepted (loaded)"], facts["Rows rejected"]) == (5, 1, 4)
    assert facts["Accepted share"] == pytest.approx(0.2) and facts["Rejected share"] == pytest.approx(0.8)
    assert (facts["Error messages"], facts["Warning messages"]) == (5, 3)
    assert facts["Finished at (UTC)"] == dt.datetime(2024, 5, 6, 7, 0, 9)
    assert facts["File"] == "roster.csv"  # the client's file name, not where the server keeps it
    assert table(book["Summary"])[1][0] == "1 of 5 rows were loaded; 4 rows were rejected and not loaded."

    rows = table(book["Summary"])
    start = rows.index(("field", "rows", "nulls", "distinct_values", "errors", "warnings", "min_value", "max_value"))
    assert [row[0] for row in rows[start + 1 :]] == ["employee_id", "name", "amount", "note"]  # filespec order
    assert rows[start + 2] == ("name", 5, 0, 5, 1, 0, "#N/A", HYPERLINK)


def test_problems_are_grouped_and_explained(warehouse, tmp_path):
    book = write_and_open(warehouse, SPEC, tmp_path / "u1.xlsx")

    rows = table(book["Problems"])
    header = rows[0]
    assert header == (
        "rule",
        "field",
        "severity",
        "count",
        "what it means",
        "what is expected",
        "field description",
        "example message",
        "examples",
    )
    groups = {(row[0], row[1]): dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert {key: group["count"] for key, group in groups.items()} == {
        ("pattern", "employee_id"): 2,
        ("max_length", "name"): 1,
        ("type", "amount"): 1,
        ("field_count", None): 1,
        ("max_length", "note"): 2,
        ("extra_column", "extra"): 1,
    }
    assert [row[2] for row in rows[1:]] == ["error"] * 4 + ["warning"] * 2  # errors first
    pattern = groups[("pattern", "employee_id")]
    assert pattern["what it means"] == "The value does not have the expected form."
    assert pattern["what is expected"] == "E and 3 digits"  # the filespec's description, not its regex
    assert pattern["field description"] == "E and 3 digits"
    assert pattern["examples"] == "row 1 (line 2): X1\nrow 2 (line 3): E12"
    assert groups[("extra_column", "extra")]["examples"] == "the file: extra"
    assert groups[("field_count", None)]["examples"] == "row 5 (line 7)"
    assert groups[("type", "amount")]["what is expected"].startswith("a number")


def test_every_message_is_listed(warehouse, tmp_path):
    book = write_and_open(warehouse, SPEC, tmp_path / "u1.xlsx")

    rows = table(book["Messages"])
    assert rows[0] == ("row_number", "line_number", "field", "rule", "severity", "value", "message")
    assert len(rows) == 1 + len(MESSAGES)
    assert rows[1][:4] == (None, None, "extra", "extra_column")  # upload-level first
    assert {row[:5] for row in rows[1:]} == {m[:5] for m in MESSAGES}


def test_rejected_rows_highlight_the_bad_cells(warehouse, tmp_path):
    book = write_and_open(warehouse, SPEC, tmp_path / "u1.xlsx")
    sheet = book["Rejected rows"]

    assert [cell.value for cell in sheet[1]] == [
        "row_number",
        "line_number",
        "problems",
        "employee_id",
        "name",
        "amount",
        "note",
    ]
    assert [row[0].value for row in sheet.iter_rows(min_row=2)] == [1, 2, 3, 5]

    row = rejected_row(sheet, 3)
    assert row["line_number"].value == 4
    assert row["employee_id"].value == "E003" and row["employee_id"].fill.fill_type is None
    assert row["employee_id"].comment is None
    for label, color, message in [
        ("name", "FFC7CE", "name is longer than 10 characters."),
        ("amount", "FFC7CE", "amount 'abc' is not a decimal number."),
        ("note", "FFEB9C", "note is longer than 5 characters."),  # a warning: yellow
    ]:
        assert row[label].fill.fill_type == "solid" and row[label].fill.start_color.rgb.endswith(color), label
        assert row[label].comment is not None and message in row[label].comment.text
    # every message of the row, in the order of its cells
    assert row["problems"].value == (
        "name is longer than 10 characters.\namount 'abc' is not a decimal number.\nnote is longer than 5 characters."
    )

    short = rejected_row(sheet, 5)
    assert short["problems"].value == "row 5 has 2 cells where the header has 4."  # row-level problem
    assert (short["employee_id"].value, short["name"].value) == ("E005", "Bob")
    assert short["employee_id"].fill.fill_type is None

    assert rejected_row(sheet, 2)["problems"].value == "employee_id: 'E12' is not E and 3 digits."  # field named once
    assert rejected_row(sheet, 2)["name"].value == "Al\ufffdice"  # a control character XML cannot hold


def test_formula_like_text_stays_text(warehouse, tmp_path):
    out = tmp_path / "u1.xlsx"
    book = write_and_open(warehouse, SPEC, out)

    row = rejected_row(book["Rejected rows"], 3)
    for cell, text in [(row["name"], HYPERLINK), (row["note"], "@SUM(A1)")]:
        assert cell.data_type == "s" and cell.value == text
        assert cell.quotePrefix  # Excel and LibreOffice keep it text even when the cell is edited
    summary_cells = [cell for row in book["Summary"].iter_rows() for cell in row if cell.value in (HYPERLINK, "#N/A")]
    assert len(summary_cells) == 2 and all(cell.data_type == "s" for cell in summary_cells)
    problem_values = [cell for row in book["Problems"].iter_rows() for cell in row if isinstance(cell.value, str)]
    assert all(cell.data_type == "s" for cell in problem_values)
    # and no formula anywhere in the file
    with zipfile.ZipFile(out) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/sheet"):
                xml = archive.read(name).decode()
                assert "<f>" not in xml and "<f " not in xml and 't="e"' not in xml, name


def test_header_order_places_the_fields(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    upload = {**UPLOAD, "rows_total": 1, "rows_accepted": 0, "rows_rejected": 1}
    fill_warehouse(
        warehouse,
        upload,
        [(1, 2, "Alice,E12,10.5,ok")],
        [(1, 2, "employee_id", "pattern", "error", "E12", "employee_id 'E12' is not E and 3 digits.")],
        [],
    )
    book = write_and_open(warehouse, SPEC, tmp_path / "u1.xlsx", header=["Name", "Employee_ID", "amount", "note"])

    row = rejected_row(book["Rejected rows"], 1)
    assert row["Employee_ID"].value == "E12" and row["Employee_ID"].fill.fill_type == "solid"
    assert row["Name"].value == "Alice" and row["Name"].fill.fill_type is None


def test_without_a_filespec_the_raw_record_is_shown(warehouse, tmp_path):
    book = write_and_open(warehouse, None, tmp_path / "u1.xlsx")

    sheet = book["Rejected rows"]
    assert [cell.value for cell in sheet[1]] == ["row_number", "line_number", "problems", "record"]
    assert rejected_row(sheet, 3)["record"].value == REJECTS[2][2]
    assert labelled(book["Summary"])["Rows rejected"] == 4


def test_sheets_stop_at_the_row_limit_and_say_so(warehouse, tmp_path):
    book = write_and_open(warehouse, SPEC, tmp_path / "u1.xlsx", max_rows_per_sheet=4, max_comments=1)

    messages = table(book["Messages"])
    assert len(messages) == 4  # header, 2 messages, the note
    assert messages[-1][0] == "'Messages' shows the first 2 of 8 messages (Excel's row limit); 6 are not shown."
    rejected = table(book["Rejected rows"])
    assert len(rejected) == 4 and rejected[-1][0].startswith("'Rejected rows' shows the first 2 of 4 rejected rows")
    comments = [cell for row in book["Rejected rows"].iter_rows() for cell in row if cell.comment is not None]
    assert len(comments) == 1
    notes = [row[0] for row in table(book["Summary"]) if isinstance(row[0], str)]
    assert messages[-1][0] in notes and rejected[-1][0] in notes
    assert any("has comments on the first 1 of its 2 highlighted cells" in note for note in notes)


def test_unknown_upload_is_a_clear_error(warehouse, tmp_path):
    out = tmp_path / "nope.xlsx"
    with pytest.raises(IngestError, match=f"no upload 'nope' in {warehouse.path}"):
        write_upload_report(warehouse, "nope", SPEC, out)
    assert not out.exists()
    assert list(tmp_path.glob(".report-*")) == []  # the work folder is gone too


def test_rejected_records_with_bare_crs_nuls_and_huge_cells_are_split_and_shown(tmp_path):
    """A bare CR is text inside a cell (the csv module refused it and the report crashed), a NUL is
    shown as U+FFFD, and a cell over the csv module's 128 KiB limit is cut at Excel's."""
    huge = "y" * 200_000
    rejects = [(1, 2, "X1,two\rlines,1,x"), (2, 3, 'X2,"a\rb" and more,2,\x00'), (3, 4, f"X3,{huge},3,z")]
    messages = [(row, line, "employee_id", "pattern", "error", f"X{row}", "Not E and 3 digits.") for row, line, _ in rejects]  # fmt: skip
    upload = {**UPLOAD, "rows_total": 3, "rows_accepted": 0, "rows_rejected": 3}
    warehouse = Warehouse(tmp_path / "w.duckdb")
    fill_warehouse(warehouse, upload, rejects, messages, COLUMN_SUMMARY)
    sheet = write_and_open(warehouse, SPEC, tmp_path / "r.xlsx")["Rejected rows"]
    first, second, third = (rejected_row(sheet, n) for n in (1, 2, 3))
    assert first["name"].value.replace("\n", "\r") == "two\rlines"  # one cell, the CR kept as text
    assert first["employee_id"].fill.fgColor.rgb.endswith("FFC7CE")
    assert second["name"].value.replace("\n", "\r") == "a\rb and more" and second["note"].value == "\ufffd"
    assert len(third["name"].value) == 32_767 and third["name"].value.endswith("…") and third["amount"].value == "3"


# --- what a client reads first, and how the workbook reads and prints -------------------------

GATED_SPEC = parse_filespec({**SPEC.model_dump(mode="json", exclude_none=True), "quality": {"max_error_rate": 0.05}}, "test")
GATE_REASON = "80% of rows rejected, above the form type's limit of 5%."


def all_text(book: openpyxl.Workbook) -> str:
    """Every cell value and comment of the workbook, as one text."""
    parts = []
    for sheet in book:
        for row in sheet.iter_rows():
            for cell in row:
                parts.append(str(cell.value) if cell.value is not None else "")
                if cell.comment is not None:
                    parts.append(cell.comment.text)
    return "\n".join(parts)


def test_a_gated_upload_says_first_that_nothing_was_loaded_and_why(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    source = "/home/ops/.ingest/landing/acme/roster/roster-2024-05.csv"
    fill_warehouse(warehouse, {**UPLOAD, "status": "failed", "error": GATE_REASON, "source": source},
                   REJECTS, MESSAGES, COLUMN_SUMMARY)  # fmt: skip
    book = write_and_open(warehouse, GATED_SPEC, tmp_path / "u1.xlsx")

    first_lines = [row[0] for row in table(book["Summary"])[:4]]
    assert first_lines == [
        "Upload report: roster-2024-05.csv",
        "Nothing was loaded: too many rows were rejected (the form type's quality gate).",
        f"Why: {GATE_REASON}",
        "What to do: correct the rows on 'Rejected rows' (what is wrong in each is there and on 'Problems') "
        "and send the whole file again.",
    ]
    assert book["Summary"]["A2"].fill.start_color.rgb.endswith("FFC7CE")
    facts = labelled(book["Summary"])
    assert facts["Rows loaded"] == 0 and facts["Rows that passed the checks (not loaded)"] == 1
    assert "Rows accepted (loaded)" not in facts
    assert facts["File"] == "roster-2024-05.csv"
    text = all_text(book)
    assert "/home/ops" not in text and ".ingest" not in text


def test_a_failed_upload_says_so_without_server_paths(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    source = "azure://account/landing/acme/roster/roster.csv"
    error = f"prepare: {source} changed since it was registered; see /srv/ingest/work/u1/manifest.json"
    upload = {**UPLOAD, "status": "failed", "error": error, "source": source,
              "rows_total": None, "rows_accepted": None, "rows_rejected": None}  # fmt: skip
    fill_warehouse(warehouse, upload, [], [], [])
    book = write_and_open(warehouse, SPEC, tmp_path / "u1.xlsx")

    first_lines = [row[0] for row in table(book["Summary"])[:3]]
    assert first_lines == [
        "Upload report: roster.csv",
        "Nothing was loaded: the upload failed.",
        "Why: prepare: roster.csv changed since it was registered; see manifest.json",
    ]
    text = all_text(book)
    assert "azure://" not in text and "/srv/" not in text and "account/landing" not in text


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("/home/ops/.ingest/landing/acme/roster/r.csv", "r.csv"),
        ("azure://acct/container/prefix/acme/roster/r 1.csv", "r 1.csv"),
        ("C:\\Users\\ops\\r.csv", "r.csv"),
        ("r.csv", "r.csv"),
    ],
)
def test_the_client_file_name_is_the_last_part_of_the_source(source, name):
    from ingest_pipeline.core.report import client_file_name

    assert client_file_name(source) == name


def test_a_pattern_without_a_description_is_shown_by_an_example(tmp_path):
    spec = parse_filespec(
        {"form_type": "roster", "fields": [{"name": "code", "pattern": "[A-Z]{2}-[0-9]{5}"}, {"name": "n"}]}, "test"
    )
    warehouse = Warehouse(tmp_path / "w.duckdb")
    upload = {**UPLOAD, "rows_total": 1, "rows_accepted": 0, "rows_rejected": 1}
    message = "Field 'code' does not have the expected form (text like HK-60581): 'ab-1'."
    fill_warehouse(warehouse, upload, [(1, 2, "ab-1,x")], [(1, 2, "code", "pattern", "error", "ab-1", message)], [])
    book = write_and_open(warehouse, spec, tmp_path / "u1.xlsx")

    header, row = table(book["Problems"])[:2]
    expected = dict(zip(header, row, strict=True))["what is expected"]
    assert expected.startswith("text like ")
    import re

    assert re.fullmatch("[A-Z]{2}-[0-9]{5}", expected.removeprefix("text like "))
    assert "[A-Z]" not in all_text(book)


def test_an_impossible_date_is_explained_as_one(tmp_path):
    spec = parse_filespec({"form_type": "roster", "fields": [{"name": "born", "type": "date", "format": "%d.%m.%Y"}]}, "t")
    warehouse = Warehouse(tmp_path / "w.duckdb")
    upload = {**UPLOAD, "rows_total": 1, "rows_accepted": 0, "rows_rejected": 1}
    message = "Field 'born': '29.02.2001' is written as DD.MM.YYYY but is not a date that exists."
    fill_warehouse(warehouse, upload, [(1, 2, "29.02.2001")], [(1, 2, "born", "type", "error", "29.02.2001", message)], [])
    book = write_and_open(warehouse, spec, tmp_path / "u1.xlsx")

    header, row = table(book["Problems"])[:2]
    group = dict(zip(header, row, strict=True))
    assert group["what it means"] == (
        "The value is not a date written as DD.MM.YYYY, or it is written that way but is not a date that exists "
        "(such as 30 February or 31 April)."
    )
    assert group["what is expected"] == "a date that exists, written as DD.MM.YYYY, e.g. 31.01.2024"
    assert "%d" not in all_text(book)


def test_every_table_filters_freezes_its_header_and_prints_one_page_wide(warehouse, tmp_path):
    book = write_and_open(warehouse, SPEC, tmp_path / "u1.xlsx")

    filters = {sheet.title: sheet.auto_filter.ref for sheet in book}
    assert filters == {"Summary": "A28:H32", "Problems": "A1:I7", "Messages": "A1:G9", "Rejected rows": "A1:G5"}
    assert table(book["Summary"])[27][0] == "field"  # the column table's header, where the filter starts
    assert {sheet.title: sheet.freeze_panes for sheet in book} == {
        "Summary": None, "Problems": "A2", "Messages": "A2", "Rejected rows": "C2"
    }
    for sheet in book:
        assert sheet.page_setup.orientation == "landscape", sheet.title
        assert sheet.sheet_properties.pageSetUpPr.fitToPage, sheet.title
        assert (int(sheet.page_setup.fitToWidth), int(sheet.page_setup.fitToHeight)) == (1, 0), sheet.title
        assert (sheet.page_margins.left, sheet.page_margins.right) == (0.4, 0.4), sheet.title
        assert sheet.oddFooter.center.text == "&A, page &P of &N"
        if sheet.title != "Summary":
            assert sheet.print_title_rows == "$1:$1", sheet.title


def test_columns_fit_their_content_and_wrapped_rows_are_tall_enough(warehouse, tmp_path):
    book = write_and_open(warehouse, SPEC, tmp_path / "u1.xlsx")

    rejected = book["Rejected rows"]
    widths = {cell.value: rejected.column_dimensions[cell.column_letter].width for cell in rejected[1]}
    assert widths["employee_id"] == len("employee_id") + 2  # the header is the longest text
    assert widths["name"] == len('=HYPERLINK("http://x")') + 2
    row = rejected_row(rejected, 3)  # three messages: three lines
    problems_lines = [line for (_, _, text, *_) in table(rejected)[1:] for line in text.split("\n")]
    assert widths["problems"] == max(len(line) for line in problems_lines) + 2
    assert row["problems"].alignment.wrap_text
    assert rejected.row_dimensions[row["problems"].row].height == 3 * 15
    assert row["employee_id"].alignment.vertical == "top"
    single = rejected_row(rejected, 2)
    assert rejected.row_dimensions[single["problems"].row].height is None  # one line: the default

    problems = book["Problems"]
    means = [cell for cell in problems["E"] if cell.value and len(cell.value) > problems.column_dimensions["E"].width]
    assert means and all(cell.alignment.wrap_text and problems.row_dimensions[cell.row].height >= 30 for cell in means)


def test_the_extra_and_missing_cells_of_a_miscounted_row_are_marked(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    upload = {**UPLOAD, "rows_total": 2, "rows_accepted": 0, "rows_rejected": 2}
    rejects = [(1, 2, "E001,Ann,1,ok,stray,more"), (2, 3, "E002,Bob")]
    messages = [
        (1, 2, None, "field_count", "error", None, "The record has 6 fields but 4 are expected; check the delimiters."),
        (2, 3, None, "field_count", "error", None, "The record has 2 fields but 4 are expected; check the delimiters."),
    ]
    fill_warehouse(warehouse, upload, rejects, messages, [])
    sheet = write_and_open(warehouse, SPEC, tmp_path / "u1.xlsx")["Rejected rows"]

    assert [cell.value for cell in sheet[1]][3:] == ["employee_id", "name", "amount", "note", "extra cell 5", "extra cell 6"]
    long_row = rejected_row(sheet, 1)
    for label in ("employee_id", "name", "amount", "note"):
        assert long_row[label].fill.fill_type is None and long_row[label].comment is None, label
    for label, value, position in (("extra cell 5", "stray", 5), ("extra cell 6", "more", 6)):
        cell = long_row[label]
        assert cell.value == value
        assert cell.fill.start_color.rgb.endswith("F8CBAD") and cell.font.i
        assert cell.comment.text.startswith(f"Extra cell: the header has 4 columns, this row has 6 cells, and this is cell {position}.")
    short = rejected_row(sheet, 2)
    assert (short["employee_id"].value, short["name"].value) == ("E002", "Bob")
    for label in ("amount", "note"):
        assert short[label].fill.start_color.rgb.endswith("F8CBAD"), label
        assert short[label].comment.text.startswith("Missing cell: this row has 2 cells where the header has 4 columns.")
    assert short["extra cell 5"].fill.fill_type is None  # beyond the header: nothing is missing there
