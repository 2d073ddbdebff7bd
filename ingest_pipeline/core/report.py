"""The client report: one upload's outcome as an .xlsx workbook a client can act on.

Sheets:

- Summary: first what happened in one sentence (how many rows were loaded, or that nothing was
  and why: the quality gate's sentence or the failure's), then the upload (the client's own file
  name, never a path on a server; status, counts, shares) and the column summary, with notes on
  anything the report had to leave out.
- Problems: the messages grouped by rule, field and severity: how many, what the rule means in
  plain English, what the filespec expects (its `description`, or an example value made from a
  `pattern`; never a regular expression), and a few example rows.
- Messages: every message, one per row.
- Rejected rows: every rejected record split into its cells; a cell that broke a rule is filled
  red (yellow for a warning) and carries the messages as a comment, and a record with more cells
  than the header has its extra cells (or its missing ones) filled orange and explained; the
  `problems` column lists all the row's messages, so nothing depends on comments (lost in a CSV
  export, say).

Reading and printing: every table has an autofilter and a frozen header row; columns are sized
to their content within bounds; text too long for its column wraps, and the row is given the
height of its lines (LibreOffice does not grow rows for wrapped text by itself, so without it
lines overlap the next row); every sheet prints landscape, one page wide, with its header row
repeated on each page.

Safety: every text from an upload is written as a string cell, never as a formula or an error
value (openpyxl would store `=HYPERLINK(...)` as a formula and `#N/A` as an error), and text a
spreadsheet would run as a formula (starting with =, +, -, @, tab or carriage return) also gets
the "quote prefix" style, so it stays text when a user edits the cell. Characters that XML
cannot hold are shown as U+FFFD, and text longer than Excel's cell limit is cut with "…".

Size: sheets are written in openpyxl's write-only mode from DuckDB in batches. The upload's rows
are first copied from the warehouse to Parquet files beside the report, so the warehouse lock is
held for the copy only, not while the workbook is written. A sheet stops at Excel's row limit
and says so in its last row and on the Summary.
"""

import copy
import datetime as dt
import math
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.properties import PageSetupProperties

from ingest_pipeline.core.errors import IngestError
from ingest_pipeline.core.filespec import FieldSpec, FieldType, FileSpec, FormatKind
from ingest_pipeline.core.judge import MESSAGE_SCHEMA, date_example, human_date_format, pattern_expectation
from ingest_pipeline.core.quality import judge_error_rate
from ingest_pipeline.core.records import split_raw_record
from ingest_pipeline.core.sql import open_duckdb, sql_read_parquet
from ingest_pipeline.core.uploads import COMPLETED, FAILED
from ingest_pipeline.core.warehouse import UPLOAD_COLUMNS, Warehouse

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
EXCEL_MAX_CELL_CHARS = 32_767
FETCH_BATCH_ROWS = 10_000
EXAMPLES_PER_PROBLEM = 5
EXAMPLE_VALUE_CHARS = 40  # of a cell's text shown as an example on 'Problems'
# Every comment stays in memory until the workbook is saved, and Excel slows to a crawl on
# sheets with very many; past this the cells are still filled, and `problems` says it all.
DEFAULT_MAX_COMMENTS = 10_000

SHEET_SUMMARY = "Summary"
SHEET_PROBLEMS = "Problems"
SHEET_MESSAGES = "Messages"
SHEET_REJECTED = "Rejected rows"

# A spreadsheet runs a cell typed with one of these first characters as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

RULE_EXPLANATIONS = {
    "required": "The field must have a value, but the cell is empty.",
    "type": "The value cannot be read as the field's type (a whole number, a decimal number, a date or a yes/no value).",
    "min_length": "The value is shorter than allowed.",
    "max_length": "The value is longer than allowed.",
    "pattern": "The value does not have the expected form.",
    "enum": "The value is not one of the allowed values.",
    "minimum": "The value is below the smallest allowed value.",
    "maximum": "The value is above the largest allowed value.",
    "lookup": "The value is not in the list of known values it must come from.",
    "unique": "The value was already used by an earlier row; each value may appear only once.",
    "enrich": "No matching entry was found in the reference data used to complete the row.",
    "field_count": "The row has a different number of cells than the header (often a stray delimiter or an "
    "unclosed quote); on 'Rejected rows' its extra or missing cells are orange.",
    "encoding": "The row holds characters that cannot be read in the file's declared encoding.",
    "missing_column": "A column the form needs is not in the header, so the file could not be processed.",
    "duplicate_column": "Two header cells name the same column, so the file could not be processed.",
    "extra_column": "The header has a column the form does not use; it was ignored.",
    "empty_file": "The file has no data rows.",
}
UNKNOWN_RULE_EXPLANATION = "See the messages for details."
DATE_TYPE_EXPLANATION = (
    "The value is not a {what} written as {written}, or it is written that way but is not a {what} that exists "
    "(such as 30 February or 31 April)."
)

HEADER_FONT = Font(bold=True)
TITLE_FONT = Font(bold=True, size=14)
HEADLINE_FONT = Font(bold=True, size=12)
ERROR_FILL = PatternFill(fill_type="solid", start_color="FFC7CE", end_color="FFC7CE")
ERROR_FONT = Font(color="9C0006")
WARNING_FILL = PatternFill(fill_type="solid", start_color="FFEB9C", end_color="FFEB9C")
WARNING_FONT = Font(color="9C5700")
# A cell the header has no column for (or a cell the row lacks): the cause of a `field_count` error.
EXTRA_CELL_FILL = PatternFill(fill_type="solid", start_color="F8CBAD", end_color="F8CBAD")
EXTRA_CELL_FONT = Font(color="833C0B", italic=True)
LOADED_FILL = PatternFill(fill_type="solid", start_color="C6EFCE", end_color="C6EFCE")
WRAPPED = Alignment(wrap_text=True, vertical="top")
TOP = Alignment(vertical="top")
COMMENT_AUTHOR = "ingest_pipeline"

