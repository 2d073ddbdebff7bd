"""`import-spec`: a layout sheet (one row per field) becomes a filespec.

Clients and the legacy system keep file layouts as spreadsheets: a header row ("Field Name",
"Start Pos", "Len", "Data Type", "Mandatory", "Valid Values", ...) and one row per field. Header
cells are matched loosely (case, spaces and punctuation ignored, common synonyms known) and the
matching is reported. Whatever cannot be mapped (a column no rule corresponds to, a type or a
date format not understood, a value that does not parse) is listed on the terminal and as a
comment in the written filespec, never dropped silently. With positions (start and width, start
and end, or "1-10") the filespec is fixed_width; otherwise delimited with a header.
"""

import csv
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest_pipeline.core.filespec import FIELD_NAME_RE, LOOKUP_RE, FieldType, check_pattern_dialect

# Normalised header text (lower case, letters and digits only) -> the layout column it is.
HEADER_SYNONYMS = {
    "name": [
        "fieldname",
        "field",
        "name",
        "column",
        "columnname",
        "colname",
        "element",
        "dataelement",
        "elementname",
        "attribute",
        "variable",
        "item",
        "fieldid",
    ],
    "source": ["header", "headertext", "source", "sourcecolumn", "columnheader", "heading"],
    "start": [
        "start",
        "startpos",
        "startposition",
        "startcol",
        "startcolumn",
        "from",
        "begin",
        "beg",
        "frompos",
        "fromposition",
        "positionfrom",
        "startat",
    ],
    "end": [
        "end",
        "endpos",
        "endposition",
        "endcol",
        "endcolumn",
        "to",
        "topos",
        "toposition",
        "positionto",
        "stop",
        "thru",
        "through",
    ],
    "width": ["width", "fieldwidth", "size", "fieldsize", "bytes", "fieldlength", "len", "length"],
    "position": ["position", "positions", "pos", "columns", "cols", "location", "startend", "fromto"],
    "type": ["type", "datatype", "fieldtype", "dtype", "kind", "class"],
    "format": ["format", "dateformat", "mask", "picture", "pic", "formatmask", "displayformat"],
    "required": [
        "required",
        "mandatory",
        "req",
        "yn",
        "mandatoryyn",
        "requiredyn",
        "mo",
        "must",
        "isrequired",
        "notnull",
    ],
    "optional": ["optional", "nullable", "allownull", "allowsnull", "isnullable"],
    "max_length": ["maxlength", "maxlen", "maximumlength", "maxchars", "maxsize"],
    "min_length": ["minlength", "minlen", "minimumlength", "minchars"],
    "enum": [
        "allowedvalues",
        "validvalues",
        "values",
        "codes",
        "validcodes",
        "domain",
        "permittedvalues",
        "listofvalues",
        "lov",
        "enum",
        "acceptablevalues",
        "possiblevalues",
    ],
    "pattern": ["pattern", "regex", "regexp", "regularexpression"],
    "minimum": ["minimum", "minvalue", "min", "lowest", "fromvalue"],
    "maximum": ["maximum", "maxvalue", "max", "highest"],
    "unique": ["unique", "uniquekey", "isunique", "key", "primarykey", "pk"],
    "lookup": ["lookup", "reference", "lookuptable", "referencelist"],
    "description": [
        "description",
        "desc",
        "definition",
        "meaning",
        "comments",
        "comment",
        "notes",
        "remarks",
        "fielddescription",
        "businessdescription",
    ],
}
HEADER_OF = {synonym: column for column, synonyms in HEADER_SYNONYMS.items() for synonym in synonyms}
# A layout sheet's header row must name the field and at least one other thing about it.
MIN_HEADER_MATCHES = 2
HEADER_SEARCH_ROWS = 30

TYPE_WORDS = {
    FieldType.STRING: [
        "string",
        "str",
        "text",
        "char",
        "character",
        "varchar",
        "nvarchar",
        "alpha",
        "alphanumeric",
        "an",
        "a",
        "x",
        "c",
        "s",
        "pic x",
        "varchar2",
        "nchar",
        "memo",
        "code",
    ],
    FieldType.INTEGER: [
        "integer",
        "int",
        "bigint",
        "smallint",
        "whole number",
        "number",
        "numeric",
        "num",
        "n",
        "9",
        "pic 9",
        "long",
        "i",
        "count",
    ],
    FieldType.DECIMAL: [
        "decimal",
        "dec",
        "money",
        "currency",
        "amount",
        "float",
        "double",
        "real",
        "number with decimals",
        "numeric with decimals",
        "signed decimal",
        "f",
    ],
    FieldType.DATE: ["date", "d", "dt"],
    FieldType.DATETIME: ["datetime", "timestamp", "date time", "date/time", "ts"],
    FieldType.BOOLEAN: ["boolean", "bool", "flag", "y/n", "yes/no", "yn", "indicator", "bit", "logical"],
}
TYPE_OF = {word: kind for kind, words in TYPE_WORDS.items() for word in words}
SIZED_TYPE = re.compile(r"\s*([a-z0-9 /]+?)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)\s*")  # VARCHAR(50), DECIMAL(10,2)

