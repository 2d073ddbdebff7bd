"""Draft a filespec from a sample file (`ingest-pipeline describe`): pure inference, no Dagster.

A bounded sample is read (at most `sample_rows` records and MAX_SAMPLE_BYTES, whatever the file's
size), its layout is sniffed (encoding, delimiter, quote, header; for fixed width, the columns of
spaces every line shares), and every column is profiled in one pass. Each rule is then written
only when the whole sample meets it, as the pipeline judges cells (core/judge.py): trimmed text,
empty is null, integers and decimals by the contract's regular expressions, dates read strictly
(formatting the value again gives the text back). So the sample the draft was inferred from
ingests with no message, and every rule carries a YAML comment with its evidence.
"""

import csv
import datetime as dt
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest_pipeline.core.errors import IngestError
from ingest_pipeline.core.filespec import (
    DECIMAL_TEXT,
    INT64_MAX,
    INT64_MIN,
    INTEGER_TEXT,
    FormatKind,
    check_pattern_dialect,
)
from ingest_pipeline.core.home import PROJECT_ROOT
from ingest_pipeline.core.judge import date_shape

DEFAULT_SAMPLE_ROWS = 50_000
MAX_SAMPLE_BYTES = 256 * 1024 * 1024  # a sample never holds more than this, however long its lines
ENUM_MAX_VALUES = 20  # a column with at most this many distinct texts (each seen twice on average) is an enum
DELIMITERS = (",", "\t", "|", ";")
SNIFF_RECORDS = 500
NO_DELIMITER = "no delimiter splits the records (one column)"
# Python's strptime and polars' chrono (core/judge.py) read these alike; %y and %z are left out.
DATE_FORMATS = (
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%m-%d-%Y",
    "%d-%m-%Y",
    "%d-%b-%Y",
    "%d %b %Y",
)
DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M",
)  # fmt: skip
BOOLEAN_TEXTS = {"true", "false", "yes", "no", "y", "n"}  # the default texts (1/0 stay integers)
MAX_EXACT_DECIMAL_DIGITS = 15  # a decimal is stored as a double: more digits would not come back
SCHEMA_PATH = Path(__file__).with_name("filespec.schema.json")


class DescribeError(IngestError):
    """The sample cannot be described as a filespec (unreadable, or a layout no filespec can state)."""


# --- reading a bounded sample ------------------------------------------------------------------


@dataclass
class Sample:
    data: bytes
    whole_file: bool  # the sample is the whole file (else its last record may be cut)


def read_sample(path: Path, sample_rows: int, max_bytes: int = MAX_SAMPLE_BYTES) -> Sample:
    """The file's first lines: enough for `sample_rows` records (a header and line breaks inside
    quotes aside), never more than `max_bytes`; the file is streamed, never read whole."""
    lines, size, records, open_quote = [], 0, 0, False
    try:
        with open(path, "rb") as stream:
            # readline with a limit: a file with no line break is read up to max_bytes, not whole.
            while line := stream.readline(max_bytes - size):
                lines.append(line)
                size += len(line)
                open_quote ^= line.count(b'"') % 2 == 1  # a line break inside quotes does not end a record
                records += not open_quote
                if records > sample_rows + 1 or size >= max_bytes:  # a header, and a last record maybe cut
                    return Sample(b"".join(lines), whole_file=not stream.read(1))
    except FileNotFoundError:
        raise DescribeError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DescribeError(f"{path}: is a folder, not a file") from None
    except OSError as error:
        raise DescribeError(f"{path}: cannot be read ({error.strerror or error})") from None
    return Sample(b"".join(lines), whole_file=True)