# Row heights and column widths. A column width counts characters of the font's digit; text
# averages narrower, but a fallback font (LibreOffice without Calibri) is wider, so a line is
# taken to hold one character per unit, less one for the cell's padding.
LINE_HEIGHT_POINTS = 15  # one line of 11 pt text
MAX_ROW_HEIGHT_POINTS = 409  # Excel's limit
MAX_LINES = MAX_ROW_HEIGHT_POINTS // LINE_HEIGHT_POINTS
MAX_CELL_LINES = 6  # lines of a record's own cell shown before the rest is cut off (see the comment)
WIDTH_SAMPLE_ROWS = 1_000  # rows read to size the columns of a long sheet
SUMMARY_COLUMNS = 8  # the Summary's width in columns: its column table's

# Printing: landscape, one page wide, the header row on every page, narrow margins (inches).
PRINT_MARGINS = PageMargins(left=0.4, right=0.4, top=0.5, bottom=0.6, header=0.25, footer=0.3)


def write_upload_report(
    warehouse: Warehouse,
    upload_id: str,
    spec: FileSpec | None,
    out: Path,
    *,
    header: Sequence[str] | None = None,
    max_rows_per_sheet: int = EXCEL_MAX_ROWS,
    max_comments: int = DEFAULT_MAX_COMMENTS,
) -> Path:
    """Write the client report of one upload to `out` (.xlsx), replacing it atomically.

    Args:
        warehouse: The warehouse holding the upload's rows of the contract tables.
        upload_id: The upload to report on.
        spec: The upload's filespec: splits rejected records into labelled cells and says what
            each rule expects. Without it, a rejected record is shown as one cell of raw text.
        out: Where to write the workbook; its folder is created when missing.
        header: The upload's header cells, in file order, when the caller knows them: they label
            the rejected rows' cells and place each field's cell even when the file orders its
            columns differently from the filespec or has extra ones. Without them the cells are
            taken to be in filespec order (always true for fixed width and for files without a
            header), and a record with another number of cells is shown without highlights.
        max_rows_per_sheet: Rows a sheet may hold, its header included (Excel's limit; smaller
            values are for tests).
        max_comments: Cell comments at most on the Rejected rows sheet.

    Returns:
        `out`.

    Raises:
        IngestError: The warehouse has no upload `upload_id`.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".report-", dir=out.parent) as work_name:
        work_dir = Path(work_name)
        upload = _copy_upload_rows(warehouse, upload_id, work_dir)
        with open_duckdb(memory_limit=warehouse.memory_limit, temp_directory=work_dir / "duckdb_tmp") as snapshot:
            for table in ("messages", "rejects", "column_summary"):
                parquet = sql_read_parquet(work_dir / f"{table}.parquet")
                snapshot.execute(f"CREATE VIEW {table} AS SELECT * FROM {parquet}")
            workbook = Workbook(write_only=True)
            summary_sheet = workbook.create_sheet(SHEET_SUMMARY)  # first in the workbook, written last
            notes = _write_problems(workbook.create_sheet(SHEET_PROBLEMS), snapshot, spec)
            notes += _write_messages(workbook.create_sheet(SHEET_MESSAGES), snapshot, max_rows_per_sheet)
            notes += _write_rejected_rows(
                workbook.create_sheet(SHEET_REJECTED), snapshot, spec, header, max_rows_per_sheet, max_comments
            )
            notes += _spec_notes(upload, spec)
            _write_summary(summary_sheet, snapshot, upload, spec, notes)
            partial = work_dir / out.name
            workbook.save(partial)
            os.replace(partial, out)  # a reader never sees half a workbook
    return out


def _copy_upload_rows(warehouse: Warehouse, upload_id: str, work_dir: Path) -> dict[str, Any]:
    """The upload's row; its messages, rejects and column summary copied to Parquet in `work_dir`."""
    with warehouse.connect(write=False) as connection:
        cursor = connection.execute(f"SELECT {UPLOAD_COLUMNS} FROM ingest.uploads WHERE upload_id = ?", [upload_id])
        rows = cursor.fetchall()  # to the end: DuckDB refuses other work while a result is unfinished
        if not rows:
            raise IngestError(f"no upload {upload_id!r} in {warehouse.path}")
        upload = dict(zip([column[0] for column in cursor.description], rows[0], strict=True))
        for table in ("messages", "rejects", "column_summary"):
            relation = connection.sql(
                f"SELECT * EXCLUDE (upload_id) FROM ingest.{table} WHERE upload_id = $upload_id",
                params={"upload_id": upload_id},
            )
            relation.write_parquet(str(work_dir / f"{table}.parquet"))
    return upload


# --- Summary ---------------------------------------------------------------------------------


def client_file_name(source: str | None) -> str:
    """The name of the client's file, from an upload's `source` (a local path or a blob uri):
    its last part, without the folders of the server or the storage account it came through."""
    if not source:
        return "(unknown)"
    name = re.split(r"[/\\]", source.rstrip("/\\"))[-1]
    return name or source