TRUE_WORDS = {"y", "yes", "true", "t", "x", "1", "m", "r", "required", "mandatory", "req"}
FALSE_WORDS = {"", "n", "no", "false", "f", "0", "o", "optional", "opt", "-"}

# Layout date masks, longest first so YYYY is read before YY.
DATE_TOKENS = [("YYYY", "%Y"), ("CCYY", "%Y"), ("YY", "%y"), ("MMM", "%b"), ("MM", "%m"), ("DD", "%d"),
               ("HH24", "%H"), ("HH", "%H"), ("MI", "%M"), ("NN", "%M"), ("SS", "%S")]  # fmt: skip
DATE_MASK = re.compile(r"[YCMDHNIS0-9/\-.:T ]+")


class LayoutError(ValueError):
    """A layout sheet that cannot be read at all (one sentence naming the file)."""


@dataclass
class ImportResult:
    form_type: str
    kind: str
    header_row: int
    sheet: str | None
    matched: dict[str, str]  # header text -> layout column it was read as
    fields: list[dict]
    notes: dict[str, list[str]]  # field name -> what could not be mapped for it
    unmapped: list[str] = field(default_factory=list)  # every such thing, as one line each
    yaml_text: str = ""

    def report_lines(self) -> list[str]:
        where = f"sheet {self.sheet!r}, " if self.sheet else ""
        lines = [f"header row: {where}row {self.header_row}"]
        for header, column in self.matched.items():
            lines.append(f"  column {header!r} -> {column}")
        if self.unmapped:
            lines.append("not mapped:")
            lines.extend(f"  {line}" for line in self.unmapped)
        return lines


def read_layout_rows(path: Path, sheet: str | None = None) -> tuple[str | None, list[list[str]]]:
    """The sheet's rows as text cells (numbers as integers' text where whole), and the sheet's name."""
    if not path.is_file():
        raise LayoutError(f"{path}: no such layout file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            with open(path, encoding="utf-8-sig", newline="") as stream:
                return None, [[cell.strip() for cell in row] for row in csv.reader(stream)]
        except UnicodeDecodeError:
            with open(path, encoding="cp1252", newline="") as stream:
                return None, [[cell.strip() for cell in row] for row in csv.reader(stream)]
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path, sheet)
    if suffix == ".xls":
        return _read_xls(path, sheet)
    raise LayoutError(f"{path}: a layout sheet must be .xlsx, .xls or .csv, not {suffix or 'a file without a suffix'}")


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    return str(value).strip()


def _pick_sheet(names: list[str], rows_of, wanted: str | None, path: Path) -> tuple[str, list[list[str]]]:
    if wanted is not None:
        if wanted not in names:
            raise LayoutError(f"{path}: no sheet {wanted!r} (it has {', '.join(names)})")
        return wanted, rows_of(wanted)
    for name in names:  # the first sheet with a recognisable header row
        rows = rows_of(name)
        if _find_header(rows) is not None:
            return name, rows
    return names[0], rows_of(names[0])


