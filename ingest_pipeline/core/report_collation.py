"""The report collation (seed 003): one workbook over every upload of a company in a period.

Sheets:

- Uploads: one row per upload received in the period, oldest first: when it was received, its
  file name (never a server path), form type, status, rows, accepted, rejected, the rejected
  share and the error sentence of a failed upload. A period without uploads says so in a row.
- Problems: the messages of those uploads grouped by rule, field and severity: how many
  messages, how many uploads they touch, what the rule means, and one example (the earliest
  upload's first row): its file, row, value and message.
- About: the company, form type, period, when the report was written, and the totals.

`collate` reads the warehouse (read-only, every value a query parameter: no text of a user
ever becomes SQL) and returns plain data; `write_collation` writes it in openpyxl's write-only
mode. The warehouse lock is held for the two queries only, never while the workbook is written.
"""

import datetime as dt
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter

from ingest_pipeline.core.errors import ReportPeriodError
from ingest_pipeline.core.report import (
    EXCEL_MAX_ROWS,
    HEADER_FONT,
    RULE_EXPLANATIONS,
    TITLE_FONT,
    UNKNOWN_RULE_EXPLANATION,
    sheet_value,
    styled_text_cell,
    text_cell,
)
from ingest_pipeline.core.warehouse import Warehouse


def _start_table(sheet, columns: list[str], widths: list[int]) -> None:
    """Column widths and a bold header row kept in view while scrolling (write-only: before any row)."""
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    sheet.append([styled_text_cell(sheet, name, font=HEADER_FONT) for name in columns])


SHEET_UPLOADS = "Uploads"
SHEET_PROBLEMS = "Problems"
SHEET_ABOUT = "About"
UPLOAD_COLUMNS = ["received at (UTC)", "file", "form type", "status", "rows", "accepted", "rejected", "rejected %",
                  "error", "upload id"]  # fmt: skip
UPLOAD_WIDTHS = [20, 40, 18, 11, 10, 10, 10, 11, 70, 18]
PROBLEM_COLUMNS = ["rule", "field", "severity", "messages", "uploads affected", "what it means", "example file",
                   "example row", "example value", "example message"]  # fmt: skip
PROBLEM_WIDTHS = [16, 18, 10, 11, 11, 50, 40, 12, 30, 60]
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class ReportPeriod:
    """Whole UTC days, `since` and `until` both included."""

    since: dt.date
    until: dt.date

    @property
    def start(self) -> dt.datetime:
        """The first instant of the period (naive UTC, as the warehouse keeps times)."""
        return dt.datetime.combine(self.since, dt.time())

    @property
    def end(self) -> dt.datetime:
        """The first instant after the period."""
        return dt.datetime.combine(self.until + dt.timedelta(days=1), dt.time())

    def __str__(self) -> str:
        return f"{self.since.isoformat()} to {self.until.isoformat()}"


def parse_period(since: str | None, until: str | None) -> ReportPeriod:
    """The period of `since=YYYY-MM-DD` and `until=YYYY-MM-DD` (both included).

    Raises:
        ReportPeriodError: A date is missing or not a date, or `since` is after `until`.
    """
    days = []
    for name, text in (("since", since), ("until", until)):
        if not text:
            raise ReportPeriodError(f"Give the report's period as since=YYYY-MM-DD and until=YYYY-MM-DD; {name} is missing.")
        try:
            if not _DATE_RE.fullmatch(text):
                raise ValueError(text)
            days.append(dt.date.fromisoformat(text))
        except ValueError:
            raise ReportPeriodError(f"The {name} date {text[:40]!r} is not a date written as YYYY-MM-DD.") from None
    period = ReportPeriod(*days)
    if period.since > period.until:
        raise ReportPeriodError(f"The period starts after it ends: since {period.since} is later than until {period.until}.")
    return period


@dataclass(frozen=True)
class CollatedUpload:
    """One row of the Uploads sheet."""

    upload_id: str
    received_at: dt.datetime  # naive UTC
    filename: str
    form_type: str
    status: str
    rows_total: int | None = None
    rows_accepted: int | None = None
    rows_rejected: int | None = None
    error: str | None = None

    @property
    def rejected_share(self) -> float | None:
        return self.rows_rejected / self.rows_total if self.rows_rejected is not None and self.rows_total else None


@dataclass(frozen=True)
class ProblemGroup:
    """One row of the Problems sheet: the messages of one rule, field and severity in the period."""

    rule: str
    field: str | None
    severity: str
    messages: int
    uploads: int
    example_file: str
    example_row: int | None
    example_value: str | None
    example_message: str