# An absolute path or a storage uri of two parts or more, not inside a word: "/srv/x/y.csv", "azure://a/b".
_SERVER_PATH_RE = re.compile(r"(?<![\w.:/])(?:[a-z][a-z0-9+.-]*://[^\s'\"]+|(?:/[^\s/'\"]+){2,}/?)", re.IGNORECASE)


def client_text(text: str, source: str | None) -> str:
    """`text` (an upload's error, say) as a client may read it: the upload's source shown as its
    file name, and any other path on the server by its last part."""
    if source:
        text = text.replace(source, client_file_name(source))
    return _SERVER_PATH_RE.sub(lambda match: client_file_name(match.group(0)), text)


def _outcome(upload: dict[str, Any], spec: FileSpec | None) -> tuple[list[str], PatternFill | None]:
    """The Summary's first lines, what happened in words, and the fill of the first."""
    status, total = upload["status"], upload["rows_total"]
    accepted, rejected = upload["rows_accepted"], upload["rows_rejected"]
    error = client_text(upload["error"], upload["source"]) if upload["error"] else None
    if status == COMPLETED:
        if not total:
            return ["The file has no data rows: nothing was loaded."], WARNING_FILL
        if not rejected:
            return [f"All {_rows(total)} were loaded."], LOADED_FILL
        lines = [
            f"{accepted:,} of {_rows(total)} were loaded; {_rows(rejected)} {_were(rejected)} rejected and not loaded.",
            f"What to do: the rejected rows are on '{SHEET_REJECTED}', with what is wrong in each; "
            f"'{SHEET_PROBLEMS}' sums the problems up.",
        ]
        return lines, WARNING_FILL
    if status == FAILED:
        gate = judge_error_rate(total or 0, rejected or 0, spec.quality.max_error_rate) if spec else None
        if gate is not None and not gate.passed and upload["error"] == gate.reason:
            return [
                "Nothing was loaded: too many rows were rejected (the form type's quality gate).",
                f"Why: {error}",
                f"What to do: correct the rows on '{SHEET_REJECTED}' (what is wrong in each is there and on "
                f"'{SHEET_PROBLEMS}') and send the whole file again.",
            ], ERROR_FILL
        return [
            "Nothing was loaded: the upload failed.",
            f"Why: {error or 'no reason was recorded.'}",
        ], ERROR_FILL
    return [f"The upload is still being processed ({status}); nothing is final yet."], None


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def _were(count: int) -> str:
    return "was" if count == 1 else "were"


def _write_summary(
    sheet, snapshot: duckdb.DuckDBPyConnection, upload: dict[str, Any], spec: FileSpec | None, notes: list[str]
) -> None:
    total, accepted, rejected = upload["rows_total"], upload["rows_accepted"], upload["rows_rejected"]
    status = upload["status"]
    by_severity = dict(snapshot.execute("SELECT severity, count(*) FROM messages GROUP BY severity").fetchall())
    file_name = client_file_name(upload["source"])
    headline, headline_fill = _outcome(upload, spec)

    facts: list[tuple[str, Any]] = [
        ("File", file_name),
        ("Upload id", upload["upload_id"]),
        ("Company", upload["company_id"]),
        ("Form type", upload["form_type"] + (f" ({spec.title})" if spec and spec.title else "")),
        ("Filespec version", upload["filespec_version"]),
        ("Status", status),
        ("Error", client_text(upload["error"], upload["source"]) if upload["error"] else None),
    ]
    facts += [
        ("Received at (UTC)", upload["received_at"]),
        ("Started at (UTC)", upload["started_at"]),
        ("Finished at (UTC)", upload["finished_at"]),
        ("Rows total", total),
    ]
    if status == COMPLETED:
        facts.append(("Rows accepted (loaded)", accepted))
    else:
        facts.append(("Rows loaded", 0 if status == FAILED else None))
        facts.append(("Rows that passed the checks (not loaded)", accepted))
    facts += [
        ("Rows rejected", rejected),
        ("Accepted share", _share(accepted, total)),
        ("Rejected share", _share(rejected, total)),
        ("Error messages", by_severity.get("error", 0)),
        ("Warning messages", by_severity.get("warning", 0)),
        ("Report written at (UTC)", dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)),
    ]
    columns = ["field", "rows", "nulls", "distinct_values", "errors", "warnings", "min_value", "max_value"]
    field_order = {spec_field.name: index for index, spec_field in enumerate(spec.fields)} if spec else {}
    summary_rows = snapshot.execute(f"SELECT {', '.join(columns)} FROM column_summary").fetchall()
    summary_rows.sort(key=lambda r: (field_order.get(r[0], len(field_order)), r[0]))

    widths = _fit_widths([[label, value] for label, value in facts] + [columns, *summary_rows],
                         low=[16, 12] + [8] * 6, high=[42, 36, 10, 17, 10, 10, 30, 30])  # fmt: skip
    table = _Sheet(sheet, widths, freeze=None, title_rows=None)
    table.append([styled_text_cell(sheet, f"Upload report: {file_name}", font=TITLE_FONT)], height_lines=1.5)
    for index, line in enumerate(headline):
        cell = styled_text_cell(sheet, line, font=HEADLINE_FONT if index == 0 else HEADER_FONT)
        if index == 0 and headline_fill is not None:
            cell.fill = headline_fill
        table.append_across(cell, SUMMARY_COLUMNS)
    table.append([])
    for label, value in facts:
        value_cell = sheet_value(sheet, value)
        if label.endswith("share") and value is not None:
            value_cell = WriteOnlyCell(sheet, value)
            value_cell.number_format = "0.00%"
        table.append([styled_text_cell(sheet, label, font=HEADER_FONT), value_cell])

    table.append([])
    table.append([styled_text_cell(sheet, "Notes", font=HEADER_FONT)])
    legend = (
        f"On '{SHEET_REJECTED}', a red cell broke a rule and a yellow one gave a warning (hover over it for the "
        "message); an orange cell is one the header has no column for, or one the row lacks. The 'problems' "
        "column lists every message of the row."
    )
    for note in [*notes, legend]:
        table.append_across(text_cell(sheet, note), SUMMARY_COLUMNS)

    table.append([])
    table.append([styled_text_cell(sheet, "Columns", font=HEADER_FONT)])
    first = table.append([styled_text_cell(sheet, name, font=HEADER_FONT) for name in columns])
    for summary_row in summary_rows:
        table.append(list(summary_row))
    table.filter(first, len(columns))


