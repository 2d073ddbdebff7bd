"""The report collation, from a warehouse filled by hand and read back with openpyxl."""

import datetime as dt

import openpyxl
import pytest

from ingest_pipeline.core.errors import ReportPeriodError
from ingest_pipeline.core.report_collation import (
    PROBLEM_COLUMNS,
    UPLOAD_COLUMNS,
    CollatedUpload,
    collate,
    parse_period,
    write_collation,
)
from ingest_pipeline.core.warehouse import Warehouse

JUNE = parse_period("2024-06-01", "2024-06-30")


def add_upload(connection, upload_id, company, received_at, status="completed", counts=(10, 8, 2), error=None,
               form_type="employee_roster", source=None):  # fmt: skip
    connection.execute(
        "INSERT INTO ingest.uploads (upload_id, company_id, form_type, source, received_at, status, rows_total, "
        "rows_accepted, rows_rejected, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [upload_id, company, form_type, source or f"/srv/ingest/landing/{company}/{form_type}/{upload_id}-roster.csv",
         received_at, status, *counts, error],
    )  # fmt: skip


def add_message(connection, upload_id, row, field, rule, value, message, severity="error"):
    connection.execute(
        "INSERT INTO ingest.messages (upload_id, row_number, line_number, field, rule, severity, value, message) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [upload_id, row, None if row is None else row + 1, field, rule, severity, value, message],
    )


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    with warehouse.transaction() as c:
        add_upload(c, "a_may", "acme", dt.datetime(2024, 5, 31, 23, 59, 59))  # the day before
        add_upload(c, "a_first", "acme", dt.datetime(2024, 6, 1, 0, 0, 0))
        add_upload(c, "a_failed", "acme", dt.datetime(2024, 6, 12, 9, 30), status="failed", counts=(4, 0, 4),
                   error="6% of rows rejected, above the form type's limit of 5%.")  # fmt: skip
        add_upload(c, "a_last", "acme", dt.datetime(2024, 6, 30, 23, 59, 59), form_type="payroll",
                   source="azure://acct/uploads/incoming/acme/payroll/x-pay.csv")  # fmt: skip
        add_upload(c, "a_july", "acme", dt.datetime(2024, 7, 1, 0, 0, 0))  # the day after
        add_upload(c, "g_june", "globex", dt.datetime(2024, 6, 15))
        add_message(c, "a_first", 3, "email", "pattern", "=cmd|x", "email '=cmd|x' is not an email address.")
        add_message(c, "a_first", 1, "email", "pattern", "bob@", "email 'bob@' is not an email address.")
        add_message(c, "a_failed", 2, "email", "pattern", "ann@", "email 'ann@' is not an email address.")
        add_message(c, "a_failed", 2, "salary", "type", "12,5", "salary '12,5' is not a decimal number.")
        add_message(c, "a_failed", None, "badge", "extra_column", "badge", "The column 'badge' is ignored.", "warning")
        add_message(c, "a_may", 1, "email", "pattern", "may@", "not in the period.")
        add_message(c, "g_june", 1, "email", "pattern", "globex@", "another company's.")
    return warehouse


def test_a_period_is_two_dates_both_included():
    assert (JUNE.start, JUNE.end) == (dt.datetime(2024, 6, 1), dt.datetime(2024, 7, 1))
    assert parse_period("2024-06-01", "2024-06-01").end == dt.datetime(2024, 6, 2)


@pytest.mark.parametrize(
    ("since", "until", "says"),
    [(None, "2024-06-30", "since is missing"), ("2024-06-01", "", "until is missing"),
     ("2024-6-1", "2024-06-30", "'2024-6-1' is not a date"), ("2024-02-30", "2024-03-01", "'2024-02-30' is not a date"),
     ("2024-06-01T00:00", "2024-06-30", "is not a date"), ("20240601", "2024-06-30", "is not a date"),
     ("2024-07-01", "2024-06-30", "since 2024-07-01 is later than until 2024-06-30")],
)  # fmt: skip
def test_a_bad_period_is_one_sentence(since, until, says):
    with pytest.raises(ReportPeriodError, match=says) as error:
        parse_period(since, until)
    assert str(error.value).endswith(".") and str(error.value).count(". ") == 0


def test_the_collation_holds_the_companys_uploads_in_the_period_and_their_problems(warehouse):
    collation = collate(warehouse, "acme", JUNE)
    assert [u.upload_id for u in collation.uploads] == ["a_first", "a_failed", "a_last"]
    first, failed, last = collation.uploads
    assert (first.filename, last.filename) == ("a_first-roster.csv", "x-pay.csv")  # never a path
    assert (failed.status, failed.rejected_share, failed.error[:2]) == ("failed", 1.0, "6%")
    assert first.rejected_share == 0.2
    groups = {(g.rule, g.field): g for g in collation.problems}
    assert set(groups) == {("pattern", "email"), ("type", "salary"), ("extra_column", "badge")}
    email = groups["pattern", "email"]
    assert (email.messages, email.uploads) == (3, 2)  # neither May's nor globex's
    assert (email.example_file, email.example_row, email.example_value) == ("a_first-roster.csv", 1, "bob@")
    assert [g.rule for g in collation.problems] == ["pattern", "type", "extra_column"]  # errors first, most first
    assert groups["extra_column", "badge"].example_row is None

    only_payroll = collate(warehouse, "acme", JUNE, "payroll")
    assert [u.upload_id for u in only_payroll.uploads] == ["a_last"] and only_payroll.problems == []
    assert collate(warehouse, "acme", JUNE, "x' OR 1=1 --").uploads == []
    assert [u.upload_id for u in collate(warehouse, "globex", JUNE).uploads] == ["g_june"]


