"""How every cell is judged (filespec.md), as pandera schemas generated from a filespec.

For each field the chunk frame holds its text (trimmed unless `trim: false`; empty text is null)
under the field's name and its converted value under `typed:<name>`. The generated schema has one
pandera Column per field: `required` is pandera's nullability, and every other rule is a named
Check whose expression passes nulls and cells that failed `type`, as the contract skips them.
The frame is validated eagerly (pandera checks only the schema of a LazyFrame by default) and
each failure case becomes one `messages` row. Uniqueness is judged later, across the upload.
"""

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from ingest_pipeline.core.filespec import FieldSpec, FieldType, FileSpec, Severity
from ingest_pipeline.core.regex_gen import example_value

MESSAGE_SCHEMA = {
    "row_number": pl.Int64,
    "line_number": pl.Int64,
    "field": pl.String,
    "rule": pl.String,
    "severity": pl.String,
    "value": pl.String,
    "message": pl.String,
}
VALUE_LIMIT = 200  # characters of a cell kept in `messages.value`
QUOTED_VALUE_LIMIT = 80  # characters of a cell quoted inside a message sentence
CELL_RULES = ("required", "type", "min_length", "max_length", "pattern", "enum", "minimum", "maximum", "lookup")

POLARS_TYPES = {
    FieldType.STRING: pl.String,
    FieldType.INTEGER: pl.Int64,
    FieldType.DECIMAL: pl.Float64,
    FieldType.DATE: pl.Date,
    FieldType.DATETIME: pl.Datetime("us"),
    FieldType.BOOLEAN: pl.Boolean,
}
INTEGER_TEXT = r"^[+-]?[0-9]+$"
DECIMAL_TEXT = r"^[+-]?[0-9]+(\.[0-9]+)?$"


def typed_column(name: str) -> str:
    return f"typed:{name}"


def empty_messages() -> pl.DataFrame:
    return pl.DataFrame(schema=MESSAGE_SCHEMA)


# --- conversion -------------------------------------------------------------------------------


def cell_text(raw: pl.Expr, field: FieldSpec, trim: bool = True) -> pl.Expr:
    """Step 2 of judging a cell: trim (unless trim is false); empty text is null. `trim=False`
    when the caller knows that no cell has whitespace to trim (records.cells_may_need_trimming)."""
    text = raw.str.strip_chars() if field.trim and trim else raw
    return text.replace("", None)  # as when/then/otherwise, at half the cost


def converted(text: pl.Expr, field: FieldSpec) -> pl.Expr:
    """Step 4: the cell converted to the field's type; null when null or not convertible."""
    if field.type == FieldType.STRING:
        return text
    if field.type == FieldType.INTEGER:
        # Rust's i64 parsing reads exactly INTEGER_TEXT (ASCII digits after an optional sign) and
        # gives null outside 64 bits, which the contract also calls a type error; 3.5 ms per 500k
        # cells instead of 21 ms for the regular expression and a cast.
        return text.str.to_integer(base=10, strict=False)
    if field.type == FieldType.DECIMAL:
        return pl.when(text.str.contains(DECIMAL_TEXT)).then(text.cast(pl.Float64, strict=False))
    if field.type == FieldType.BOOLEAN:
        true_texts, false_texts = field.boolean_texts
        lowered = text.str.to_lowercase()
        return (
            pl.when(lowered.is_in(list(true_texts)))
            .then(pl.lit(True))
            .when(lowered.is_in(list(false_texts)))
            .then(pl.lit(False))
        )
    # Dates are read strictly: valid only if formatting the parsed value gives the text back.
    dtype = POLARS_TYPES[field.type]
    fmt = field.date_format
    if PYTHON_ONLY_DIRECTIVES.intersection(re.findall(r"%.", fmt)):
        return text.map_batches(lambda texts: python_dates(texts, fmt, dtype), return_dtype=dtype)
    chrono_fmt = re.sub(r"%(.)", lambda m: "%6f" if m.group(1) == "f" else m.group(0), fmt)
    parsed = text.str.strptime(dtype, chrono_fmt, strict=False, exact=True)
    # As Python reads them: it has no year 0 (chrono does), and its %Y writes the years before 1000
    # with fewer than four digits, so their four-digit texts never give themselves back.
    in_python_range = parsed.dt.year() >= (1000 if "%Y" in fmt else 1)
    return pl.when((parsed.dt.strftime(chrono_fmt) == text) & in_python_range).then(parsed)


REPEAT_SAMPLE_ROWS = 8192