@dataclass(frozen=True)
class Collation:
    """What the report says, read from the warehouse."""

    company_id: str
    form_type: str | None  # None: every form type
    period: ReportPeriod
    uploads: list[CollatedUpload]
    problems: list[ProblemGroup]
    uploads_left_out: int = 0  # past the sheet's row limit
    written_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0))


def file_name(source: str) -> str:
    """An upload's file name as a client may see it: the last part of its recorded source."""
    return os.path.basename(str(source).replace("\\", "/"))


_FORM_TYPE = "/*form_type*/"  # where the form type condition goes, when there is one
_PERIOD_SQL = "u.company_id = ? AND u.received_at >= ? AND u.received_at < ?"

UPLOADS_SQL = f"""
SELECT upload_id, received_at, source, form_type, status, rows_total, rows_accepted, rows_rejected, error
FROM ingest.uploads AS u
WHERE {_PERIOD_SQL} /*form_type*/
ORDER BY received_at, upload_id
LIMIT ?
"""

PROBLEMS_SQL = f"""
SELECT m.rule, m.field, m.severity, count(*) AS messages, count(DISTINCT m.upload_id) AS uploads,
       arg_min({{'source': u.source, 'row_number': m."row_number", 'value': m.value, 'message': m.message}},
               (u.received_at, u.upload_id, coalesce(m."row_number", 0), m.message)) AS example
FROM ingest.messages AS m JOIN ingest.uploads AS u USING (upload_id)
WHERE {_PERIOD_SQL} /*form_type*/
GROUP BY m.rule, m.field, m.severity
ORDER BY m.severity = 'warning', messages DESC, m.rule, m.field NULLS FIRST
"""


def collate(
    warehouse: Warehouse,
    company_id: str,
    period: ReportPeriod,
    form_type: str | None = None,
    *,
    received: Iterable[CollatedUpload] = (),
    max_uploads: int = EXCEL_MAX_ROWS - 2,
) -> Collation:
    """The company's uploads received in `period` (of `form_type`, or of every form type) and their
    problems, from the warehouse.

    Args:
        warehouse: Read with a reader's connection, for two queries.
        company_id: Only this company's uploads are read.
        period: Uploads received (`ingest.uploads.received_at`) in these UTC days.
        form_type: Only uploads of this form type; None: all.
        received: Uploads known to have landed that the warehouse may not have registered yet
            (the HTTP API's `received`); those it has registered are taken from the warehouse.
        max_uploads: Rows of the Uploads sheet at most (Excel's limit); the rest are counted.
    """
    parameters: list = [company_id, period.start, period.end]
    form_sql = ""
    if form_type is not None:
        form_sql = "AND u.form_type = ?"
        parameters.append(form_type)
    received = [r for r in received if period.start <= r.received_at < period.end
                and (form_type is None or r.form_type == form_type)]  # fmt: skip
    with warehouse.connect(write=False) as connection:
        rows = connection.execute(UPLOADS_SQL.replace(_FORM_TYPE, form_sql), [*parameters, max_uploads + 1]).fetchall()
        problem_rows = connection.execute(PROBLEMS_SQL.replace(_FORM_TYPE, form_sql), parameters).fetchall()
        total = len(rows)
        if total > max_uploads:
            total = connection.execute(
                f"SELECT count(*) FROM ingest.uploads AS u WHERE {_PERIOD_SQL} {form_sql}", parameters
            ).fetchone()[0]
        registered = set()
        if received:
            registered = {r[0] for r in connection.execute(
                "SELECT upload_id FROM ingest.uploads WHERE list_contains(?, upload_id)", [[r.upload_id for r in received]]
            ).fetchall()}  # fmt: skip
    uploads = [CollatedUpload(upload_id, received_at, file_name(source), form, status, rows_total, accepted, rejected, error)
               for upload_id, received_at, source, form, status, rows_total, accepted, rejected, error in rows]  # fmt: skip
    uploads += [r for r in received if r.upload_id not in registered]
    uploads.sort(key=lambda u: (u.received_at, u.upload_id))
    total += len(uploads) - len(rows)
    problems = [
        ProblemGroup(rule, field_name, severity, messages, touched, file_name(example["source"]), example["row_number"],
                     example["value"], example["message"])  # fmt: skip
        for rule, field_name, severity, messages, touched, example in problem_rows
    ]
    return Collation(company_id, form_type, period, uploads[:max_uploads], problems, max(0, total - max_uploads))