def _share(part: int | None, total: int | None) -> float | None:
    return part / total if part is not None and total else None


def _spec_notes(upload: dict[str, Any], spec: FileSpec | None) -> list[str]:
    if spec is None:
        return ["Rejected rows are shown as the raw text of the record: the filespec was not available."]
    if upload["filespec_version"] is not None and spec.version != upload["filespec_version"]:
        return [
            f"The upload was checked with filespec version {upload['filespec_version']}; what 'Problems' says is "
            f"expected comes from version {spec.version}."
        ]
    return []


# --- Problems --------------------------------------------------------------------------------

PROBLEM_GROUPS_SQL = f"""
WITH numbered AS (
    SELECT *, row_number() OVER (
        PARTITION BY rule, field, severity ORDER BY "row_number" NULLS FIRST, line_number, value
    ) AS nth
    FROM messages
)
SELECT
    rule,
    field,
    severity,
    count(*) AS messages,
    arg_min(message, nth) AS first_message,
    list({{'row_number': "row_number", 'line_number': line_number, 'value': value}} ORDER BY nth)
        FILTER (WHERE nth <= {EXAMPLES_PER_PROBLEM}) AS examples
FROM numbered
GROUP BY rule, field, severity
ORDER BY severity = 'warning', messages DESC, rule, field NULLS FIRST
"""

PROBLEM_COLUMNS = [
    "rule",
    "field",
    "severity",
    "count",
    "what it means",
    "what is expected",
    "field description",
    "example message",
    "examples",
]


def _write_problems(sheet, snapshot: duckdb.DuckDBPyConnection, spec: FileSpec | None) -> list[str]:
    fields = {spec_field.name: spec_field for spec_field in spec.fields} if spec else {}
    rows = []
    for rule, field, severity, count, first_message, examples in snapshot.execute(PROBLEM_GROUPS_SQL).fetchall():
        field_spec = fields.get(field)
        expected = rule_expectation(rule, field_spec, field, spec) if spec else None
        row = [rule, field, severity, count, _meaning(rule, field_spec), expected]
        row += [field_spec.description if field_spec else None, first_message]
        row.append("\n".join(_example(example) for example in examples or []) or None)
        rows.append(row)
    widths = _fit_widths([PROBLEM_COLUMNS, *rows], low=[8, 8, 9, 7, 30, 20, 12, 30, 16],
                         high=[16, 24, 9, 10, 45, 35, 30, 50, 40])  # fmt: skip
    table = _Sheet(sheet, widths)
    table.header(PROBLEM_COLUMNS)
    for row in rows:
        table.append(row)
    table.filter(1, len(PROBLEM_COLUMNS))
    return []


def _example(example: dict[str, Any]) -> str:
    if example["row_number"] is None:
        where = "the file"
    else:
        where = f"row {example['row_number']} (line {example['line_number']})"
    value = example["value"]
    if value is None:  # row- and upload-level messages have no cell value
        return where
    value = _LINE_BREAK.sub(" ", value)
    if len(value) > EXAMPLE_VALUE_CHARS:  # enough to find the cell; 'Messages' has it whole
        value = value[: EXAMPLE_VALUE_CHARS - 1] + "…"
    return f"{where}: {value}" if value != "" else f"{where}: (empty)"


def _meaning(rule: str, field_spec: FieldSpec | None) -> str:
    if rule == "type" and field_spec is not None and field_spec.type in (FieldType.DATE, FieldType.DATETIME):
        what = "date" if field_spec.type == FieldType.DATE else "date and time"
        return DATE_TYPE_EXPLANATION.format(what=what, written=human_date_format(field_spec.date_format))
    return RULE_EXPLANATIONS.get(rule, UNKNOWN_RULE_EXPLANATION)