def converted_once_per_value(texts: pl.Series, field: FieldSpec) -> pl.Expr:
    """`converted` for a column whose values repeat, as dates do: each distinct text is read (and
    written back, for the strict round trip) once and the answers are mapped onto the rows. An
    expression over the column (`texts` is its content), to evaluate in its frame: a Series of
    another chunking set into the frame made polars copy every column later (measured: +200 MiB
    peak per 496k-row chunk).

    Measured on a 496k-row roster chunk of 12,000 dates (5,977 distinct in its first 8,192 rows):
    46 ms instead of 99. A column whose first rows are nearly all distinct (over 90%) is converted
    cell by cell, where the mapping would only add work. (Gathering the answers by the codes of an
    Enum cast is faster, 19 ms, but its one-chunk result also made polars copy the frame: +200 MiB.)"""
    column, name = pl.col(texts.name), typed_column(field.name)
    head = texts.head(REPEAT_SAMPLE_ROWS)
    if head.n_unique() * 10 > max(head.len(), 1) * 9:
        return converted(column, field).alias(name)
    distinct = texts.drop_nulls().unique()
    values = distinct.to_frame().select(converted(column, field)).to_series()
    return column.replace_strict(distinct, values, default=None, return_dtype=POLARS_TYPES[field.type]).alias(name)


# Polars reads dates with Rust's chrono, which agrees with Python's strptime on every directive
# the filespec allows except these: %y pivots its century elsewhere, %z yields aware values.
PYTHON_ONLY_DIRECTIVES = {"%y", "%z"}


def python_dates(texts: pl.Series, fmt: str, dtype: pl.DataType) -> pl.Series:
    """Strict strptime round trip in Python, once per distinct text; aware values become UTC."""
    values = {}
    for text in texts.drop_nulls().unique().to_list():
        try:
            value = dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        if value.strftime(fmt) != text:
            continue
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        values[text] = value.date() if dtype == pl.Date else value
    return texts.replace_strict(values, default=None, return_dtype=dtype)


# --- the generated schema ---------------------------------------------------------------------