def _read_xlsx(path: Path, sheet: str | None) -> tuple[str, list[list[str]]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a file that is not a workbook
        raise LayoutError(f"{path}: cannot be read as an .xlsx workbook ({type(error).__name__}: {error})") from None
    try:
        return _pick_sheet(workbook.sheetnames,
                           lambda name: [[_cell_text(v) for v in row] for row in workbook[name].iter_rows(values_only=True)],
                           sheet, path)  # fmt: skip
    finally:
        workbook.close()


def _read_xls(path: Path, sheet: str | None) -> tuple[str, list[list[str]]]:
    import xlrd

    try:
        book = xlrd.open_workbook(path)
    except Exception as error:  # xlrd.XLRDError and struct errors for a file that is not a workbook
        raise LayoutError(f"{path}: cannot be read as an .xls workbook ({type(error).__name__}: {error})") from None

    def rows_of(name: str) -> list[list[str]]:
        sh = book.sheet_by_name(name)
        rows = []
        for r in range(sh.nrows):
            row = []
            for c in range(sh.ncols):
                cell = sh.cell(r, c)
                if cell.ctype == xlrd.XL_CELL_DATE:
                    row.append(_cell_text(xlrd.xldate.xldate_as_datetime(cell.value, book.datemode)))
                elif cell.ctype == xlrd.XL_CELL_BOOLEAN:
                    row.append(_cell_text(bool(cell.value)))
                else:
                    row.append(_cell_text(cell.value))
            rows.append(row)
        return rows

    return _pick_sheet(book.sheet_names(), rows_of, sheet, path)


def normalise_header(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def match_header_cell(text: str) -> str | None:
    """The layout column a header cell names ("Start Pos" -> start), or None."""
    key = normalise_header(text)
    if key in HEADER_OF:
        return HEADER_OF[key]
    for suffix in ("yn", "flag", "ind"):  # "Required Y/N", "Mandatory Flag"
        if key.endswith(suffix) and key[: -len(suffix)] in HEADER_OF and HEADER_OF[key[: -len(suffix)]] == "required":
            return "required"
    return None


def _find_header(rows: list[list[str]]) -> int | None:
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        columns = [match_header_cell(cell) for cell in row if cell]
        if "name" in columns and len([c for c in columns if c]) >= MIN_HEADER_MATCHES:
            return index
    return None


def snake_name(text: str) -> str:
    """'Employee ID' or 'EmployeeId' -> employee_id; a name starting with a digit gets a leading underscore."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text.strip())  # EmployeeId -> Employee_Id
    name = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()
    if name and name[0].isdigit():
        name = f"_{name}"
    return name


def parse_type(text: str) -> tuple[FieldType | None, int | None, int | None]:
    """(type, size, decimals) of a layout's type cell: 'VARCHAR(50)' -> (string, 50, None)."""
    word, size, decimals = text.strip().lower(), None, None
    sized = SIZED_TYPE.fullmatch(word)
    if sized:
        word, size = sized.group(1).strip(), int(sized.group(2))
        decimals = int(sized.group(3)) if sized.group(3) else None
    kind = TYPE_OF.get(word) or TYPE_OF.get(word.replace("-", " ")) or TYPE_OF.get(word.replace(" ", ""))
    if kind == FieldType.INTEGER and decimals:
        kind = FieldType.DECIMAL
    return kind, size, decimals


def parse_date_format(text: str) -> str | None:
    """'YYYYMMDD' or 'MM/DD/YYYY' (a layout's mask) or an strftime pattern, as an strftime pattern."""
    text = text.strip()
    if "%" in text:
        return text
    upper = text.upper()
    if not upper or not DATE_MASK.fullmatch(upper) or not any(t in upper for t in ("YY", "DD")):
        return None
    out, index = "", 0
    while index < len(upper):
        for token, directive in DATE_TOKENS:
            if upper.startswith(token, index):
                out += directive
                index += len(token)
                break
        else:
            char = upper[index]
            if char.isalpha() and char != "T":
                return None
            out += char
            index += 1
    return out


def parse_flag(text: str) -> bool | None:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def parse_allowed_values(text: str) -> tuple[list[str], bool]:
    """'A=Active, T=Terminated' or 'A, L, T' or one per line -> (the codes in order without repeats,
    whether any code had a meaning written beside it)."""
    parts = [p.strip() for p in re.split(r"[\n;,|]", text) if p.strip()]
    values, labelled = [], False
    for part in parts:
        pieces = re.split(r"\s*(?:=|:|\s-\s|–)\s*", part, maxsplit=1)
        labelled = labelled or len(pieces) > 1
        code = pieces[0].strip().strip("'\"")
        if code and code not in values:
            values.append(code)
    return values, labelled


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if re.fullmatch(r"\d+", text) else None


def import_layout(path: Path, form_type: str, sheet: str | None = None) -> ImportResult:
    """Read the layout sheet at `path` and build the filespec text (see `ImportResult.yaml_text`)."""
    sheet_name, rows = read_layout_rows(path, sheet)
    header_index = _find_header(rows)
    if header_index is None:
        raise LayoutError(
            f"{path}: no header row found in the first {HEADER_SEARCH_ROWS} rows; a layout sheet needs a row "
            "naming at least the field name column ('Field Name', 'Column', 'Name') and one more (type, start, length, ...)"
        )
    header = rows[header_index]
    columns: dict[int, str] = {}
    matched: dict[str, str] = {}
    unmapped: list[str] = []
    for index, text in enumerate(header):
        if not text:
            continue
        column = match_header_cell(text)
        if column is None or column in columns.values():
            why = "matches no layout column" if column is None else f"is a second {column} column"
            unmapped.append(f"column {text!r} {why}: its values are kept as comments beside each field")
            continue
        columns[index] = column
        matched[text] = column
    present = set(columns.values())
    has_positions = bool(present & {"start", "position"}) or {"end", "width"} <= present
    if not has_positions:
        # Without positions a "Length" is the longest allowed text, not a width.
        for index, column in list(columns.items()):
            if column == "width" and "max_length" not in present:
                columns[index] = "max_length"
                matched[header[index]] = "max_length"
    # A column the layout's kind has no use for is reported and kept as comments, not ignored.
    unused = {"source"} if has_positions else {"start", "end", "width", "position"}
    for index, column in list(columns.items()):
        if column in unused:
            del columns[index], matched[header[index]]
            what = "a delimited file's header text" if column == "source" else f"a position ({column})"
            kind_text = "fixed_width" if has_positions else "delimited (no start or position column)"
            unmapped.append(f"column {header[index]!r} is {what}, which a {kind_text} layout does not use: "
                            "its values are kept as comments beside each field")  # fmt: skip
    kind = "fixed_width" if has_positions else "delimited"
    fields: list[dict] = []
    notes: dict[str, list[str]] = {}
    names_seen: set[str] = set()
    for row_index in range(header_index + 1, len(rows)):
        row = rows[row_index]
        cells = {columns[i]: (row[i] if i < len(row) else "") for i in columns}
        extra = {
            header[i]: row[i] for i in range(min(len(row), len(header))) if i not in columns and header[i] and row[i]
        }
        if not any(row):
            continue
        raw_name = cells.get("name", "")
        line = f"row {row_index + 1}"
        if not raw_name:
            unmapped.append(f"{line}: has no field name; skipped ({', '.join(c for c in row if c)})")
            continue
        name = snake_name(raw_name)
        if not FIELD_NAME_RE.fullmatch(name or "-"):
            unmapped.append(f"{line}: field name {raw_name!r} cannot be made a column name; skipped")
            continue
        if name in names_seen:
            base, n = name, 2
            while f"{base}_{n}" in names_seen:
                n += 1
            name = f"{base}_{n}"
            unmapped.append(f"{line}: field name {raw_name!r} is used twice; this one is named {name}")
        names_seen.add(name)
        spec, problems = _field(name, raw_name, cells, kind)
        if problems:
            unmapped.extend(f"{line} ({name}): {p}" for p in problems)
        problems += [f"column {header_text!r}: {value!r}" for header_text, value in extra.items()]
        if problems:
            notes[name] = problems
        fields.append(spec)
    if not fields:
        raise LayoutError(f"{path}: the layout has a header row (row {header_index + 1}) but no field rows under it")
    result = ImportResult(form_type, kind, header_index + 1, sheet_name, matched, fields, notes, unmapped)
    result.yaml_text = render_yaml(result, path)
    return result


def _field(name: str, raw_name: str, cells: dict[str, str], kind: str) -> tuple[dict, list[str]]:
    spec: dict = {"name": name}
    problems: list[str] = []
    if kind == "delimited":
        source = cells.get("source") or raw_name
        if source.strip().lower() != name:
            spec["source"] = source.strip()
    else:
        start, width = _int(cells.get("start", "")), _int(cells.get("width", ""))
        end = _int(cells.get("end", ""))
        position = cells.get("position", "")
        if position:
            span = re.fullmatch(r"\s*(\d+)\s*(?:-|–|to|:|\.\.)\s*(\d+)\s*", position)
            if span:
                start, end = int(span.group(1)), int(span.group(2))
            elif _int(position) is not None and start is None:
                start = _int(position)
            else:
                problems.append(f"position {position!r} is not start-end (e.g. 1-10)")
        if start is None and end is not None and width is not None:
            start = end - width + 1
        if width is None and start is not None and end is not None:
            width = end - start + 1
        elif start is not None and end is not None and end - start + 1 != width:
            problems.append(f"end {end} disagrees with start {start} and width {width}; width {width} is used")
        for key, value in (("start", start), ("width", width)):
            if value is None or value < 1:
                problems.append(f"no {key} could be read ({cells.get(key, '')!r}); written as 1, to be corrected")
                value = 1
            spec[key] = value
    type_text = cells.get("type", "")
    kind_of, size, _ = parse_type(type_text) if type_text else (FieldType.STRING, None, None)
    if kind_of is None:
        problems.append(f"type {type_text!r} is not a known type; read as string")
        kind_of = FieldType.STRING
    if kind_of != FieldType.STRING:
        spec["type"] = kind_of.value
    format_text = cells.get("format", "")
    if format_text:
        if kind_of in (FieldType.DATE, FieldType.DATETIME):
            fmt = parse_date_format(format_text)
            if fmt is None:
                problems.append(f"date format {format_text!r} is not understood; the default %Y-%m-%d is used")
            else:
                spec["format"] = fmt
        elif kind_of == FieldType.BOOLEAN:
            pair = [p.strip() for p in re.split(r"[/,|]", format_text) if p.strip()]
            if len(pair) == 2:
                spec["format"] = {"true": [pair[0]], "false": [pair[1]]}
            else:
                problems.append(f"boolean format {format_text!r} is not 'true/false' texts (e.g. Y/N)")
        else:
            problems.append(f"format {format_text!r} applies to date, datetime and boolean fields only")
    def flag(key: str, label: str) -> bool | None:
        """The yes/no cell `key` (None when empty or not yes or no, the latter listed as a problem)."""
        text = cells.get(key)
        value = parse_flag(text) if text else None
        if text and value is None:
            problems.append(f"{label} {text!r} is not yes or no")
        return value

    if flag("required", "required"):
        spec["required"] = True
    if flag("optional", "optional/nullable") is False and "required" not in spec:
        spec["required"] = True
    if flag("unique", "unique"):
        spec["unique"] = True
    for key in ("min_length", "max_length"):
        text = cells.get(key, "")
        if text:
            value = _int(text)
            if value is None:
                problems.append(f"{key} {text!r} is not a whole number")
            else:
                spec[key] = value
    if "max_length" not in spec and size is not None and kind_of == FieldType.STRING and kind == "delimited":
        spec["max_length"] = size
    for key in ("minimum", "maximum"):
        text = cells.get(key, "")
        if text:
            if kind_of in (FieldType.STRING, FieldType.BOOLEAN):
                problems.append(f"{key} {text!r} applies to numbers and dates, not a {kind_of.value} field")
            else:
                spec[key] = text
    pattern = cells.get("pattern", "")
    if pattern:
        try:
            check_pattern_dialect(pattern)
            spec["pattern"] = pattern
        except ValueError as error:
            problems.append(str(error))
    enum_text = cells.get("enum", "")
    if enum_text:
        values, labelled = parse_allowed_values(enum_text)
        if values:
            spec["enum"] = values
        if labelled:  # the codes' meanings are for people: kept in the description
            cells["description"] = (cells.get("description", "") + f" ({enum_text.strip()})").strip()
    lookup = cells.get("lookup", "")
    if lookup:
        if LOOKUP_RE.fullmatch(lookup):
            spec["lookup"] = lookup
        else:
            problems.append(f"lookup {lookup!r} is not ref.<table>.<column> or company.<table>.<column>")
    description = cells.get("description", "")
    if description:
        spec["description"] = " ".join(description.split())
    return spec, problems


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*|[0-9]+")
_YAML_WORDS = {"null", "~", "true", "false", "yes", "no", "on", "off", "y", "n"}


def yaml_scalar(value) -> str:
    """A YAML scalar that the filespec loader reads back as exactly this value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_scalar(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _comment(text: str) -> str:
    return "# " + " ".join(text.split())


def render_yaml(result: ImportResult, path: Path) -> str:
    lines = [
        f"# Imported by `ingest-pipeline import-spec` from {path.name}"
        + (f" (sheet {result.sheet!r})" if result.sheet else "")
        + f", header row {result.header_row}.",
        _comment("Columns read: " + ", ".join(f"{h!r} as {c}" for h, c in result.matched.items()) + "."),
    ]
    if result.unmapped:
        lines.append("# NOT MAPPED (review each before the first upload):")
        lines.extend(_comment(f"  - {line}") for line in result.unmapped)
    lines += [f"form_type: {result.form_type}", "version: 1", "format:", f"  kind: {result.kind}"]
    if result.kind == "delimited":
        lines += ['  delimiter: ","', "  header: true"]
    lines.append("fields:")
    for spec in result.fields:
        for note in result.notes.get(spec["name"], []):
            lines.append("  " + _comment(f"not mapped: {note}"))
        body = ", ".join(f"{key}: {yaml_scalar(value)}" for key, value in spec.items())
        lines.append(f"  - {{{body}}}")
    return "\n".join(lines) + "\n"