def rule_expectation(rule: str, field_spec: FieldSpec | None, field: str | None, spec: FileSpec) -> str | None:
    """What the filespec asks of the field under `rule`, in words; None when it has nothing to add."""
    if rule == "enrich" and field is not None:
        tables = [list_name(*enrich.scope_and_table) for enrich in spec.enrich if next(iter(enrich.on), None) == field]
        return f"a matching entry in {' or '.join(tables)}" if tables else None
    if field_spec is None:
        return None
    if rule == "required":
        return "a value in every row"
    if rule == "type":
        return _type_expectation(field_spec)
    if rule == "min_length":
        return f"at least {field_spec.min_length} characters"
    if rule == "max_length":
        return f"at most {field_spec.max_length} characters"
    if rule == "pattern":
        return pattern_expectation(field_spec)
    if rule == "enum" and field_spec.enum:
        shown = ", ".join(field_spec.enum[:20]) + (", …" if len(field_spec.enum) > 20 else "")
        return f"one of: {shown}"
    if rule == "minimum":
        return f"{field_spec.minimum} or more"
    if rule == "maximum":
        return f"{field_spec.maximum} or less"
    if rule == "lookup" and field_spec.lookup_parts:
        scope, table, column = field_spec.lookup_parts
        return f"a value of the {column} column of {list_name(scope, table)}"
    if rule == "unique":
        return "a value that no earlier row has"
    return None


def list_name(scope: str, table: str) -> str:
    return f"the shared {table} list" if scope == "ref" else f"your company's {table} list"


def _type_expectation(field_spec: FieldSpec) -> str | None:
    if field_spec.type == FieldType.INTEGER:
        return "a whole number, e.g. 42"
    if field_spec.type == FieldType.DECIMAL:
        return "a number with a point before any decimals and no thousands separators, e.g. 1234.50"
    if field_spec.type in (FieldType.DATE, FieldType.DATETIME):
        what = "date" if field_spec.type == FieldType.DATE else "date and time"
        return f"a {what} that exists, written as {human_date_format(field_spec.date_format)}, e.g. {date_example(field_spec)}"
    if field_spec.type == FieldType.BOOLEAN:
        true_texts, false_texts = field_spec.boolean_texts
        return f"yes/no written as one of: {', '.join(true_texts + false_texts)}"
    return None


# --- Messages --------------------------------------------------------------------------------

MESSAGE_COLUMNS = list(MESSAGE_SCHEMA)


def _write_messages(sheet, snapshot: duckdb.DuckDBPyConnection, max_rows: int) -> list[str]:
    total = snapshot.execute("SELECT count(*) FROM messages").fetchone()[0]
    shown = _rows_that_fit(total, max_rows)
    cursor = snapshot.execute(
        f"SELECT {', '.join(_quoted(c) for c in MESSAGE_COLUMNS)} FROM messages "
        f'ORDER BY "row_number" NULLS FIRST, line_number, field NULLS FIRST, rule LIMIT {shown}'
    )
    first_rows = cursor.fetchmany(WIDTH_SAMPLE_ROWS)
    widths = _fit_widths([MESSAGE_COLUMNS, *first_rows], low=[12, 12, 8, 8, 9, 8, 40], high=[12, 12, 24, 16, 9, 30, 80])
    table = _Sheet(sheet, widths)
    table.header(MESSAGE_COLUMNS)
    for row in first_rows:
        table.append(list(row))
    for row in _batches(cursor):
        table.append(list(row))
    table.filter(1, len(MESSAGE_COLUMNS))
    return _truncation_note(table, SHEET_MESSAGES, "messages", shown, total)


# --- Rejected rows ---------------------------------------------------------------------------

REJECTED_ROWS_SQL = """
WITH row_messages AS (
    SELECT "row_number",
           list({'field': field, 'rule': rule, 'severity': severity, 'message': message}
                ORDER BY field NULLS FIRST, rule) AS messages
    FROM messages
    WHERE "row_number" IS NOT NULL
    GROUP BY "row_number"
)
SELECT r."row_number", r.line_number, r.raw, m.messages
FROM rejects AS r LEFT JOIN row_messages AS m USING ("row_number")
ORDER BY r."row_number"
LIMIT ?
"""


class _CellLayout:
    """How a rejected record's cells map to column labels and to fields."""

    def __init__(self, spec: FileSpec | None, header: Sequence[str] | None):
        self.spec = spec
        if spec is None:
            self.labels: list[str] = ["record"]
            self.field_positions: dict[str, int] = {}
        elif header is not None and spec.format.kind == FormatKind.DELIMITED:
            self.labels = [str(text) for text in header]
            matched = {text.strip().lower(): index for index, text in reversed(list(enumerate(self.labels)))}
            self.field_positions = {f.name: matched[f.header_text] for f in spec.fields if f.header_text in matched}
        else:
            self.labels = [f.name for f in spec.fields]
            self.field_positions = {f.name: index for index, f in enumerate(spec.fields)}

    @property
    def counts_cells(self) -> bool:
        """Whether a record's cells can be more or fewer than the labels (delimited records)."""
        return self.spec is not None and self.spec.format.kind == FormatKind.DELIMITED

    def cells(self, raw: str | None) -> list[str]:
        if raw is None:
            return []
        if self.spec is None:
            return [raw]
        return split_raw_record(self.spec.format, self.spec.fields, raw)

    def positions_for(self, cells: list[str]) -> dict[str, int]:
        """Field positions, when this record's cells are laid out as expected (else none)."""
        return self.field_positions if len(cells) == len(self.labels) else {}


