"""The client report: one upload's outcome as an .xlsx workbook a client can act on.

Sheets:

- Summary: the upload (status, counts, accepted and rejected shares, error) and the column
  summary, with notes on anything the report had to leave out.
- Problems: the messages grouped by rule, field and severity: how many, what the rule means in
  plain English, what the filespec expects, and a few example rows.
- Messages: every message, one per row.
- Rejected rows: every rejected record split into its cells; a cell that broke a rule is filled
  red (yellow for a warning) and carries the messages as a comment; the `problems` column lists
  all the row's messages, so nothing depends on comments (lost in a CSV export, say).

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

import datetime as dt
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from ingest_pipeline.core.errors import IngestError
from ingest_pipeline.core.filespec import FieldSpec, FieldType, FileSpec, FormatKind
from ingest_pipeline.core.judge import MESSAGE_SCHEMA
from ingest_pipeline.core.records import split_raw_record
from ingest_pipeline.core.sql import open_duckdb, sql_read_parquet
from ingest_pipeline.core.warehouse import UPLOAD_COLUMNS, Warehouse

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
EXCEL_MAX_CELL_CHARS = 32_767
FETCH_BATCH_ROWS = 10_000
EXAMPLES_PER_PROBLEM = 5
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
    "field_count": "The row has a different number of cells than the header (often a stray delimiter or an unclosed quote).",
    "encoding": "The row holds characters that cannot be read in the file's declared encoding.",
    "missing_column": "A column the form needs is not in the header, so the file could not be processed.",
    "duplicate_column": "Two header cells name the same column, so the file could not be processed.",
    "extra_column": "The header has a column the form does not use; it was ignored.",
    "empty_file": "The file has no data rows.",
}
UNKNOWN_RULE_EXPLANATION = "See the messages for details."

HEADER_FONT = Font(bold=True)
TITLE_FONT = Font(bold=True, size=14)
ERROR_FILL = PatternFill(fill_type="solid", start_color="FFC7CE", end_color="FFC7CE")
ERROR_FONT = Font(color="9C0006")
WARNING_FILL = PatternFill(fill_type="solid", start_color="FFEB9C", end_color="FFEB9C")
WARNING_FONT = Font(color="9C5700")
WRAPPED = Alignment(wrap_text=True, vertical="top")
COMMENT_AUTHOR = "ingest_pipeline"


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


def _write_summary(
    sheet, snapshot: duckdb.DuckDBPyConnection, upload: dict[str, Any], spec: FileSpec | None, notes: list[str]
) -> None:
    sheet.column_dimensions["A"].width = 22
    for letter in "BCDEFGHI":
        sheet.column_dimensions[letter].width = 16
    sheet.column_dimensions["B"].width = 40

    total, accepted, rejected = upload["rows_total"], upload["rows_accepted"], upload["rows_rejected"]
    by_severity = dict(snapshot.execute("SELECT severity, count(*) FROM messages GROUP BY severity").fetchall())
    sheet.append([_styled(sheet, "Upload report", font=TITLE_FONT)])
    facts: list[tuple[str, Any]] = [
        ("Upload id", upload["upload_id"]),
        ("Company", upload["company_id"]),
        ("Form type", upload["form_type"] + (f" ({spec.title})" if spec and spec.title else "")),
        ("Filespec version", upload["filespec_version"]),
        ("Source", upload["source"]),
        ("Status", upload["status"]),
        ("Error", upload["error"]),
        ("Received at", upload["received_at"]),
        ("Started at", upload["started_at"]),
        ("Finished at", upload["finished_at"]),
        ("Rows total", total),
        ("Rows accepted", accepted),
        ("Rows rejected", rejected),
        ("Accepted share", _share(accepted, total)),
        ("Rejected share", _share(rejected, total)),
        ("Error messages", by_severity.get("error", 0)),
        ("Warning messages", by_severity.get("warning", 0)),
        ("Report written at (UTC)", dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)),
    ]
    for label, value in facts:
        value_cell = _cell(sheet, value)
        if label.endswith("share") and value is not None:
            value_cell = WriteOnlyCell(sheet, value)
            value_cell.number_format = "0.00%"
        sheet.append([_styled(sheet, label, font=HEADER_FONT), value_cell])

    sheet.append([])
    sheet.append([_styled(sheet, "Notes", font=HEADER_FONT)])
    legend = (
        "On 'Rejected rows', a red cell broke a rule and a yellow one gave a warning; "
        "hover over it for the message. The 'problems' column lists every message of the row."
    )
    for note in [*notes, legend]:
        sheet.append([_text(sheet, note)])

    sheet.append([])
    sheet.append([_styled(sheet, "Columns", font=HEADER_FONT)])
    columns = ["field", "rows", "nulls", "distinct_values", "errors", "warnings", "min_value", "max_value"]
    sheet.append([_styled(sheet, name, font=HEADER_FONT) for name in columns])
    field_order = {spec_field.name: index for index, spec_field in enumerate(spec.fields)} if spec else {}
    summary_rows = snapshot.execute(f"SELECT {', '.join(columns)} FROM column_summary").fetchall()
    for summary_row in sorted(summary_rows, key=lambda r: (field_order.get(r[0], len(field_order)), r[0])):
        sheet.append([_cell(sheet, value) for value in summary_row])


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


def _write_problems(sheet, snapshot: duckdb.DuckDBPyConnection, spec: FileSpec | None) -> list[str]:
    columns = [
        "rule",
        "field",
        "severity",
        "count",
        "what it means",
        "what is expected",
        "field description",
        "example message",
    ]
    columns += [f"example {n}" for n in range(1, EXAMPLES_PER_PROBLEM + 1)]
    widths = [16, 18, 10, 10, 50, 40, 30, 50] + [30] * EXAMPLES_PER_PROBLEM
    _start_table(sheet, columns, widths)
    fields = {spec_field.name: spec_field for spec_field in spec.fields} if spec else {}
    for rule, field, severity, count, first_message, examples in snapshot.execute(PROBLEM_GROUPS_SQL).fetchall():
        field_spec = fields.get(field)
        expected = _expectation(rule, field_spec, field, spec) if spec else None
        row = [rule, field, severity, count, RULE_EXPLANATIONS.get(rule, UNKNOWN_RULE_EXPLANATION), expected]
        row += [field_spec.description if field_spec else None, first_message]
        row += [_example(example) for example in examples or []]
        sheet.append([_cell(sheet, value) for value in row])
    return []


def _example(example: dict[str, Any]) -> str:
    if example["row_number"] is None:
        where = "the file"
    else:
        where = f"row {example['row_number']} (line {example['line_number']})"
    value = example["value"]
    if value is None:  # row- and upload-level messages have no cell value
        return where
    return f"{where}: {value}" if value != "" else f"{where}: (empty)"


def _expectation(rule: str, field_spec: FieldSpec | None, field: str | None, spec: FileSpec) -> str | None:
    """What the filespec asks of the field under `rule`, in words; None when it has nothing to add."""
    if rule == "enrich" and field is not None:
        tables = [enrich.lookup for enrich in spec.enrich if next(iter(enrich.on), None) == field]
        return f"a matching row in {', '.join(tables)}" if tables else None
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
        return f"text matching the regular expression {field_spec.pattern}"
    if rule == "enum" and field_spec.enum:
        shown = ", ".join(field_spec.enum[:20]) + (", …" if len(field_spec.enum) > 20 else "")
        return f"one of: {shown}"
    if rule == "minimum":
        return f"{field_spec.minimum} or more"
    if rule == "maximum":
        return f"{field_spec.maximum} or less"
    if rule == "lookup":
        return f"a value of {field_spec.lookup}"
    if rule == "unique":
        return "a value that no earlier row has"
    return None


def _type_expectation(field_spec: FieldSpec) -> str | None:
    if field_spec.type == FieldType.INTEGER:
        return "a whole number, e.g. 42"
    if field_spec.type == FieldType.DECIMAL:
        return "a number with a point before any decimals and no thousands separators, e.g. 1234.50"
    if field_spec.type in (FieldType.DATE, FieldType.DATETIME):
        sample = dt.datetime(2024, 1, 31, 13, 45, 0).strftime(field_spec.date_format)
        return f"a {field_spec.type.value} written as {field_spec.date_format}, e.g. {sample}"
    if field_spec.type == FieldType.BOOLEAN:
        true_texts, false_texts = field_spec.boolean_texts
        return f"yes/no written as one of: {', '.join(true_texts + false_texts)}"
    return None


# --- Messages --------------------------------------------------------------------------------

MESSAGE_COLUMNS = list(MESSAGE_SCHEMA)


def _write_messages(sheet, snapshot: duckdb.DuckDBPyConnection, max_rows: int) -> list[str]:
    _start_table(sheet, MESSAGE_COLUMNS, [12, 12, 18, 16, 10, 30, 80])
    total = snapshot.execute("SELECT count(*) FROM messages").fetchone()[0]
    shown = _rows_that_fit(total, max_rows)
    cursor = snapshot.execute(
        f"SELECT {', '.join(_quoted(c) for c in MESSAGE_COLUMNS)} FROM messages "
        f'ORDER BY "row_number" NULLS FIRST, line_number, field NULLS FIRST, rule LIMIT {shown}'
    )
    for row in _batches(cursor):
        sheet.append([_cell(sheet, value) for value in row])
    return _truncation_note(sheet, SHEET_MESSAGES, "messages", shown, total)


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
    fixed_columns = ["row_number", "line_number", "problems"]
    cell_columns_allowed = EXCEL_MAX_COLUMNS - len(fixed_columns)
    cell_columns = min(max(len(layout.labels), _most_cells(snapshot, spec)), cell_columns_allowed)
    labels = [layout.labels[i] if i < len(layout.labels) else f"cell {i + 1}" for i in range(cell_columns)]
    _start_table(sheet, fixed_columns + labels, [12, 12, 60] + [18] * cell_columns)

    total = snapshot.execute("SELECT count(*) FROM rejects").fetchone()[0]
    shown = _rows_that_fit(total, max_rows)
    comments_written = comments_left_out = 0
    for row_number, line_number, raw, messages in _batches(snapshot.execute(REJECTED_ROWS_SQL, [shown])):
        messages = messages or []
        cells = layout.cells(raw)
        if len(cells) > cell_columns:  # beyond Excel's last column: keep the rest in the last cell
            delimiter = spec.format.delimiter if spec else ","
            cells = cells[: cell_columns - 1] + [delimiter.join(cells[cell_columns - 1 :])]
        positions = layout.positions_for(cells)
        # row-level problems first, then the cells' in the order the cells stand
        messages.sort(key=lambda m: (m["field"] is not None, positions.get(m["field"], len(cells)), m["field"] or ""))
        by_position: dict[int, list[dict[str, Any]]] = {}
        for message in messages:
            if message["field"] in positions:
                by_position.setdefault(positions[message["field"]], []).append(message)
        problems = "\n".join(_problem_line(message) for message in messages)
        problems_cell = _text(sheet, problems)
        problems_cell.alignment = WRAPPED
        row = [row_number, line_number, problems_cell]
        for position, text in enumerate(cells):
            cell = _text(sheet, text)
            cell_messages = by_position.get(position)
            if cell_messages:
                is_error = any(message["severity"] == "error" for message in cell_messages)
                cell.fill = ERROR_FILL if is_error else WARNING_FILL
                cell.font = ERROR_FONT if is_error else WARNING_FONT
                if comments_written < max_comments:
                    cell.comment = _comment("\n".join(message["message"] for message in cell_messages))
                    comments_written += 1
                else:
                    comments_left_out += 1
            row.append(cell)
        sheet.append(row)

    notes = _truncation_note(sheet, SHEET_REJECTED, "rejected rows", shown, total)
    if comments_left_out:
        notes.append(
            f"'{SHEET_REJECTED}' has comments on the first {comments_written:,} of its "
            f"{comments_written + comments_left_out:,} highlighted cells; the 'problems' column lists every message."
        )
    return notes


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


def _text(sheet, text: str) -> WriteOnlyCell:
    """A cell that shows `text` as text, whatever it looks like (see the module docstring)."""
    text = _clean(text)
    cell = WriteOnlyCell(sheet, text)
    cell.data_type = "s"  # openpyxl made "=..." a formula and "#N/A" an error; text is text
    if text.startswith(FORMULA_TRIGGERS):
        cell.quotePrefix = True  # still text after a user edits the cell
    return cell


def _cell(sheet, value: Any) -> Any:
    """`value` ready for `sheet.append`: text through `_text`, numbers and times as they are."""
    if isinstance(value, str):
        return _text(sheet, value)
    return value


def _styled(sheet, text: str, font: Font) -> WriteOnlyCell:
    cell = _text(sheet, text)
    cell.font = font
    return cell


def _start_table(sheet, columns: list[str], widths: list[int]) -> None:
    """Column widths, a bold header row kept in view while scrolling (write-only: before any row)."""
    for index, width in enumerate(widths[:EXCEL_MAX_COLUMNS], start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    sheet.append([_styled(sheet, name, font=HEADER_FONT) for name in columns])


def _rows_that_fit(total: int, max_rows: int) -> int:
    """Data rows a sheet shows: all of them, or as many as fit beside its header and a note."""
    return total if total <= max_rows - 1 else max(0, max_rows - 2)


def _truncation_note(sheet, sheet_name: str, what: str, shown: int, total: int) -> list[str]:
    if shown == total:
        return []
    note = f"'{sheet_name}' shows the first {shown:,} of {total:,} {what} (Excel's row limit); {total - shown:,} are not shown."
    sheet.append([_styled(sheet, note, font=HEADER_FONT)])
    return [note]


def _batches(cursor: duckdb.DuckDBPyConnection) -> Iterator[tuple]:
    while rows := cursor.fetchmany(FETCH_BATCH_ROWS):
        yield from rows


def _quoted(column: str) -> str:
    return f'"{column}"'
