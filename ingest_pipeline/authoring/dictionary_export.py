"""`export-spec`: a form type's data dictionary, what a client reads before they send a file.

Every field with its position, type, format and rules in plain English, an example of a valid
value, the allowed values and the lookup lists (read from the home's reference data), as an
.xlsx workbook (written like the client report: openpyxl, text cells kept as text so a value such
as `=1+1` is never a formula) or as one self-contained HTML page with every text escaped.

The wording is the client report's (core/report.py's expectations and core/judge.py's examples),
so a dictionary and a report of the same form type say the same thing the same way.
"""

import datetime as dt
import html
import os
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from ingest_pipeline.core.errors import ReferenceDataError
from ingest_pipeline.core.filespec import FieldSpec, FieldType, FileSpec, FormatKind
from ingest_pipeline.core.judge import date_example, human_date_format, pattern_example
from ingest_pipeline.core.reference import find_reference_table, read_reference_csv
from ingest_pipeline.core.report import (
    HEADER_FONT,
    TITLE_FONT,
    WRAPPED,
    list_name,
    rule_expectation,
    styled_text_cell,
    text_cell,
)

LIST_VALUES_SHOWN = 500  # values of one lookup list written out; past this the count is said
RULE_ORDER = (
    "required",
    "type",
    "min_length",
    "max_length",
    "pattern",
    "enum",
    "minimum",
    "maximum",
    "lookup",
    "unique",
)
TYPE_WORDS = {
    FieldType.STRING: "text",
    FieldType.INTEGER: "whole number",
    FieldType.DECIMAL: "decimal number",
    FieldType.DATE: "date",
    FieldType.DATETIME: "date and time",
    FieldType.BOOLEAN: "yes/no",
}
COLUMNS = ("#", "Field", "Position", "Type", "Format", "Required", "Rules", "Example of a valid value",
           "Allowed values", "Description")  # fmt: skip


@dataclass
class DictionaryField:
    number: int
    name: str
    position: str
    type: str
    format: str
    required: str
    rules: list[str]
    example: str
    allowed: str
    description: str

    def cells(self) -> list[str]:
        return [str(self.number), self.name, self.position, self.type, self.format, self.required,
                "\n".join(self.rules), self.example, self.allowed, self.description]  # fmt: skip


@dataclass
class LookupList:
    title: str  # "the shared us_states list"
    column: str
    values: list[str] | None  # None: not available (a company list without --company)
    note: str = ""


@dataclass
class Dictionary:
    spec: FileSpec
    layout: list[str]  # sentences on how the file is laid out
    fields: list[DictionaryField]
    lists: list[LookupList] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the operator (a list that could not be read)

    @property
    def title(self) -> str:
        return f"Data dictionary: {self.spec.title or self.spec.form_type} (form type {self.spec.form_type}, version {self.spec.version})"


def layout_sentences(spec: FileSpec) -> list[str]:
    fmt = spec.format
    lines = [f"Encoding: {fmt.encoding}."]
    if fmt.kind == FormatKind.FIXED_WIDTH:
        lines.insert(0, "Fixed-width text: one record per line, each field in the character positions given below.")
    else:
        delimiter = {"\t": "tab", ",": "comma (,)", ";": "semicolon (;)", "|": "pipe (|)"}.get(
            fmt.delimiter, repr(fmt.delimiter)
        )
        lines.insert(0, f"Delimited text, cells separated by {delimiter}; a cell holding the separator, a line break or "
                        f"a {fmt.quote} is enclosed in {fmt.quote} (a {fmt.quote} inside doubled).")  # fmt: skip
        if fmt.header:
            lines.append("The first line is a header naming the columns (in any order, any case); a column the form "
                         "does not use is ignored.")  # fmt: skip
        else:
            lines.append("There is no header line: the columns come in the order below.")
    if fmt.skip_rows:
        lines.append(f"The first {fmt.skip_rows} line(s) are skipped (a banner).")
    lines.append("Surrounding spaces are ignored unless a field says otherwise; an empty cell is a missing value.")
    if spec.quality.max_error_rate is not None:
        lines.append(
            f"A file with more than {spec.quality.max_error_rate:.0%} of its rows rejected is refused as a whole."
        )
    return lines


def _position(spec: FileSpec, index: int, f: FieldSpec) -> str:
    if spec.format.kind == FormatKind.FIXED_WIDTH:
        return f"{f.start}-{f.start + f.width - 1} ({f.width} characters)"
    if spec.format.header:
        return f"column headed {f.source or f.name}"
    return f"column {index + 1}"