def _write_rejected_rows(
    sheet,
    snapshot: duckdb.DuckDBPyConnection,
    spec: FileSpec | None,
    header: Sequence[str] | None,
    max_rows: int,
    max_comments: int,
) -> list[str]:
    layout = _CellLayout(spec, header)
    expected_cells = len(layout.labels)
    fixed_columns = ["row_number", "line_number", "problems"]
    cell_columns_allowed = EXCEL_MAX_COLUMNS - len(fixed_columns)
    cell_columns = min(max(expected_cells, _most_cells(snapshot, spec)), cell_columns_allowed)
    labels = [layout.labels[i] if i < expected_cells else f"extra cell {i + 1}" for i in range(cell_columns)]
    columns = fixed_columns + labels

    total = snapshot.execute("SELECT count(*) FROM rejects").fetchone()[0]
    shown = _rows_that_fit(total, max_rows)
    cursor = snapshot.execute(REJECTED_ROWS_SQL, [shown])
    first_rows = [_rejected_record(layout, row, cell_columns, spec) for row in cursor.fetchmany(WIDTH_SAMPLE_ROWS)]
    sample = [[row_number, line_number, problems, *cells] for row_number, line_number, problems, cells, _ in first_rows]
    widths = _fit_widths([columns, *sample], low=[12, 12, 40] + [6] * cell_columns, high=[12, 12, 60] + [30] * cell_columns)
    table = _Sheet(sheet, widths, freeze="C2", line_caps={index: MAX_CELL_LINES for index in range(3, len(columns))})
    table.header(columns)

    comments = _CommentBudget(max_comments)
    for record in first_rows:
        table.append(_rejected_row_cells(table, layout, record, expected_cells, comments))
    for row in _batches(cursor):
        record = _rejected_record(layout, row, cell_columns, spec)
        table.append(_rejected_row_cells(table, layout, record, expected_cells, comments))
    table.filter(1, len(columns))

    notes = _truncation_note(table, SHEET_REJECTED, "rejected rows", shown, total)
    if comments.left_out:
        notes.append(
            f"'{SHEET_REJECTED}' has comments on the first {comments.written:,} of its "
            f"{comments.written + comments.left_out:,} highlighted cells; the 'problems' column lists every message."
        )
    return notes


def _rejected_record(layout: _CellLayout, row: tuple, cell_columns: int, spec: FileSpec | None) -> tuple:
    """(row_number, line_number, problems text, cells, messages) of one rejected record."""
    row_number, line_number, raw, messages = row
    messages = messages or []
    cells = layout.cells(raw)
    if len(cells) > cell_columns:  # beyond Excel's last column: keep the rest in the last cell
        delimiter = spec.format.delimiter if spec else ","
        cells = cells[: cell_columns - 1] + [delimiter.join(cells[cell_columns - 1 :])]
    positions = layout.positions_for(cells)
    # row-level problems first, then the cells' in the order the cells stand
    messages.sort(key=lambda m: (m["field"] is not None, positions.get(m["field"], len(cells)), m["field"] or ""))
    problems = "\n".join(_problem_line(message) for message in messages)
    return row_number, line_number, problems, cells, messages


class _CommentBudget:
    def __init__(self, most: int):
        self.most, self.written, self.left_out = most, 0, 0

    def attach(self, cell: Cell, text: str) -> None:
        if self.written < self.most:
            cell.comment = _comment(text)
            self.written += 1
        else:
            self.left_out += 1


def _rejected_row_cells(
    table: "_Sheet", layout: _CellLayout, record: tuple, expected: int, comments: _CommentBudget
) -> list:
    sheet, styles = table.sheet, table.styles
    row_number, line_number, problems, cells, messages = record
    positions = layout.positions_for(cells)
    by_position: dict[int, list[dict[str, Any]]] = {}
    for message in messages:
        if message["field"] in positions:
            by_position.setdefault(positions[message["field"]], []).append(message)
    row: list[Any] = [row_number, line_number, text_cell(sheet, problems)]
    for position, text in enumerate(cells):
        cell = text_cell(sheet, text)
        cell_messages = by_position.get(position)
        if cell_messages:
            if any(message["severity"] == "error" for message in cell_messages):
                styles.apply(cell, fill=ERROR_FILL, font=ERROR_FONT)
            else:
                styles.apply(cell, fill=WARNING_FILL, font=WARNING_FONT)
            comments.attach(cell, "\n".join(message["message"] for message in cell_messages))
        row.append(cell)
    miscounted = layout.counts_cells and len(cells) != expected and any(m["rule"] == "field_count" for m in messages)
    if miscounted and len(cells) > expected:
        for position in range(expected, len(cells)):
            _mark_extra(row[3 + position], styles, comments,
                        f"Extra cell: the header has {expected} columns, this row has {len(cells)} cells, and this is "
                        f"cell {position + 1}. Often a delimiter inside a value that is not in quotes.")  # fmt: skip
    elif miscounted and cells:
        for _ in range(len(cells), expected):
            cell = text_cell(sheet, "")
            _mark_extra(cell, styles, comments,
                        f"Missing cell: this row has {len(cells)} cells where the header has {expected} columns. "
                        "Often a value holding a line break or a quote that is not closed.")  # fmt: skip
            row.append(cell)
    return row


def _mark_extra(cell: Cell, styles: "_StyleCache", comments: _CommentBudget, why: str) -> None:
    styles.apply(cell, fill=EXTRA_CELL_FILL, font=EXTRA_CELL_FONT)
    comments.attach(cell, why)


def _problem_line(message: dict[str, Any]) -> str:
    """The message, led by its field unless the sentence already names it."""
    field, text = message["field"], message["message"]
    return text if field is None or field in text else f"{field}: {text}"


def _most_cells(snapshot: duckdb.DuckDBPyConnection, spec: FileSpec | None) -> int:
    """An upper bound on the cells of any rejected record (delimiters counted, quotes ignored)."""
    if spec is None or spec.format.kind == FormatKind.FIXED_WIDTH:
        return 0
    delimiter = spec.format.delimiter
    most = snapshot.execute(
        "SELECT max(length(raw) - length(replace(raw, ?, ''))) + 1 FROM rejects", [delimiter]
    ).fetchone()[0]
    return int(most or 0)


