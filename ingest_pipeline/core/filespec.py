"""The filespec contract (shared/spec/filespec.md) as pydantic models, and loading it from YAML.

A filespec is written by hand, so every mistake in one must come back as a single sentence
naming the file, the key and the problem. YAML is read with every scalar kept as text (PyYAML's
BaseLoader, plus YAML's nulls): `enum: [yes, no, 01]` then means the texts "yes", "no" and "01",
as a user means them, and pydantic turns the keys that are numbers or booleans into those types.
Beyond the models, loading refuses what YAML or the models would otherwise take silently: a key
given twice in one mapping (YAML keeps the last), a binary or non-UTF-8 file, numbers beyond
what they are stored in (`version` is 32-bit, integer bounds 64-bit, decimal bounds the contract's
digits within a double's range), and `header` / `delimiter` / `quote` written for a fixed-width file.
"""

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ingest_pipeline.core.errors import FilespecError, UnknownFormTypeError

FORM_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*")
FIELD_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TABLE_NAME_RE = re.compile(r"[A-Za-z0-9_\-]+")  # a reference table: one file name, never a path
LOOKUP_RE = re.compile(rf"(ref|company)\.({TABLE_NAME_RE.pattern})\.(.+)")
ENRICH_LOOKUP_RE = re.compile(rf"(ref|company)\.({TABLE_NAME_RE.pattern})")
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252")
DEFAULT_DATE_FORMAT = "%Y-%m-%d"
DEFAULT_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
DEFAULT_TRUE_TEXTS = ("true", "yes", "y", "1")
DEFAULT_FALSE_TEXTS = ("false", "no", "n", "0")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1  # `version` is stored in an INTEGER column; counts and positions stay far below
INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
DECIMAL_TEXT = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")  # the contract's decimal: no exponent, NaN or infinity
DELIMITED_ONLY_KEYS = ("header", "delimiter", "quote")


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class FormatKind(StrEnum):
    DELIMITED = "delimited"
    FIXED_WIDTH = "fixed_width"


class _Strict(BaseModel):
    # Unknown keys are an error: a typo must not silently disable a rule.
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordFormat(_Strict):
    """How the records of an upload are laid out (the `format` mapping)."""

    kind: FormatKind = FormatKind.DELIMITED
    encoding: str = "utf-8"
    header: bool = True
    delimiter: str = ","
    quote: str = '"'
    skip_rows: int = 0

    @field_validator("encoding", mode="before")
    @classmethod
    def _known_encoding(cls, value: Any) -> str:
        text = str(value).strip().lower().replace("_", "-")
        text = {"utf8": "utf-8", "latin1": "latin-1", "iso-8859-1": "latin-1"}.get(text, text)
        if text not in ENCODINGS:
            raise ValueError(f"must be one of {', '.join(ENCODINGS)}, not {value!r}")
        return text

    @field_validator("delimiter", "quote")
    @classmethod
    def _one_ascii_character(cls, value: str) -> str:
        # The tokenizer works on bytes; one ASCII byte is the same byte in every encoding we read.
        if len(value) != 1 or not value.isascii() or value in "\r\n":
            raise ValueError(f"must be one ASCII character other than a line break, not {value!r}")
        return value

    @field_validator("skip_rows")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 or more")
        return _at_most_int32(value)

    @model_validator(mode="after")
    def _delimiter_differs_from_quote(self) -> "RecordFormat":
        if self.delimiter == self.quote:
            raise ValueError("delimiter and quote must be different characters")
        return self

    @property
    def has_header(self) -> bool:
        return self.kind == FormatKind.DELIMITED and self.header