def test_uploads_not_registered_yet_are_listed_as_received(warehouse):
    landed = [CollatedUpload("a_first", dt.datetime(2024, 6, 1), "a_first-roster.csv", "employee_roster", "received"),
              CollatedUpload("a_new", dt.datetime(2024, 6, 20), "new.csv", "employee_roster", "received"),
              CollatedUpload("a_later", dt.datetime(2024, 8, 1), "later.csv", "employee_roster", "received")]  # fmt: skip
    collation = collate(warehouse, "acme", JUNE, received=landed)
    assert [(u.upload_id, u.status) for u in collation.uploads] == [
        ("a_first", "completed"), ("a_failed", "failed"), ("a_new", "received"), ("a_last", "completed")]  # fmt: skip


def test_the_workbook_has_an_uploads_and_a_problems_sheet_with_filters_and_frozen_headers(warehouse, tmp_path):
    out = write_collation(collate(warehouse, "acme", JUNE), tmp_path / "out" / "report.xlsx")
    workbook = openpyxl.load_workbook(out)
    assert workbook.sheetnames == ["Uploads", "Problems", "About"]
    uploads, problems = workbook["Uploads"], workbook["Problems"]
    rows = [[c.value for c in row] for row in uploads.iter_rows()]
    assert rows[0] == UPLOAD_COLUMNS and len(rows) == 4
    assert rows[1][:8] == [dt.datetime(2024, 6, 1), "a_first-roster.csv", "employee_roster", "completed", 10, 8, 2, 0.2]
    assert rows[2][8] == "6% of rows rejected, above the form type's limit of 5%." and rows[2][7] == 1
    assert uploads["H2"].number_format == "0.00%"
    assert (uploads.freeze_panes, uploads.auto_filter.ref) == ("A2", "A1:J4")
    assert uploads.column_dimensions["B"].width == 40
    rows = [[c.value for c in row] for row in problems.iter_rows()]
    assert rows[0] == PROBLEM_COLUMNS and (problems.freeze_panes, problems.auto_filter.ref) == ("A2", "A1:J4")
    assert rows[1][:5] == ["pattern", "email", "error", 3, 2] and rows[1][6:9] == ["a_first-roster.csv", 1, "bob@"]
    about = {row[0].value: row[1].value for row in workbook["About"].iter_rows(min_row=2)}
    assert about["Uploads"] == 3 and about["Rows"] == 24 and about["By status"] == "completed 2, failed 1"
    assert not any("/srv" in str(cell.value) for sheet in workbook for row in sheet.iter_rows() for cell in row)


def test_text_that_looks_like_a_formula_stays_text(warehouse, tmp_path):
    with warehouse.transaction() as c:
        add_upload(c, "a_formula", "acme", dt.datetime(2024, 6, 2), source="/x/=HYPERLINK(1)", error="=1+1")
        c.execute("DELETE FROM ingest.messages WHERE upload_id = 'a_first' AND row_number = 1")
    workbook = openpyxl.load_workbook(write_collation(collate(warehouse, "acme", JUNE), tmp_path / "r.xlsx"))
    row = [c for c in workbook["Uploads"][3]]
    assert (row[1].value, row[1].data_type, row[8].value, row[8].data_type) == ("=HYPERLINK(1)", "s", "=1+1", "s")
    assert workbook["Problems"]["I2"].value == "=cmd|x" and workbook["Problems"]["I2"].data_type == "s"


def test_a_period_without_uploads_says_so(warehouse, tmp_path):
    workbook = openpyxl.load_workbook(write_collation(collate(warehouse, "acme", parse_period("2023-01-01", "2023-01-31")),
                                                      tmp_path / "r.xlsx"))  # fmt: skip
    for sheet in ("Uploads", "Problems"):
        rows = [[c.value for c in row] for row in workbook[sheet].iter_rows()]
        assert len(rows) == 2 and rows[1][0] == (
            "There are no uploads of acme received from 2023-01-01 to 2023-01-31 (UTC days, both included).")
    assert {row[0].value: row[1].value for row in workbook["About"].iter_rows(min_row=2)}["Uploads"] == 0


def test_uploads_past_the_sheets_limit_are_counted_and_said(warehouse, tmp_path):
    collation = collate(warehouse, "acme", JUNE, max_uploads=2)
    assert [u.upload_id for u in collation.uploads] == ["a_first", "a_failed"] and collation.uploads_left_out == 1
    workbook = openpyxl.load_workbook(write_collation(collation, tmp_path / "r.xlsx"))
    last = [c.value for c in list(workbook["Uploads"].iter_rows())[-1]]
    assert last[0].startswith("1 later uploads do not fit on this sheet")