def _comment(text: str) -> Comment:
    text = _clean(text)
    lines = text.count("\n") + 1 + len(text) // 60
    return Comment(text, COMMENT_AUTHOR, height=min(400, 20 + 15 * lines), width=320)


# --- Cells and sheets ------------------------------------------------------------------------


def _clean(text: str) -> str:
    """`text` as a cell can hold it: no characters XML forbids, at most Excel's cell length."""
    text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)
    if len(text) > EXCEL_MAX_CELL_CHARS:
        text = text[: EXCEL_MAX_CELL_CHARS - 1] + "…"
    return text


def text_cell(sheet, text: str) -> Cell:
    """A cell that shows `text` as text, whatever it looks like (see the module docstring)."""
    text = _clean(text)
    cell = WriteOnlyCell(sheet, text)
    cell.data_type = "s"  # openpyxl made "=..." a formula and "#N/A" an error; text is text
    if text.startswith(FORMULA_TRIGGERS):
        cell.quotePrefix = True  # still text after a user edits the cell
    return cell


def sheet_value(sheet, value: Any) -> Any:
    """`value` ready for `sheet.append`: text through `text_cell`, numbers and times as they are."""
    if isinstance(value, str):
        return text_cell(sheet, value)
    return value


def styled_text_cell(sheet, text: str, font: Font) -> Cell:
    cell = text_cell(sheet, text)
    cell.font = font
    return cell


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _display_lengths(value: Any) -> list[int]:
    """The characters of each line `value` shows in a cell."""
    if value is None:
        return [0]
    if isinstance(value, Cell):
        value = value.value
    if isinstance(value, dt.datetime):
        return [19]
    if isinstance(value, float):
        return [len(f"{value:.4g}")]
    text = str(value)
    if "\n" not in text and "\r" not in text:
        return [len(text)]
    return [len(line) for line in _LINE_BREAK.split(text)]


def _fit_widths(rows: list[Sequence[Any]], low: Sequence[int], high: Sequence[int]) -> list[float]:
    """Column widths that fit the longest line of each column's values (+2), within [low, high]."""
    columns = max(len(low), max((len(row) for row in rows), default=0))
    longest = [0] * columns
    for row in rows:
        for index, value in enumerate(row):
            longest[index] = max(longest[index], *_display_lengths(value))
    widths = []
    for index, length in enumerate(longest):
        floor = low[index] if index < len(low) else low[-1]
        ceiling = high[index] if index < len(high) else high[-1]
        widths.append(float(min(max(length + 2, floor), ceiling)))
    return widths


def _line_room(width: float) -> float:
    """How much text (in widths of a digit) one line of a column `width` wide holds."""
    return max(1.0, width - 1)  # a character's width of padding


# How wide characters are, in digits, in DejaVu Sans: the font LibreOffice falls back to without
# Calibri, wider than Calibri, so a row sized by these fits in Excel too. Text is sorted into
# classes by `str.translate` (one pass in C per cell, not a Python loop per character).
_NARROW, _WIDE, _CAPITAL = "\ue000", "\ue001", "\ue002"  # private-use characters: no text holds them
_CHARACTER_CLASSES = str.maketrans(
    {
        **{char: _NARROW for char in "iljtfrI.,:;'|!()[]{}- \"/"},
        **{char: _WIDE for char in "mwMW@%"},
        **{char: _CAPITAL for char in "ABCDEFGHJKLNOPQRSTUVXYZ&"},
    }
)
_CLASS_EXTRA = {_NARROW: -0.45, _WIDE: 0.45, _CAPITAL: 0.15}


def _text_width(text: str) -> float:
    classes = text.translate(_CHARACTER_CLASSES)
    width = float(len(text)) + sum(extra * classes.count(name) for name, extra in _CLASS_EXTRA.items())
    if not text.isascii():  # East Asian characters take about two digits
        width += sum(1 for char in text if ord(char) >= 0x2E80)
    return width


def _wrapped_lines(text: str, room: float) -> int:
    """Lines `text` takes wrapped `room` digits to a line: at spaces, and within words too long
    for a line (as LibreOffice and Excel break them). A word is taken to be as wide, per
    character, as its paragraph's words on average."""
    lines = 0
    space = 1 + _CLASS_EXTRA[_NARROW]
    for paragraph in _LINE_BREAK.split(text):
        lines += 1
        words = paragraph.split(" ")
        letters = len(paragraph) - (len(words) - 1)
        if not letters:
            continue
        per_letter = (_text_width(paragraph) - space * (len(words) - 1)) / letters
        used = 0.0
        for word in words:
            width = len(word) * per_letter
            if used and used + space + width <= room:
                used += space + width
                continue
            if used:  # the word goes to the next line
                lines += 1
            broken = max(0, math.ceil(width / room) - 1)  # a word wider than a line is broken
            lines += broken
            used = max(width - broken * room, 1e-9)
    return lines


def _lines(text: str, room: float) -> int:
    """Lines that `text` takes in a column holding `room` digits to a line."""
    if "\n" not in text and "\r" not in text:
        if len(text) * 1.45 <= room and text.isascii():
            return 1  # fits even if every character were of the widest
        if _text_width(text) <= room:
            return 1
    return _wrapped_lines(text, room)