def detect_encoding(data: bytes) -> tuple[str, str]:
    """(encoding among the contract's, evidence): UTF-8 if every byte decodes so, else cp1252, else latin-1."""
    if b"\x00" in data[:65536]:
        raise DescribeError("holds NUL bytes (UTF-16 or binary?): a filespec reads UTF-8, cp1252 or latin-1 text")
    try:
        data.decode("utf-8")
        if any(byte >= 0x80 for byte in data):
            return "utf-8", "every byte of the sample is valid UTF-8, with non-ASCII characters"
        return "utf-8", "the sample is plain ASCII (UTF-8 reads it)"
    except UnicodeDecodeError as error:
        where = f"byte 0x{data[error.start]:02x} at offset {error.start} is not UTF-8"
    try:
        data.decode("cp1252")
        return "cp1252", f"{where}; every byte decodes as cp1252"
    except UnicodeDecodeError:
        return "latin-1", f"{where}, nor cp1252; latin-1 reads any byte"


# --- layout ------------------------------------------------------------------------------------


def parse_records(text: str, delimiter: str, quote: str, limit: int | None = None) -> list[list[str]]:
    """RFC 4180 records (entirely empty lines are no records, as the contract says)."""
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quote, doublequote=True, strict=False
    )
    records = []
    try:
        for record in reader:
            if record:
                records.append(record)
                if limit is not None and len(records) >= limit:
                    break
    except csv.Error as error:
        raise DescribeError(f"cannot be split into records at line {reader.line_num}: {error}") from None
    return records


SNIFF_TEXT_CHARS = 8 * 1024 * 1024


def sniff_dialect(text: str) -> tuple[str, str, str]:
    """(delimiter, quote, evidence): the candidate delimiter giving most first records one same
    number of cells (more than one); the quote is '"' unless only "'" is used to wrap cells."""
    quote = '"'
    if '"' not in text and re.search(r"(^|[,\t|;])'[^'\n]*'(?=[,\t|;]|\r?$)", text, re.M):
        quote = "'"
    best = None
    head = text[:SNIFF_TEXT_CHARS]  # the first records are read from a copy of this, not of the whole sample
    for delimiter in DELIMITERS:
        if delimiter not in text:
            continue
        records = parse_records(head, delimiter, quote, SNIFF_RECORDS)
        counts: dict[int, int] = {}
        for record in records:
            counts[len(record)] = counts.get(len(record), 0) + 1
        cells, times = max(counts.items(), key=lambda item: (item[1], item[0]))
        if cells > 1:
            score = (times / len(records), cells)
            if best is None or score > best[0]:
                best = (score, delimiter, cells, times, len(records))
    if best is None:
        return ",", quote, NO_DELIMITER
    _, delimiter, cells, times, looked = best
    shown = {"\t": "tab", ",": "','", "|": "'|'", ";": "';'"}[delimiter]
    return delimiter, quote, f"{times:,} of the first {looked:,} records have {cells} cells when split at {shown}"


def _looks_like_value(text: str) -> bool:
    text = text.strip()
    if not text or INTEGER_TEXT.fullmatch(text) or DECIMAL_TEXT.fullmatch(text):
        return True
    return any(_reads_as(text, fmt) for fmt in DATE_FORMATS + DATETIME_FORMATS)


def looks_like_header(first: list[str]) -> tuple[bool, str]:
    """Whether the first record is a header, and why: no cell is empty, a number or a date."""
    cells = [cell.strip() for cell in first]
    if any(_looks_like_value(cell) for cell in cells):
        return False, "the first record has an empty, numeric or date cell, so it is data"
    return True, "the first record's cells are names, none empty, a number or a date"


def field_names(header: list[str]) -> list[tuple[str, str | None]]:
    """(name, source or None) per header cell: the cell made an identifier; source when they differ."""
    names, used = [], set()
    for position, cell in enumerate(header, start=1):
        text = cell.strip()
        name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower() or f"column_{position}"
        if name[0].isdigit():
            name = f"c_{name}"
        base, suffix = name, 2
        while name in used:
            name, suffix = f"{base}_{suffix}", suffix + 1
        used.add(name)
        names.append((name, None if name == text.lower() else text))
    return names