class FieldSpec(_Strict):
    """One column of the upload and the rules each of its cells must meet."""

    name: str
    source: str | None = None
    start: int | None = None
    width: int | None = None
    type: FieldType = FieldType.STRING
    format: str | dict[str, list[str]] | None = None
    required: bool = False
    unique: bool = False
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    enum: list[str] | None = None
    minimum: str | None = None
    maximum: str | None = None
    lookup: str | None = None
    severity: Severity = Severity.ERROR
    trim: bool = True
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not FIELD_NAME_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid name ([A-Za-z_][A-Za-z0-9_]*)")
        return value

    @field_validator("start", "width")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("must be 1 or more")
        return _at_most_int32(value)

    @field_validator("min_length", "max_length")
    @classmethod
    def _length(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("must be 0 or more")
        return _at_most_int32(value)

    @field_validator("pattern")
    @classmethod
    def _portable_regex(cls, value: str | None) -> str | None:
        if value is not None:
            check_pattern_dialect(value)
        return value

    @field_validator("enum")
    @classmethod
    def _non_empty_enum(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("must list at least one allowed value")
        return value

    @field_validator("lookup")
    @classmethod
    def _lookup_target(cls, value: str | None) -> str | None:
        if value is not None and not LOOKUP_RE.fullmatch(value):
            raise ValueError(f"{value!r} must be ref.<table>.<column> or company.<table>.<column>")
        return value

    @model_validator(mode="after")
    def _rules_fit_the_type(self) -> "FieldSpec":
        if self.type in (FieldType.STRING, FieldType.BOOLEAN):
            for key in ("minimum", "maximum"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} applies to integer, decimal, date and datetime fields, not {self.type.value}")
        if self.format is not None:
            if self.type in (FieldType.DATE, FieldType.DATETIME) and not isinstance(self.format, str):
                raise ValueError("format of a date or datetime field must be a strftime pattern such as %Y-%m-%d")
            if self.type == FieldType.BOOLEAN and not isinstance(self.format, dict):
                raise ValueError("format of a boolean field must be a mapping {true: [...], false: [...]}")
            if self.type not in (FieldType.DATE, FieldType.DATETIME, FieldType.BOOLEAN):
                raise ValueError(f"format applies to date, datetime and boolean fields, not {self.type.value}")
        if self.type == FieldType.BOOLEAN and isinstance(self.format, dict):
            keys = {str(k).strip().lower() for k in self.format}
            if keys != {"true", "false"} or len(self.format) != 2:  # `true` and `True` too: one would be lost
                raise ValueError("format of a boolean field must have exactly the keys true and false")
        if self.type in (FieldType.DATE, FieldType.DATETIME):
            _check_strftime(self.date_format)
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise ValueError("min_length is greater than max_length")
        low, high = self.bound("minimum"), self.bound("maximum")
        if low is not None and high is not None and low > high:
            raise ValueError("minimum is greater than maximum")
        return self

    @property
    def header_text(self) -> str:
        """What a header cell must say (case-insensitively, trimmed) to be this field."""
        return (self.source if self.source is not None else self.name).strip().lower()

    @property
    def date_format(self) -> str:
        if isinstance(self.format, str):
            return self.format
        return DEFAULT_DATETIME_FORMAT if self.type == FieldType.DATETIME else DEFAULT_DATE_FORMAT

    @property
    def boolean_texts(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The lower-cased texts read as true and as false."""
        if isinstance(self.format, dict):
            by_key = {str(k).strip().lower(): v for k, v in self.format.items()}
            return (
                tuple(str(t).strip().lower() for t in by_key["true"]),
                tuple(str(t).strip().lower() for t in by_key["false"]),
            )
        return DEFAULT_TRUE_TEXTS, DEFAULT_FALSE_TEXTS

    def bound(self, key: str) -> int | Decimal | dt.date | dt.datetime | None:
        """`minimum` or `maximum` in the field's type (ISO text or the field's own format)."""
        text = getattr(self, key)
        if text is None:
            return None
        text = text.strip()
        try:
            if self.type == FieldType.INTEGER:
                if not INTEGER_TEXT.fullmatch(text):
                    raise ValueError
                value = int(text)
                if not INT64_MIN <= value <= INT64_MAX:
                    raise _OutOfRange(f"{key} {text!r} is outside the 64-bit range of an integer field")
                return value
            if self.type == FieldType.DECIMAL:
                # The cell text a decimal accepts, and within the range of the values it becomes.
                if not DECIMAL_TEXT.fullmatch(text):
                    raise ValueError
                value = Decimal(text)
                if not math.isfinite(float(value)):
                    raise _OutOfRange(f"{key} {text!r} is beyond the range of a decimal field (about 1.8e308)")
                return value
            if self.type == FieldType.DATE:
                return _parse_date_bound(text, self.date_format, datetime=False)
            if self.type == FieldType.DATETIME:
                return _parse_date_bound(text, self.date_format, datetime=True)
        except _OutOfRange:
            raise
        except (ValueError, InvalidOperation):
            raise ValueError(f"{key} {text!r} is not a valid {self.type.value}") from None
        return None

    @property
    def lookup_parts(self) -> tuple[str, str, str] | None:
        """(scope, table, column) of `lookup`, scope being `ref` or `company`."""
        if self.lookup is None:
            return None
        scope, table, column = LOOKUP_RE.fullmatch(self.lookup).groups()
        return scope, table, column


class EnrichSpec(_Strict):
    """Columns added to each row from a reference table (`enrich[]`)."""

    lookup: str
    on: dict[str, str]
    add: dict[str, str]
    required: bool = False

    @field_validator("lookup")
    @classmethod
    def _table(cls, value: str) -> str:
        if not ENRICH_LOOKUP_RE.fullmatch(value):
            raise ValueError(f"{value!r} must be ref.<table> or company.<table>")
        return value

    @field_validator("on", "add")
    @classmethod
    def _non_empty(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("must map at least one column")
        return value

    @property
    def scope_and_table(self) -> tuple[str, str]:
        scope, table = ENRICH_LOOKUP_RE.fullmatch(self.lookup).groups()
        return scope, table


class Quality(_Strict):
    """Quality gate settings."""

    max_error_rate: float | None = None
    # Share of the first records (up to 256 KiB) that must have the layout's shape (delimited: the
    # cell count; fixed width: reaching the last field), else the upload fails at once (rule
    # `layout`) without a record scanned. 0 turns the check off. An extension of the contract.
    min_layout_match: float = 0.5

    @field_validator("max_error_rate", "min_layout_match")
    @classmethod
    def _rate(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value <= 1:
            raise ValueError("must be between 0 and 1")
        return value


class FileSpec(_Strict):
    """One form type: its layout and the rules of every record and cell."""

    form_type: str
    title: str | None = None
    version: int = 1
    format: RecordFormat = RecordFormat()
    fields: list[FieldSpec]
    enrich: list[EnrichSpec] = []
    quality: Quality = Quality()

    @field_validator("form_type")
    @classmethod
    def _form_type_id(cls, value: str) -> str:
        if not FORM_TYPE_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid form type id ([a-z][a-z0-9_]*)")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be 1 or more")
        return _at_most_int32(value)

    @field_validator("fields")
    @classmethod
    def _at_least_one(cls, value: list[FieldSpec]) -> list[FieldSpec]:
        if not value:
            raise ValueError("must list at least one field")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "FileSpec":
        seen: set[str] = set()
        for index, spec in enumerate(self.fields):
            if spec.name in seen:
                raise _located(("fields", index, "name"), f"{spec.name!r} is used by two fields")
            seen.add(spec.name)
            if self.format.kind == FormatKind.FIXED_WIDTH and (spec.start is None or spec.width is None):
                missing = "start" if spec.start is None else "width"
                raise _located(("fields", index, missing), "is required for a fixed_width field")
        if self.format.has_header:
            by_header: dict[str, str] = {}
            for index, spec in enumerate(self.fields):
                other = by_header.setdefault(spec.header_text, spec.name)
                if other != spec.name:
                    raise _located(("fields", index, "source"), f"header text {spec.header_text!r} is also field {other!r}'s")
        added: set[str] = set()
        for index, enrich in enumerate(self.enrich):
            for field_name in enrich.on:
                if field_name not in seen:
                    raise _located(("enrich", index, "on"), f"{field_name!r} is not a field of this filespec")
            for column in enrich.add:
                if not FIELD_NAME_RE.fullmatch(column):
                    raise _located(("enrich", index, "add"), f"{column!r} is not a valid column name")
                if column in seen or column in added:
                    raise _located(("enrich", index, "add"), f"{column!r} is already a column of the result")
                added.add(column)
        return self

    def field(self, name: str) -> FieldSpec:
        return next(spec for spec in self.fields if spec.name == name)

    @property
    def enrich_columns(self) -> list[str]:
        return [column for enrich in self.enrich for column in enrich.add]

    @property
    def reference_tables(self) -> list[tuple[str, str]]:
        """(scope, table) of every reference table the filespec reads, in first-use order."""
        tables: list[tuple[str, str]] = []
        for spec in self.fields:
            if spec.lookup_parts and spec.lookup_parts[:2] not in tables:
                tables.append(spec.lookup_parts[:2])
        for enrich in self.enrich:
            if enrich.scope_and_table not in tables:
                tables.append(enrich.scope_and_table)
        return tables


class _OutOfRange(ValueError):
    """A bound written well but beyond what the field's values can be."""


class _LocatedError(ValueError):
    """A validation error that knows its own location below the model raising it."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc = loc


def _located(loc: tuple, message: str) -> _LocatedError:
    return _LocatedError(loc, message)


def _at_most_int32(value: int | None) -> int | None:
    if value is not None and value > INT32_MAX:
        raise ValueError(f"must be at most {INT32_MAX}")
    return value


def _parse_date_bound(text: str, fmt: str, datetime: bool) -> dt.date | dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        value = dt.datetime.strptime(text, fmt)
    return value if datetime else value.date()


def _check_strftime(fmt: str) -> None:
    if "%" not in fmt:
        raise ValueError(f"format {fmt!r} has no strftime directive such as %Y")
    # The directives of Python's strptime that read a definite value (no locale-dependent %c %x %X).
    unknown = set(re.findall(r"%(.)", fmt)) - set("aAbBdHIjmMpSyYfz%")
    if unknown:
        raise ValueError(f"format {fmt!r} uses directives this pipeline does not read: %{', %'.join(sorted(unknown))}")


# Constructs of Python `re` that RE2 lacks (or the reverse); the contract's dialect is the subset.
_NON_PORTABLE_GROUPS = {
    "(?=": "look-ahead",
    "(?!": "negative look-ahead",
    "(?<=": "look-behind",
    "(?<!": "negative look-behind",
    "(?P=": "a named back-reference",
    "(?(": "a conditional group",
    "(?>": "an atomic group",
    "(?#": "a comment group",
}


def check_pattern_dialect(pattern: str) -> None:
    """Raise ValueError when `pattern` is outside the common subset of Python `re` and RE2."""
    for opener, what in _NON_PORTABLE_GROUPS.items():
        if opener in _strip_escapes(pattern):
            raise ValueError(f"pattern {pattern!r} uses {what}, which the regex dialect (Python re ∩ RE2) does not allow")
    index, in_class, class_start = 0, False, 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if escaped.isdigit() and escaped != "0" or escaped in "gkZz":
                raise ValueError(f"pattern {pattern!r} uses \\{escaped}, which the regex dialect (Python re ∩ RE2) does not allow")
            index += 2
            continue
        if in_class:
            if char == "]" and index > class_start:  # a ']' first in the class is a literal ']' in both
                in_class = False
            elif char == "[":
                # RE2 reads [[:digit:]] as a POSIX class, Python re as '[', ':', 'd', ... then ']'.
                raise ValueError(
                    f"pattern {pattern!r} has '[' inside a character class (a POSIX class such as [[:digit:]], "
                    "or a nested set), which Python re and RE2 read differently; write \\[ for a literal '['"
                )
        elif char == "[":
            in_class = True
            class_start = index + 1 + pattern.startswith("^", index + 1)
        elif not in_class and char == "+" and index > 0 and pattern[index - 1] in "*+?}" and not _escaped(pattern, index - 1):
            raise ValueError(f"pattern {pattern!r} uses a possessive quantifier, which the regex dialect does not allow")
        elif not in_class and pattern.startswith("(?", index):
            flags = re.match(r"\(\?([a-zA-Z\-]*)[:)]", pattern[index:])
            if flags and set(flags.group(1)) - set("ims-"):
                raise ValueError(f"pattern {pattern!r} uses inline flags other than i, m and s")
        index += 1
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {error}") from None


def _strip_escapes(pattern: str) -> str:
    return re.sub(r"\\.", "__", pattern)


def _escaped(pattern: str, index: int) -> bool:
    backslashes = 0
    while index - 1 - backslashes >= 0 and pattern[index - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _format_location(loc: tuple, raw: Any) -> str:
    """('fields', 2, 'pattern') -> 'fields[2] (email).pattern', naming the field when it can."""
    text = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            if isinstance(node, list) and part < len(node):
                node = node[part]
                if isinstance(node, dict) and "name" in node:
                    text += f" ({node['name']})"
            else:
                node = None
        else:
            text += f".{part}" if text else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return text


_MODEL_AT = {"format": RecordFormat, "fields": FieldSpec, "enrich": EnrichSpec, "quality": Quality}


def _suggestion(loc: tuple, raw: Any) -> str:
    """The hint "did you mean 'fields'? " for an unknown key close to a key of its mapping, else ""."""
    import difflib

    parents = [part for part in loc[:-1] if isinstance(part, str)]
    model = _MODEL_AT.get(parents[-1], FileSpec) if parents else FileSpec
    close = difflib.get_close_matches(str(loc[-1]).lower(), list(model.model_fields), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def parse_filespec(raw: Any, origin: str) -> FileSpec:
    """Build a FileSpec from parsed YAML; errors name `origin`, the key and the problem."""
    if not isinstance(raw, dict):
        raise FilespecError(f"{origin}: a filespec must be a YAML mapping with form_type, format and fields")
    try:
        spec = FileSpec.model_validate(raw)
    except ValidationError as error:
        errors = error.errors()
        # An unknown key explains the rest: `feilds:` is why `fields` is missing.
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = tuple(part for part in first["loc"] if part not in ("function-after", "function-before"))
        message = first["msg"].removeprefix("Value error, ")
        context = first.get("ctx", {}).get("error")
        if isinstance(context, _LocatedError):
            loc = loc + context.loc
        if first["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r} ({_suggestion(loc, raw)}a typo would silently disable a rule)"
            loc = loc[:-1]
        elif first["type"] == "missing":
            message = "is required"
        where = _format_location(loc, raw) or "top level"
        raise FilespecError(f"{origin}: {where}: {message}") from None
    # Written for a fixed-width file, these would be silently ignored: a sign of a mistake. (Checked
    # on what the user wrote, not in the model, which a dump with every default must load again.)
    written_format = raw.get("format")
    if spec.format.kind == FormatKind.FIXED_WIDTH and isinstance(written_format, dict):
        for key in DELIMITED_ONLY_KEYS:
            if key in written_format:
                raise FilespecError(f"{origin}: format.{key}: applies to delimited files only, not to kind fixed_width")
    return spec


def load_filespec(path: str | Path, *, named_by_form_type: bool = True) -> FileSpec:
    """Read and validate one filespec YAML file; every problem is one line naming the file.

    `named_by_form_type=False` reads a filespec kept under any name (payroll.v1.yaml, for spec-diff)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FilespecError(f"{path}: no such filespec file") from None
    except OSError as error:
        raise FilespecError(f"{path}: cannot be read ({error.strerror or error})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FilespecError(f"{path}: is UTF-16 text; a filespec is a UTF-8 YAML file")
    if b"\x00" in data:
        raise FilespecError(f"{path}: is a binary file (byte 0x00 at offset {data.index(0)}), not a YAML filespec")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FilespecError(
            f"{path}: is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "a filespec is a UTF-8 YAML file"
        ) from None
    try:
        raw = yaml.load(text, Loader=FilespecLoader)
    except _DuplicateKeyError as error:
        raise FilespecError(f"{path}: line {error.problem_mark.line + 1}: {error.problem}") from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        raise FilespecError(
            f"{path}: line {line}: holds the character #x{error.character:04x}, which YAML does not allow "
            "(is it a binary file?)"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())  # one line
        raise FilespecError(f"{path}: not valid YAML{where}: {problem}") from None
    spec = parse_filespec(raw, str(path))
    if named_by_form_type and spec.form_type != path.stem:
        raise FilespecError(f"{path}: form_type {spec.form_type!r} must equal the file's name {path.stem!r}")
    return spec


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that names a key twice; YAML would silently keep only the last."""


class FilespecLoader(yaml.BaseLoader):
    """YAML with every scalar kept as text, except YAML's nulls (`~`, `null`, nothing) when unquoted.

    A key given twice in one mapping is an error: YAML keeps the last silently, which is exactly
    the typo (a rule written twice, the first lost) that the contract forbids.
    """

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # an unhashable key: the base constructor says so
                if duplicate:
                    raise _DuplicateKeyError(
                        None, None, f"duplicate key {key!r} (YAML would silently keep only the last one)",
                        key_node.start_mark,
                    )  # fmt: skip
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


FilespecLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
FilespecLoader.add_constructor("tag:yaml.org,2002:null", lambda loader, node: None)


def filespec_path(form_type: str, filespecs_dir: str | Path) -> Path:
    return Path(filespecs_dir) / f"{form_type}.yaml"


def load_form_type(form_type: str, filespecs_dir: str | Path) -> FileSpec:
    """The filespec of `form_type` in `filespecs_dir`, or UnknownFormTypeError listing the known ones."""
    path = filespec_path(form_type, filespecs_dir)
    if not FORM_TYPE_RE.fullmatch(form_type) or not path.is_file():
        known = ", ".join(sorted(p.stem for p in Path(filespecs_dir).glob("*.yaml"))) or "none"
        raise UnknownFormTypeError(f"unknown form type {form_type!r}: no {path} (known form types: {known})")
    return load_filespec(path)


def load_other_form_types(form_type: str, filespecs_dir: str | Path) -> list[FileSpec]:
    """Every other form type's filespec that loads (a broken one elsewhere is not this upload's
    problem): what a file that does not look like its own form type is compared with."""
    specs = []
    for path in sorted(Path(filespecs_dir).glob("*.yaml")):
        if path.stem != form_type:
            try:
                specs.append(load_filespec(path))
            except FilespecError:
                continue
    return specs