class _StyleCache:
    """Styles cells by copying the style of the first cell styled alike: assigning a style object
    hashes it each time, which for 100,000 rows costs more than writing the cells."""

    def __init__(self):
        self._styles: dict[tuple, Any] = {}

    def apply(self, cell: Cell, **styles: Any) -> None:
        """Set `styles` (alignment=..., fill=..., font=...: module constants) on `cell`."""
        key = (cell._style and tuple(cell._style), *[(name, id(value)) for name, value in styles.items()])
        style = self._styles.get(key)
        if style is None:
            for name, value in styles.items():
                setattr(cell, name, value)
            self._styles[key] = copy.copy(cell._style)
        else:
            cell._style = copy.copy(style)


class _Sheet:
    """A write-only sheet laid out for reading and printing (see the module docstring).

    Column widths, frozen panes and print properties go before the first row (write-only mode
    writes them first); each appended row gets the height of its wrapped text.
    """

    def __init__(
        self,
        sheet,
        widths: list[float],
        *,
        freeze: str | None = "A2",
        title_rows: str | None = "1:1",
        line_caps: dict[int, int] | None = None,
    ):
        self.sheet = sheet
        self.widths = widths
        self.line_caps = line_caps or {}
        self.rows = 0
        self.styles = _StyleCache()  # style ids belong to the workbook; this sheet's cells use its own
        self.line_room = [_line_room(width) for width in widths] or [_line_room(10)]
        for index, width in enumerate(widths[:EXCEL_MAX_COLUMNS], start=1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        if freeze:
            sheet.freeze_panes = freeze
        sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
        sheet.page_setup.orientation = "landscape"
        sheet.page_setup.fitToWidth = 1
        sheet.page_setup.fitToHeight = 0  # as many pages down as the rows need
        sheet.page_margins = PRINT_MARGINS
        if title_rows:
            sheet.print_title_rows = title_rows
        sheet.oddFooter.center.text = "&A, page &P of &N"

    def header(self, columns: list[str]) -> int:
        return self.append([styled_text_cell(self.sheet, name, font=HEADER_FONT) for name in columns])

    def append(self, values: list[Any], height_lines: float | None = None) -> int:
        """Append a row of values (text becomes text cells); returns its row number."""
        cells: list[Any] = []
        wrapped: set[int] = set()
        lines = 1
        room, last = self.line_room, len(self.line_room) - 1
        for index, value in enumerate(values):
            if isinstance(value, str):
                text, cell = value, text_cell(self.sheet, value)
            elif isinstance(value, Cell):
                text, cell = value.value if isinstance(value.value, str) else None, value
            else:
                cells.append(value)
                continue
            cells.append(cell)
            if not text:
                continue
            needed = _lines(text, room[index] if index <= last else room[last])
            if needed > 1:
                self.styles.apply(cell, alignment=WRAPPED)
                wrapped.add(index)
                lines = max(lines, min(needed, self.line_caps.get(index, MAX_LINES)))
        if lines > 1:  # tall row: every cell reads from the top
            for index, cell in enumerate(cells):
                if cell is None or index in wrapped:
                    continue
                if not isinstance(cell, Cell):
                    cell = cells[index] = WriteOnlyCell(self.sheet, cell)
                self.styles.apply(cell, alignment=TOP)
        return self._append(cells, height_lines if height_lines is not None else lines)

    def append_across(self, cell: Cell, columns: int) -> int:
        """Append one text cell spanning `columns` columns (merged), wrapped to their width."""
        width = sum(self.widths[:columns]) + columns - 1
        lines = min(_lines(cell.value, _line_room(width)), MAX_LINES)
        cell.alignment = WRAPPED
        row = self._append([cell], lines)
        if columns > 1:
            self.sheet.merged_cells.add(f"A{row}:{get_column_letter(columns)}{row}")
        return row

    def _append(self, cells: list[Any], lines: float) -> int:
        self.rows += 1
        if lines != 1:
            self.sheet.row_dimensions[self.rows].height = min(MAX_ROW_HEIGHT_POINTS, round(lines * LINE_HEIGHT_POINTS))
        self.sheet.append(cells)
        if lines != 1:
            del self.sheet.row_dimensions[self.rows]  # written with its row; not kept for 100,000 rows
        return self.rows

    def filter(self, header_row: int, columns: int) -> None:
        """An autofilter over the table whose header is `header_row`, down to the last row so far."""
        last = max(self.rows, header_row)
        self.sheet.auto_filter.ref = f"A{header_row}:{get_column_letter(columns)}{last}"


def _rows_that_fit(total: int, max_rows: int) -> int:
    """Data rows a sheet shows: all of them, or as many as fit beside its header and a note."""
    return total if total <= max_rows - 1 else max(0, max_rows - 2)


def _truncation_note(table: _Sheet, sheet_name: str, what: str, shown: int, total: int) -> list[str]:
    if shown == total:
        return []
    note = f"'{sheet_name}' shows the first {shown:,} of {total:,} {what} (Excel's row limit); {total - shown:,} are not shown."
    table.sheet.append([styled_text_cell(table.sheet, note, font=HEADER_FONT)])
    table.rows += 1
    return [note]


def _batches(cursor: duckdb.DuckDBPyConnection) -> Iterator[tuple]:
    while rows := cursor.fetchmany(FETCH_BATCH_ROWS):
        yield from rows


def _quoted(column: str) -> str:
    return f'"{column}"'