def fixed_width_columns(lines: list[str]) -> list[tuple[int, int]]:
    """(start, width), 1-based, of the columns a fixed-width sample shows: a field starts where a
    run of characters starts after a position that is a space on every line, and ends where the
    next field starts (the last, at the longest line's end)."""
    length = max((len(line) for line in lines), default=0)
    blank = [True] * length
    for line in lines:
        for position, char in enumerate(line):
            if char != " ":
                blank[position] = False
    starts = [p for p in range(length) if not blank[p] and (p == 0 or blank[p - 1])]
    if starts and starts[0] != 0:
        starts[0] = 0
    return [(start + 1, (starts[i + 1] if i + 1 < len(starts) else length) - start) for i, start in enumerate(starts)]


# --- profiling a column -------------------------------------------------------------------------


def _reads_as(text: str, fmt: str) -> bool:
    """Whether `text` is a date/datetime of `fmt` as the pipeline reads it (strict round trip)."""
    shape = date_shape(fmt)
    if shape is not None and not re.fullmatch(shape, text):
        return False
    try:
        value = dt.datetime.strptime(text, fmt)
    except ValueError:
        return False
    return value.strftime(fmt) == text and value.year >= (1000 if "%Y" in fmt else 1)


@dataclass
class ColumnProfile:
    """What one pass over a column's cells (trimmed; empty is null) saw."""

    rows: int = 0
    nulls: int = 0
    min_length: int | None = None
    max_length: int = 0
    distinct: set | None = field(default_factory=set)  # up to ENUM_MAX_VALUES + 1 texts, then None
    seen_values: set | None = field(default_factory=set)  # every text, until one repeats (then None)
    integer: bool = True
    leading_zero: str | bool = False  # the first value with a leading zero
    decimal: bool = True
    has_point: bool = False
    point_example: str | None = None
    decimal_digits: int = 0
    negative: bool = False
    boolean_texts: set | None = field(default_factory=set)
    date_formats: list[str] = field(default_factory=lambda: list(DATE_FORMATS))
    datetime_formats: list[str] = field(default_factory=lambda: list(DATETIME_FORMATS))
    shape: tuple | None = None  # ('digits', n) or ('prefix', letters, n), while every value has it
    shape_broken: bool = False
    example: str | None = None

    def add(self, raw: str) -> None:
        self.rows += 1
        text = raw.strip()
        if not text:
            self.nulls += 1
            return
        if self.example is None:
            self.example = text
        length = len(text)
        self.max_length = max(self.max_length, length)
        self.min_length = length if self.min_length is None else min(self.min_length, length)
        if self.distinct is not None:
            self.distinct.add(text)
            if len(self.distinct) > ENUM_MAX_VALUES:
                self.distinct = None
        if self.seen_values is not None:
            if text in self.seen_values:
                self.seen_values = None
            else:
                self.seen_values.add(text)
        self._types(text)
        self._shape(text)

    def _types(self, text: str) -> None:
        if self.integer or self.decimal:
            digits = text.lstrip("+-")
            if text.startswith("-"):
                self.negative = True
            if self.integer:
                if not INTEGER_TEXT.fullmatch(text) or not INT64_MIN <= int(text) <= INT64_MAX:
                    self.integer = False
                elif len(digits) > 1 and digits.startswith("0"):
                    self.leading_zero = self.leading_zero or text  # "0123": an integer would read it as 123
            if self.decimal:
                if not DECIMAL_TEXT.fullmatch(text):
                    self.decimal = False
                else:
                    if "." in text and not self.has_point:
                        self.has_point, self.point_example = True, text
                    self.decimal_digits = max(self.decimal_digits, len(digits.replace(".", "").lstrip("0")))
        if self.boolean_texts is not None:
            lowered = text.lower()
            self.boolean_texts = self.boolean_texts | {lowered} if lowered in BOOLEAN_TEXTS else None
        if self.date_formats:
            self.date_formats = [fmt for fmt in self.date_formats if _reads_as(text, fmt)]
        if self.datetime_formats:
            self.datetime_formats = [fmt for fmt in self.datetime_formats if _reads_as(text, fmt)]

    def _shape(self, text: str) -> None:
        if self.shape_broken:
            return
        match = re.fullmatch(r"([A-Za-z]*)([0-9]+)", text)
        shape = (match.group(1), len(match.group(2))) if match else None
        if shape is None or (self.shape is not None and shape != self.shape):
            self.shape_broken, self.shape = True, None
        else:
            self.shape = shape

    @property
    def values(self) -> int:
        return self.rows - self.nulls