def _format(f: FieldSpec) -> str:
    if f.type in (FieldType.DATE, FieldType.DATETIME):
        return f"{human_date_format(f.date_format)} ({f.date_format})"
    if f.type == FieldType.BOOLEAN:
        true_texts, false_texts = f.boolean_texts
        return f"yes: {', '.join(true_texts)}; no: {', '.join(false_texts)}"
    return ""


def _rules(spec: FileSpec, f: FieldSpec) -> list[str]:
    rules = []
    for rule in RULE_ORDER:
        value = getattr(f, rule)
        if rule == "type":
            set_ = f.type != FieldType.STRING
        else:
            set_ = value not in (None, False)
        if not set_:
            continue
        if rule == "enum":
            rules.append("One of the allowed values (see that column)")
            continue
        text = rule_expectation(rule, f, f.name, spec)
        if text:
            rules.append(text[0].upper() + text[1:])
    if not f.trim:
        rules.append("Surrounding spaces are part of the value")
    if f.severity.value == "warning":
        rules = [f"{r} (a warning only: the row is still accepted)" for r in rules]
    for enrich in spec.enrich:
        if next(iter(enrich.on), None) == f.name:
            rules.append(
                f"Matched with {list_name(*enrich.scope_and_table)}"
                + (" (a match is required)" if enrich.required else "")
            )
    return rules


def _number_example(f: FieldSpec) -> str:
    low, high = f.bound("minimum"), f.bound("maximum")
    if f.type == FieldType.INTEGER:
        value = 42
        value = max(value, low) if low is not None else value
        return str(min(value, high) if high is not None else value)
    value = Decimal("1234.50")
    value = max(value, low) if low is not None else value
    return str(min(value, high) if high is not None else value)


def example_of(f: FieldSpec, lookup_values: list[str] | None) -> str:
    """One value the field accepts, or '' when none can be told (a list not available)."""
    if f.enum:
        return f.enum[0]
    if f.lookup:
        return lookup_values[0] if lookup_values else ""
    if f.pattern:
        return pattern_example(f.pattern, f.min_length, f.max_length) or ""
    if f.type in (FieldType.INTEGER, FieldType.DECIMAL):
        return _number_example(f)
    if f.type in (FieldType.DATE, FieldType.DATETIME):
        low = f.bound("minimum")
        example = date_example(f)
        if (
            low is not None
            and isinstance(low, dt.date)
            and dt.datetime.strptime(example, f.date_format).date()
            < (low.date() if isinstance(low, dt.datetime) else low)
        ):
            return low.strftime(f.date_format)
        return example
    if f.type == FieldType.BOOLEAN:
        return f.boolean_texts[0][0]
    text = "Example text"
    if f.max_length is not None:
        text = text[: max(f.max_length, 1)]
    if f.min_length is not None and len(text) < f.min_length:
        text = text + "x" * (f.min_length - len(text))
    return text


def build_dictionary(spec: FileSpec, *, home: Path, filespecs_dir: Path, company_id: str | None = None) -> Dictionary:
    """The dictionary of `spec`; the lookup lists are read from the home's (or the filespecs') reference data."""
    dictionary = Dictionary(spec, layout_sentences(spec), [])
    lists: dict[tuple[str, str, str], LookupList] = {}
    for f in spec.fields:
        if f.lookup_parts and f.lookup_parts not in lists:
            lists[f.lookup_parts] = _lookup_list(*f.lookup_parts, home=home, filespecs_dir=filespecs_dir,
                                                 company_id=company_id, notes=dictionary.notes)  # fmt: skip
    dictionary.lists = list(lists.values())
    for index, f in enumerate(spec.fields):
        listed = lists.get(f.lookup_parts) if f.lookup_parts else None
        if f.enum:
            allowed = ", ".join(f.enum)
        elif listed is not None:
            allowed = f"a {listed.column} of {listed.title}" + (
                f" ({len(listed.values)} values, on the sheet Lists)"
                if listed.values is not None
                else f" ({listed.note})"
            )
        else:
            allowed = ""
        dictionary.fields.append(DictionaryField(
            number=index + 1, name=f.name, position=_position(spec, index, f), type=TYPE_WORDS[f.type],
            format=_format(f), required="yes" if f.required else "no", rules=_rules(spec, f),
            example=example_of(f, listed.values if listed else None), allowed=allowed, description=f.description or "",
        ))  # fmt: skip
    return dictionary