def _check(name: str, passes: Callable[[], pl.Expr]) -> pa.Check:
    def run(data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(passes().alias(name))

    return pa.Check(run, name=name)


def _bound_literal(field: FieldSpec, key: str) -> pl.Expr:
    value = field.bound(key)
    if isinstance(value, Decimal):
        return pl.lit(float(value))
    if isinstance(value, dt.datetime):
        return pl.lit(value, dtype=pl.Datetime("us"))
    return pl.lit(value)


def field_checks(field: FieldSpec, lookup_values: pl.Series | None) -> list[pa.Check]:
    """The named checks of one field; each passes what the contract says it must not judge."""
    text, typed = pl.col(field.name), pl.col(typed_column(field.name))
    skipped = text.is_null() | typed.is_null()  # null cells and cells that failed `type`
    checks = []
    if field.type != FieldType.STRING:
        checks.append(_check("type", lambda: text.is_null() | typed.is_not_null()))
    if field.min_length is not None:
        checks.append(_check("min_length", lambda: skipped | (text.str.len_chars() >= field.min_length)))
    if field.max_length is not None:
        checks.append(_check("max_length", lambda: skipped | (text.str.len_chars() <= field.max_length)))
    if field.pattern is not None:
        # \A and \z anchor the whole text in the regex engine polars uses (Rust regex, RE2-like).
        whole = rf"\A(?:{field.pattern})\z"
        checks.append(_check("pattern", lambda: skipped | text.str.contains(whole)))
    if field.enum is not None:
        checks.append(_check("enum", lambda: skipped | text.is_in(field.enum)))
    if field.minimum is not None:
        checks.append(_check("minimum", lambda: skipped | (typed >= _bound_literal(field, "minimum"))))
    if field.maximum is not None:
        checks.append(_check("maximum", lambda: skipped | (typed <= _bound_literal(field, "maximum"))))
    if lookup_values is not None:
        checks.append(_check("lookup", lambda: skipped | text.is_in(lookup_values.implode())))
    return checks


def build_schema(spec: FileSpec, lookup_values: dict[str, pl.Series]) -> pa.DataFrameSchema:
    """The pandera schema of a filespec's chunk frame (text columns named by field)."""
    columns = {
        field.name: pa.Column(
            pl.String,
            nullable=not field.required,
            checks=field_checks(field, lookup_values.get(field.name)),
        )
        for field in spec.fields
    }
    return pa.DataFrameSchema(columns, strict=False, name=spec.form_type)


# --- message sentences ------------------------------------------------------------------------

_STRFTIME_WORDS = {
    "%Y": "YYYY", "%y": "YY", "%m": "MM", "%d": "DD", "%H": "hh", "%I": "hh", "%M": "mm", "%S": "ss",
    "%b": "Mon", "%B": "Month", "%p": "AM/PM", "%j": "DDD", "%f": "ffffff", "%a": "Day", "%A": "Weekday",
    "%z": "+hhmm", "%Z": "TZ", "%e": "D", "%T": "hh:mm:ss", "%%": "%",
}  # fmt: skip


def human_date_format(fmt: str) -> str:
    text = fmt
    for code, word in _STRFTIME_WORDS.items():
        text = text.replace(code, word)
    return text


def _listing(values: list[str], most: int = 12) -> str:
    shown = ", ".join(values[:most])
    return shown + (f" (and {len(values) - most} more)" if len(values) > most else "")


def field_label(field: FieldSpec) -> str:
    return f"Field '{field.name}'"


def say(*parts: str | pl.Expr) -> pl.Expr:
    """A sentence from literal text and expressions (no format string: user text may hold braces)."""
    return pl.concat_str([pl.lit(part) if isinstance(part, str) else part for part in parts])


def rule_sentence(field: FieldSpec, rule: str) -> Callable[[pl.Expr], pl.Expr]:
    """The message of a broken cell rule, as an expression over the quoted cell text."""
    label = field_label(field)
    if rule == "required":
        return lambda value: pl.lit(f"{label} is required but is empty.")
    if rule == "type":
        if field.type in (FieldType.DATE, FieldType.DATETIME):
            return _date_type_sentence(field)
        expectation = {
            FieldType.INTEGER: "a whole number (digits with an optional sign)",
            FieldType.DECIMAL: "a number such as 1234.56 (no thousands separators, currency signs or exponent)",
            FieldType.BOOLEAN: "one of " + _listing([*field.boolean_texts[0], *field.boolean_texts[1]]),
        }[field.type]
        return lambda value: say(f"{label} must be {expectation}, but is '", value, "'.")
    if rule in ("min_length", "max_length"):
        word = "at least" if rule == "min_length" else "at most"
        limit = getattr(field, rule)
        return lambda value: say(
            f"{label} must be {word} {limit} characters long, but '", value, "' has ",
            value.str.len_chars().cast(pl.String), ".",
        )  # fmt: skip
    if rule == "pattern":
        expected = pattern_expectation(field)
        return lambda value: say(f"{label} does not have the expected form ({expected}): '", value, "'.")
    if rule == "enum":
        return lambda value: say(f"{label} must be one of {_listing(field.enum)}, but is '", value, "'.")
    if rule in ("minimum", "maximum"):
        word = "at least" if rule == "minimum" else "at most"
        return lambda value: say(f"{label} must be {word} {getattr(field, rule)}, but is '", value, "'.")
    if rule == "lookup":
        scope, table, column = field.lookup_parts
        where = f"the shared {table} list ({column})" if scope == "ref" else f"your company's {table} list ({column})"
        return lambda value: say(f"{label} '", value, f"' is not a known value: it is not in {where}.")
    raise ValueError(f"no sentence for rule {rule!r}")  # a bug: every cell rule has one


def pattern_expectation(field: FieldSpec) -> str:
    """What a `pattern` asks for, in words a client reads: the field's `description`, else an
    example value made from the pattern ("text like E12345678"); never the regular expression."""
    if field.description:
        return field.description
    example = pattern_example(field.pattern or "", field.min_length, field.max_length)
    return f"text like {example}" if example is not None else "text of the form this field requires"


@functools.cache
def pattern_example(pattern: str, min_length: int | None, max_length: int | None) -> str | None:
    return example_value(pattern, min_length, max_length)


# The text each strftime directive writes (Python pads every number), as a regular expression that
# Python `re` and Rust's regex read alike. A text of that shape which still fails to read is a
# date written the right way that does not exist (29.02.2001, 31.04.2024, 25:00).
_DIRECTIVE_SHAPES = {
    "%Y": "[1-9][0-9]{3}", "%y": "[0-9]{2}", "%m": "[0-9]{2}", "%d": "[0-9]{2}", "%H": "[0-9]{2}",
    "%I": "[0-9]{2}", "%M": "[0-9]{2}", "%S": "[0-9]{2}", "%j": "[0-9]{3}", "%f": "[0-9]{6}",
    "%p": "(?:AM|PM)", "%z": "[+-][0-9]{4}", "%%": "%",
    **{code: "(?:" + "|".join(dt.date(2024, 1, 1 + day).strftime(code) for day in range(7)) + ")" for code in ("%a", "%A")},
    **{code: "(?:" + "|".join(dt.date(2024, month, 1).strftime(code) for month in range(1, 13)) + ")" for code in ("%b", "%B")},
}  # fmt: skip


@functools.cache
def date_shape(fmt: str) -> str | None:
    """A regular expression (unanchored) for the text that `fmt` writes, or None when `fmt` has
    a directive of no fixed shape."""
    parts = []
    for piece in re.split(r"(%.)", fmt):
        if piece.startswith("%") and len(piece) == 2:
            if piece not in _DIRECTIVE_SHAPES:
                return None
            parts.append(_DIRECTIVE_SHAPES[piece])
        elif piece:
            parts.append(re.escape(piece))
    return "".join(parts)


def date_example(field: FieldSpec) -> str:
    return dt.datetime(2024, 1, 31, 13, 45, 0, tzinfo=dt.UTC).strftime(field.date_format)


def _date_type_sentence(field: FieldSpec) -> Callable[[pl.Expr], pl.Expr]:
    """`type` for a date or datetime: written another way, or written right but not a real date."""
    label = field_label(field)
    what = "date" if field.type == FieldType.DATE else "date and time"
    written = human_date_format(field.date_format)
    wrong_form = f"{label} must be a {what} written as {written} (for example {date_example(field)}), but is '"
    shape = date_shape(field.date_format)

    def sentence(value: pl.Expr) -> pl.Expr:
        otherwise = say(wrong_form, value, "'.")
        if shape is None:
            return otherwise
        impossible = say(f"{label}: '", value, f"' is written as {written} but is not a {what} that exists.")
        return pl.when(value.str.contains(rf"\A(?:{shape})\z")).then(impossible).otherwise(otherwise)

    return sentence


def quoted(value: pl.Expr) -> pl.Expr:
    """Cell text as quoted inside a sentence: shortened, line breaks shown as spaces."""
    shortened = pl.when(value.str.len_chars() > QUOTED_VALUE_LIMIT).then(
        value.str.head(QUOTED_VALUE_LIMIT - 1) + pl.lit("…")
    ).otherwise(value)
    return shortened.str.replace_all(r"[\r\n]+", " ")


# --- judging a chunk --------------------------------------------------------------------------


@dataclass
class ReferenceSnapshot:
    """The reference tables an upload is judged against, keyed by (scope, table)."""

    tables: dict[tuple[str, str], pl.DataFrame]

    def lookup_values(self, spec: FileSpec) -> dict[str, pl.Series]:
        values = {}
        for field in spec.fields:
            if field.lookup_parts:
                scope, table, column = field.lookup_parts
                values[field.name] = self.tables[(scope, table)][column].drop_nulls().unique()
        return values


@dataclass
class JudgedChunk:
    """What judging the records of one chunk found."""

    frame: pl.DataFrame  # per record with cells: raw:<field>, text, typed:<field>, enrich columns
    messages: pl.DataFrame  # MESSAGE_SCHEMA, in row order within each rule
    rejected: pl.Series  # boolean per record of `frame`: an error-severity message is attached


class ChunkJudge:
    """Judges the cells of chunk records against one filespec and its reference snapshot."""

    def __init__(self, spec: FileSpec, reference: ReferenceSnapshot):
        self.spec = spec
        self.reference = reference
        self.schema = build_schema(spec, reference.lookup_values(spec))
        self.severity = {field.name: field.severity.value for field in spec.fields}

    def prepare_frame(self, raw_cells: pl.DataFrame, trim: bool = True) -> pl.DataFrame:
        """raw:<field> columns → add the text (named by field) and converted value of each field."""
        texts = [cell_text(pl.col(f"raw:{f.name}"), f, trim).alias(f.name) for f in self.spec.fields]
        frame = raw_cells.with_columns(texts)
        return frame.with_columns(
            converted_once_per_value(frame[f.name], f) if f.type in (FieldType.DATE, FieldType.DATETIME)
            else converted(pl.col(f.name), f).alias(typed_column(f.name))
            for f in self.spec.fields
        )  # fmt: skip

    def judge(self, raw_cells: pl.DataFrame, row_numbers: pl.Series, line_numbers: pl.Series, trim: bool = True) -> JudgedChunk:
        """Judge every cell; `raw_cells` has one raw:<field> column per field, one row per record.
        `trim=False`: no cell has whitespace to trim, so the trim is skipped (the same texts)."""
        frame = self.prepare_frame(raw_cells, trim)
        failures = self._failure_cases(frame)
        messages = [self._cell_messages(frame, failures, row_numbers, line_numbers)]
        frame, enrich_messages = self._enrich(frame, row_numbers, line_numbers)
        messages.extend(enrich_messages)
        all_messages = pl.concat(messages) if messages else empty_messages()
        rejected_rows = all_messages.filter(pl.col("severity") == Severity.ERROR.value)["row_number"]
        rejected = row_numbers.is_in(rejected_rows.implode())
        return JudgedChunk(frame=frame, messages=all_messages, rejected=rejected)

    def _failure_cases(self, frame: pl.DataFrame) -> pl.DataFrame:
        try:
            self.schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as errors:
            cases = errors.failure_cases
            if cases["index"].null_count():
                # A check that raised instead of answering: a bug in a generated check, not bad data.
                broken = cases.filter(pl.col("index").is_null()).row(0, named=True)
                raise RuntimeError(f"pandera check {broken['check']} on {broken['column']} failed to run: {broken['failure_case']}") from errors
            return cases.select(
                pl.col("column").alias("field"),
                pl.col("check").replace({"not_nullable": "required"}).alias("rule"),
                pl.col("index").cast(pl.Int64),
            )
        return pl.DataFrame(schema={"field": pl.String, "rule": pl.String, "index": pl.Int64})

    def _cell_messages(
        self, frame: pl.DataFrame, failures: pl.DataFrame, row_numbers: pl.Series, line_numbers: pl.Series
    ) -> pl.DataFrame:
        if failures.is_empty():
            return empty_messages()
        parts = []
        for (field_name, rule), group in failures.group_by(["field", "rule"], maintain_order=True):
            field = self.spec.field(field_name)
            sentence = rule_sentence(field, rule)
            index = group["index"]  # the failing records' positions in the frame
            raw = frame[f"raw:{field_name}"].gather(index)
            text = frame[field_name].gather(index).fill_null("")
            parts.append(
                pl.DataFrame(
                    {
                        "row_number": row_numbers.gather(index),
                        "line_number": line_numbers.gather(index),
                        "field": field_name,
                        "rule": rule,
                        "severity": self.severity[field_name],
                        "value": raw.str.head(VALUE_LIMIT),
                        "message": text.to_frame("value").with_columns(sentence(quoted(pl.col("value"))).alias("message"))["message"],
                    },
                    schema=MESSAGE_SCHEMA,
                )
            )
        return pl.concat(parts).sort(["row_number"], maintain_order=True)

    def _enrich(
        self, frame: pl.DataFrame, row_numbers: pl.Series, line_numbers: pl.Series
    ) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
        """Add enrich columns (text) by matching trimmed cell text with the table's text."""
        messages = []
        for enrich in self.spec.enrich:
            table = self.reference.tables[enrich.scope_and_table]
            keys = [f"key:{i}" for i in range(len(enrich.on))]
            matches = (
                table.select(
                    *[pl.col(column).alias(key) for key, column in zip(keys, enrich.on.values(), strict=True)],
                    *[pl.col(column).cast(pl.String).alias(output) for output, column in enrich.add.items()],
                )
                .drop_nulls(keys)
                .unique(subset=keys, keep="first", maintain_order=True)
                .with_columns(pl.lit(True).alias("matched:enrich"))
            )
            # Joined on the key columns alone (keys are unique in `matches`, so rows stay one to one
            # and in order), then set beside the frame: a join of the whole frame would copy every column.
            added = frame.select(list(enrich.on)).join(
                matches, left_on=list(enrich.on), right_on=keys, how="left", maintain_order="left"
            ).drop(list(enrich.on))  # fmt: skip
            matched = added["matched:enrich"].fill_null(False)
            frame = frame.hstack(added.drop("matched:enrich"))
            if enrich.required and not matched.all():
                first_field = next(iter(enrich.on))
                missing = (~matched).arg_true()
                text = frame[first_field].gather(missing)
                label = field_label(self.spec.field(first_field))
                message = text.to_frame("value").with_columns(
                    pl.when(pl.col("value").is_null())
                    .then(pl.lit(f"{label} is empty, so the row cannot be matched in {enrich.lookup}."))
                    .otherwise(say(f"{label} '", quoted(pl.col("value")), f"' has no match in {enrich.lookup}, so the row cannot be completed."))
                    .alias("message")
                )["message"]
                messages.append(
                    pl.DataFrame(
                        {
                            "row_number": row_numbers.gather(missing),
                            "line_number": line_numbers.gather(missing),
                            "field": first_field,
                            "rule": "enrich",
                            "severity": Severity.ERROR.value,
                            "value": frame[f"raw:{first_field}"].gather(missing).str.head(VALUE_LIMIT),
                            "message": message,
                        },
                        schema=MESSAGE_SCHEMA,
                    )
                )
        return frame, messages