@dataclass
class InferredField:
    """One field of the draft: its keys in order, each with the evidence for it."""

    name: str
    keys: list[tuple[str, object, str | None]]  # (key, value, evidence comment)


def infer_field(
    name: str, source: str | None, profile: ColumnProfile, position: tuple[int, int, str] | None
) -> InferredField:
    """The rules the whole profiled sample meets, with their evidence."""
    rows, values = profile.rows, profile.values
    n = f"{rows:,} rows"
    keys: list[tuple[str, object, str | None]] = [("name", name, None)]
    if source is not None:
        keys.append(("source", source, "the header's text"))
    if position is not None:
        keys.append(("start", position[0], None))
        keys.append(("width", position[1], f"characters {position[0]}-{position[0] + position[1] - 1}: {position[2]}"))
    if values == 0:
        keys.append(("type", "string", f"every cell is empty in {n}: nothing to infer"))
        return InferredField(name, keys)
    kind, type_evidence, fmt = _infer_type(profile)
    keys.append(("type", kind, type_evidence))
    if fmt is not None:
        keys.append(("format", fmt, None))
    if profile.nulls == 0:
        keys.append(("required", True, f"no empty cell in {n}"))
    distinct = profile.distinct
    if (
        profile.seen_values is not None
        and values >= 2
        and profile.nulls == 0
        and kind in ("string", "integer", "date", "datetime")
    ):
        keys.append(("unique", True, f"{values:,} distinct values in {n} (a uniqueness candidate)"))
    if kind in ("integer", "decimal") and not profile.negative:
        keys.append(("minimum", "0", f"no negative value in {n}"))
    if kind == "string":
        if distinct is not None and values >= 2 * len(distinct) and len(distinct) >= 1:
            listed = sorted(distinct)
            keys.append(("enum", listed, f"{len(listed)} distinct values in {n}"))
            return InferredField(name, keys)
        shape = profile.shape
        if shape is not None:
            letters, digits = shape
            pattern = f"{re.escape(letters)}[0-9]{{{digits}}}"
            check_pattern_dialect(pattern)
            said = f"{letters} and {digits} digits" if letters else f"{digits} digits"
            keys.append(("pattern", pattern, f"every value is {said} (e.g. {profile.example})"))
        if profile.min_length == profile.max_length:
            keys.append(("min_length", profile.min_length, None))
            keys.append(("max_length", profile.max_length, f"every value is {profile.max_length} characters long"))
        else:
            keys.append(("max_length", profile.max_length, f"longest value {profile.max_length} characters in {n}"))
    return InferredField(name, keys)


def _infer_type(profile: ColumnProfile) -> tuple[str, str, object]:
    values = f"{profile.values:,} values"
    example = f" (e.g. {profile.example})"
    if profile.boolean_texts is not None and len(profile.boolean_texts) >= 2:
        shown = ", ".join(sorted(profile.boolean_texts))
        return "boolean", f"only the texts {shown} (any case) in {values}", None
    for kind, formats in (("datetime", profile.datetime_formats), ("date", profile.date_formats)):
        if formats:
            also = f"; {', '.join(formats[1:])} also fits" if len(formats) > 1 else ""
            return kind, f"all {values} read as {formats[0]}{example}{also}", formats[0]
    if profile.integer and not profile.leading_zero:
        return "integer", f"all {values} are whole numbers{example}", None
    if profile.decimal and profile.has_point and profile.decimal_digits <= MAX_EXACT_DECIMAL_DIGITS:
        return "decimal", f"all {values} are decimal numbers (e.g. {profile.point_example})", None
    if profile.integer and profile.leading_zero:
        return "string", f"digits with leading zeros (e.g. {profile.leading_zero}), which an integer would drop", None
    return "string", None, None