def _lookup_list(scope: str, table: str, column: str, *, home: Path, filespecs_dir: Path, company_id: str | None,
                 notes: list[str]) -> LookupList:  # fmt: skip
    title = list_name(scope, table)
    if scope == "company" and company_id is None:
        return LookupList(title, column, None, "each company's own list; `--company` writes one company's")
    try:
        path = find_reference_table(scope, table, company_id or "", home, filespecs_dir)
        frame = read_reference_csv(path)
    except ReferenceDataError as error:
        notes.append(str(error))
        return LookupList(title, column, None, "not available")
    if column not in frame.columns:
        notes.append(f"reference table {scope}.{table} ({path}) has no column {column!r}")
        return LookupList(title, column, None, "not available")
    values = [v for v in dict.fromkeys(frame[column].drop_nulls().to_list())]
    if scope == "company":
        title = f"{company_id}'s {table} list"
    return LookupList(title, column, values)


def write_xlsx(dictionary: Dictionary, out: Path) -> Path:
    """The dictionary as a workbook: 'Fields' (title, layout, one row per field) and 'Lists'."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Fields")
    widths = [4, 22, 24, 14, 22, 9, 48, 24, 36, 40]
    for number, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(number)].width = width
    sheet.append([styled_text_cell(sheet, dictionary.title, TITLE_FONT)])
    for line in dictionary.layout:
        sheet.append([None, text_cell(sheet, line)])
    sheet.append([])
    sheet.append([styled_text_cell(sheet, column, HEADER_FONT) for column in COLUMNS])
    for entry in dictionary.fields:
        row = []
        for text in entry.cells():
            cell = text_cell(sheet, text)
            cell.alignment = WRAPPED
            row.append(cell)
        sheet.append(row)
    lists = workbook.create_sheet("Lists")
    lists.append([styled_text_cell(lists, column, HEADER_FONT) for column in ("List", "Column", "Value")])
    for listed in dictionary.lists:
        if listed.values is None:
            lists.append([text_cell(lists, listed.title), text_cell(lists, listed.column), text_cell(lists, f"({listed.note})")])
            continue
        for value in listed.values[:LIST_VALUES_SHOWN]:
            lists.append([text_cell(lists, listed.title), text_cell(lists, listed.column), text_cell(lists, value)])
        if len(listed.values) > LIST_VALUES_SHOWN:
            lists.append([text_cell(lists, listed.title), text_cell(lists, listed.column),
                          text_cell(lists, f"(and {len(listed.values) - LIST_VALUES_SHOWN} more)")])  # fmt: skip
    _replace(out, workbook.save)
    return out


def _replace(out: Path, save) -> None:
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(handle)
    try:
        save(temporary)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


HTML_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #ccc;padding:.35rem .5rem;vertical-align:top;text-align:left}
th{background:#f0f0f0}td.rules{white-space:pre-line}code{background:#f4f4f4;padding:0 .2rem}
"""


def render_html(dictionary: Dictionary) -> str:
    """One self-contained page (no script, no outside resource); every text from the filespec is escaped."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(dictionary.title)}</title><style>{HTML_STYLE}</style></head><body>",
             f"<h1>{e(dictionary.title)}</h1>", "<ul>"]  # fmt: skip
    parts += [f"<li>{e(line)}</li>" for line in dictionary.layout]
    parts.append(
        "</ul><h2>Fields</h2><table><thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + "</tr></thead><tbody>"
    )
    for entry in dictionary.fields:
        cells = entry.cells()
        parts.append("<tr>" + "".join(
            f'<td class="rules">{e(text)}</td>' if column == "Rules" else
            f"<td><code>{e(text)}</code></td>" if column in ("Field", "Example of a valid value") and text else
            f"<td>{e(text)}</td>"
            for column, text in zip(COLUMNS, cells, strict=True)) + "</tr>")  # fmt: skip
    parts.append("</tbody></table>")
    for listed in dictionary.lists:
        parts.append(f"<h2>{e(listed.title[0].upper() + listed.title[1:])} ({e(listed.column)})</h2>")
        if listed.values is None:
            parts.append(f"<p>{e(listed.note[0].upper() + listed.note[1:])}.</p>")
            continue
        shown = listed.values[:LIST_VALUES_SHOWN]
        parts.append("<p>" + ", ".join(f"<code>{e(v)}</code>" for v in shown)
                     + (f" and {len(listed.values) - LIST_VALUES_SHOWN} more" if len(listed.values) > len(shown) else "") + "</p>")  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(dictionary: Dictionary, out: Path) -> Path:
    text = render_html(dictionary)
    _replace(out, lambda path: Path(path).write_text(text, encoding="utf-8"))
    return out