def write_collation(collation: Collation, out: Path) -> Path:
    """Writes the report to `out` (.xlsx), replaced atomically; returns `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    workbook = Workbook(write_only=True)
    workbook.properties.title = f"Uploads of {collation.company_id}, {collation.period}"
    _write_uploads(workbook.create_sheet(SHEET_UPLOADS), collation)
    _write_problems(workbook.create_sheet(SHEET_PROBLEMS), collation)
    _write_about(workbook.create_sheet(SHEET_ABOUT), collation)
    handle, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(handle)
    try:
        workbook.save(partial)
        os.replace(partial, out)  # a reader never sees half a workbook
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return out


def _what(collation: Collation) -> str:
    kind = f" of form type {collation.form_type}" if collation.form_type else ""
    return f"uploads{kind} of {collation.company_id} received from {collation.period} (UTC days, both included)"


def _finish_table(sheet, columns: list[str], rows: int) -> None:
    """An autofilter over the header and the `rows` rows below it."""
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{rows + 1}"


def _write_uploads(sheet, collation: Collation) -> None:
    _start_table(sheet, UPLOAD_COLUMNS, UPLOAD_WIDTHS)
    for upload in collation.uploads:
        share = WriteOnlyCell(sheet, upload.rejected_share)
        share.number_format = "0.00%"
        received = WriteOnlyCell(sheet, upload.received_at)
        received.number_format = "yyyy-mm-dd hh:mm:ss"
        sheet.append([received, text_cell(sheet, upload.filename), text_cell(sheet, upload.form_type), text_cell(sheet, upload.status),
                      upload.rows_total, upload.rows_accepted, upload.rows_rejected, share, sheet_value(sheet, upload.error),
                      text_cell(sheet, upload.upload_id)])  # fmt: skip
    _finish_table(sheet, UPLOAD_COLUMNS, len(collation.uploads))
    if not collation.uploads:
        sheet.append([text_cell(sheet, f"There are no {_what(collation)}.")])
    elif collation.uploads_left_out:
        sheet.append([text_cell(sheet, f"{collation.uploads_left_out} later uploads do not fit on this sheet; "
                                   "ask for a shorter period to see them.")])  # fmt: skip


def _write_problems(sheet, collation: Collation) -> None:
    _start_table(sheet, PROBLEM_COLUMNS, PROBLEM_WIDTHS)
    for group in collation.problems:
        row = [group.rule, group.field, group.severity, group.messages, group.uploads,
               RULE_EXPLANATIONS.get(group.rule, UNKNOWN_RULE_EXPLANATION), group.example_file, group.example_row,
               group.example_value, group.example_message]  # fmt: skip
        sheet.append([sheet_value(sheet, value) for value in row])
    _finish_table(sheet, PROBLEM_COLUMNS, len(collation.problems))
    if not collation.problems:
        sheet.append([text_cell(sheet, f"The {_what(collation)} have no messages." if collation.uploads
                            else f"There are no {_what(collation)}.")])  # fmt: skip


def _write_about(sheet, collation: Collation) -> None:
    sheet.column_dimensions["A"].width = 24
    sheet.column_dimensions["B"].width = 60
    uploads = collation.uploads
    by_status: dict[str, int] = {}
    for upload in uploads:
        by_status[upload.status] = by_status.get(upload.status, 0) + 1
    facts = [
        ("Company", collation.company_id),
        ("Form type", collation.form_type or "all form types"),
        ("Period (UTC days)", str(collation.period)),
        ("Uploads", len(uploads) + collation.uploads_left_out),
        ("By status", ", ".join(f"{status} {count}" for status, count in sorted(by_status.items())) or "none"),
        ("Rows", sum(u.rows_total or 0 for u in uploads)),
        ("Rows accepted", sum(u.rows_accepted or 0 for u in uploads)),
        ("Rows rejected", sum(u.rows_rejected or 0 for u in uploads)),
        ("Messages", sum(g.messages for g in collation.problems)),
        ("Report written at (UTC)", collation.written_at),
    ]
    sheet.append([styled_text_cell(sheet, "Report collation", font=TITLE_FONT)])
    for label, value in facts:
        sheet.append([styled_text_cell(sheet, label, font=HEADER_FONT), sheet_value(sheet, value)])
    if collation.uploads_left_out:
        sheet.append([styled_text_cell(sheet, "Note", font=HEADER_FONT),
                      text_cell(sheet, f"The Uploads sheet shows the first {len(uploads)}; its totals here count those only.")])  # fmt: skip