# --- the draft ----------------------------------------------------------------------------------


@dataclass
class Draft:
    form_type: str
    kind: str
    encoding: str
    rows: int
    fields: list[InferredField]
    format_keys: list[tuple[str, object, str | None]]
    notes: list[str]
    source: str

    def summary(self) -> str:
        return f"{len(self.fields)} fields from {self.rows:,} rows ({self.kind}, {self.encoding})"


def describe_sample(
    path: Path, form_type: str, kind: str | None = None, sample_rows: int = DEFAULT_SAMPLE_ROWS
) -> Draft:
    """Infer a draft filespec of `form_type` from the first `sample_rows` records of `path`."""
    sample = read_sample(path, sample_rows)
    encoding, encoding_evidence = detect_encoding(sample.data)
    text = sample.data.decode(encoding)
    text = text.removeprefix("\ufeff")
    notes: list[str] = []
    kind = kind or _guess_kind(text)
    format_keys: list[tuple[str, object, str | None]] = [
        ("kind", kind, None),
        ("encoding", encoding, encoding_evidence),
    ]
    if kind == FormatKind.FIXED_WIDTH:
        lines = [line.rstrip("\r") for line in text.split("\n")]
        if not sample.whole_file and lines:
            lines = lines[:-1]
        lines = [line for line in lines if line]
        if not lines:
            raise DescribeError("has no lines to describe")
        first_words = [(m.start() + 1, m.group()) for m in re.finditer(r"\S+", lines[0])]
        header, why = looks_like_header([word for _, word in first_words])
        header = header and len(lines) > 1 and len(first_words) > 1
        if header:
            # The banner of names gives the layout: a field starts where its name does.
            starts = [start for start, _ in first_words]
            starts[0] = 1
            length = max(len(line) for line in lines)
            columns = [
                (start, (starts[i + 1] if i + 1 < len(starts) else length + 1) - start)
                for i, start in enumerate(starts)
            ]
            evidence = "where its name starts in the first line"
        else:
            columns = fixed_width_columns(lines)
            evidence = "spaces on every line around them"
            notes.append(
                "fixed-width fields were told apart by columns of spaces on every line: fields written edge to edge "
                "come out as one, so split those by hand (start and width)"
            )
        if len(columns) < 2:
            raise DescribeError(
                "shows no column of spaces shared by every line, so its fixed-width fields cannot be told apart; "
                "write start and width per field by hand (or describe a delimited export of it)"
            )
        records = [[line[s - 1 : s - 1 + w] for s, w in columns] for line in lines]
        if header:
            format_keys.append(("skip_rows", 1, "the first line is a banner of names, none a number or date"))
            names = [(name, None) for name, _ in field_names([word for _, word in first_words])]
            records = records[1:]
        else:
            names = [(f"column_{i}", None) for i in range(1, len(columns) + 1)]
        records = records[:sample_rows]
        positions: list[tuple[int, int, str] | None] = [(start, width, evidence) for start, width in columns]
    else:
        delimiter, quote, dialect_evidence = sniff_dialect(text)
        records = parse_records(text, delimiter, quote)
        if not sample.whole_file and records:
            records = records[:-1]  # the sample may end inside the last record
        if not records:
            raise DescribeError("has no records to describe")
        header, why = looks_like_header(records[0])
        format_keys += [("header", header, why), ("delimiter", delimiter, dialect_evidence), ("quote", quote, None)]
        if header:
            names = field_names(records[0])
            texts = {}
            for position, cell in enumerate(records[0], start=1):
                other = texts.setdefault(cell.strip().lower(), position)
                if other != position:
                    raise DescribeError(
                        f"header columns {other} and {position} are both {cell.strip()!r}; rename one so a filespec can tell them apart"
                    )
            records = records[1:]
        else:
            names = [(f"column_{i}", None) for i in range(1, len(records[0]) + 1)]
        records = records[:sample_rows]
        positions = [None] * len(names)
        wrong = sum(1 for record in records if len(record) != len(names))
        if wrong:
            notes.append(
                f"{wrong:,} of {len(records):,} records do not have {len(names)} cells: they will be rejected (rule field_count)"
            )
    profiles = [ColumnProfile() for _ in names]
    for record in records:
        if len(record) != len(names):
            continue
        for profile, cell in zip(profiles, record, strict=True):
            profile.add(cell)
    fields = [infer_field(name, source, profile, position)
              for (name, source), profile, position in zip(names, profiles, positions, strict=True)]  # fmt: skip
    sampled = len(records)
    notes.insert(
        0,
        f"{sampled:,} records sampled"
        + (" (the whole file)" if sample.whole_file else f" (the first; --sample-rows {sample_rows:,})"),
    )
    return Draft(form_type, str(kind), encoding, sampled, fields, format_keys, notes, str(path))


def _guess_kind(text: str) -> str:
    """Delimited when some delimiter splits the first records evenly, else fixed width."""
    _, _, evidence = sniff_dialect(text)
    return FormatKind.FIXED_WIDTH.value if evidence == NO_DELIMITER else FormatKind.DELIMITED.value


# --- writing the YAML ---------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_ .@/+-]*")
_YAML_WORDS = {"null", "~", "true", "false", "yes", "no", "on", "off", "y", "n"}


def yaml_scalar(value: object) -> str:
    """A YAML scalar that every YAML reader (and our text-keeping loader) reads back as this text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if (
        _PLAIN.fullmatch(text)
        and text.lower() not in _YAML_WORDS
        and not text.endswith(" ")
        and ": " not in text
        and " #" not in text
    ):
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _line(indent: str, key: str, value: object, evidence: str | None) -> str:
    if isinstance(value, list):
        rendered = "[" + ", ".join(yaml_scalar(item) for item in value) + "]"
    else:
        rendered = yaml_scalar(value)
    line = f"{indent}{key}: {rendered}"
    return f"{line}  # {evidence}" if evidence else line


def render_yaml(draft: Draft, out: Path) -> str:
    """The draft as a commented filespec YAML, referencing the JSON Schema for editors."""
    folder = Path(out).resolve().parent
    # Relative within the project (its filespecs/ say ../ingest_pipeline/...), else absolute.
    schema = os.path.relpath(SCHEMA_PATH, folder) if folder.is_relative_to(PROJECT_ROOT) else str(SCHEMA_PATH)
    lines = [
        f"# yaml-language-server: $schema={schema}",
        f"# Draft filespec inferred by `ingest-pipeline describe` from {Path(draft.source).name}: {draft.notes[0]}.",
        *(f"# Note: {note}." for note in draft.notes[1:]),
        "# Every rule below is what the whole sample meets; its comment is the evidence. Review them, then",
        f"# check the draft on a file with `ingest-pipeline check-spec {Path(out).name} --sample FILE`.",
        f"form_type: {draft.form_type}",
        "version: 1",
        "format:",
        *(_line("  ", key, value, evidence) for key, value, evidence in draft.format_keys),
        "fields:",
    ]
    for inferred in draft.fields:
        for index, (key, value, evidence) in enumerate(inferred.keys):
            lines.append(_line("  - " if index == 0 else "    ", key, value, evidence))
    return "\n".join(lines) + "\n"
