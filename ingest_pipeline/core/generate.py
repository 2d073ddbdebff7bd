"""The test data generator: an upload that follows a filespec, errors injected at a known rate, and
an answer key (`FILE.expected.csv`: `row_number,field,rule`) of every message the pipeline must
produce for it, warnings included; clean rows produce none.

Exact: every clean value is checked at setup by `CellJudge` (the contract's "How one cell is
judged") and for each injected row the key holds what the judge says of the text written, plus
`unique` and `enrich`, which are decided by construction:
- unique values come from the row number (or a permutation of a finite set), so clean rows never
  repeat one; a `unique` error copies the value of an earlier row that has no error at all;
- any other injected value of a unique field breaks a rule every clean value meets (for typed
  fields: only `minimum`/`maximum`, since "05" and "5" are one integer), so it equals no clean
  value; injected values are remembered per unique field to catch repeats among themselves;
- the `on` fields of a `required` enrich are drawn together from rows of its table.
Fast: clean columns are drawn per batch with numpy from pools of valid values (or formatted from
row numbers for unique fields) and written with polars; only the injected rows go through Python.
Memory stays flat (one batch), apart from the injected values of unique fields.

Deliberately avoided, so that the key does not depend on unsettled readings of the contract:
a null or mistyped `on` field of a required enrich, lines that are blank or all spaces, control
characters and whitespace other than the space (and line breaks inside quoted cells), and
surrounding spaces in the clean values of trimmed fields.
"""

import csv
import datetime as dt
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

from ingest_pipeline.core.errors import FilespecError, IngestError, ReferenceDataError
from ingest_pipeline.core.filespec import (
    DEFAULT_FALSE_TEXTS,
    DEFAULT_TRUE_TEXTS,
    INT64_MAX,
    INT64_MIN,
    FieldSpec,
    FieldType,
    FileSpec,
    FormatKind,
)
from ingest_pipeline.core.reference import find_reference_table, read_reference_csv
from ingest_pipeline.core.regex_gen import MAX_LENGTH, RegexGenerator, UnsupportedPatternError

BATCH_ROWS = 50_000  # records generated and written at a time
POOL_SIZE = 1_000  # candidate values generated per field (before filtering by the rules)
NULL_RATE = 0.08  # share of an optional field's clean cells left empty
SPECIAL_TEXT_RATE = 0.02  # share of free-text values holding a delimiter, a quote or a line break
SAMPLE_LENGTHS = 24  # how many of a pattern's possible lengths random values spread over
KEY_HEADER = ("row_number", "field", "rule")

# Stand-ins for bytes the declared encoding cannot decode: control characters no value holds,
# written through the encoder and then swapped for the bad bytes.
BAD_BYTES = {
    "utf-8": b"\xff\xfe\x80",
    "utf-8-sig": b"\xff\xfe\x80",
    "cp1252": b"\x81\x8d\x8f\x90\x9d",
}
PLACEHOLDERS = "\x01\x02\x03\x04\x05"

# A unique typed field only gets errors whose value is surely no clean one's ("05" is 5): see the top.
TYPED_UNIQUE_RULES = ("required", "type", "minimum", "maximum", "unique")
DEFAULT_FIRST_DATE = dt.datetime(1990, 1, 1)
DEFAULT_LAST_DATE = dt.datetime(2030, 12, 31, 23, 59, 59)
DEFAULT_DATE_SPAN = dt.timedelta(days=40 * 365)
# How far past a date bound injected values go: one unit of each format's resolution, and more.
BOUND_STEPS = (
    dt.timedelta(seconds=1),
    dt.timedelta(minutes=1),
    dt.timedelta(hours=1),
    dt.timedelta(days=1),
    dt.timedelta(days=400),
)
INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
DECIMAL_TEXT = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")

WORDS = (
    "James Mary Robert Patricia Michael Linda David Susan Zoë José Renée Nguyễn Łukasz Siobhán "
    "Smith Johnson Garcia Miller Davis O'Brien D'Angelo Müller Núñez Kowalski "
    "relocated part-time remote badge reissue contract renewal pending review approved "
    "transferred on-site leave returning payroll adjustment overtime training"
).split()


@dataclass
class GenerationSummary:
    """What `generate_upload` wrote. `errors` counts the answer key's entries (the messages,
    warnings included, that the pipeline must produce)."""

    rows: int
    errors: int
    out: Path
    answer_key: Path
    bytes: int


# --- the judge ---------------------------------------------------------------------------------


class CellJudge:
    """The contract's "How one cell is judged" for one field: the rules a cell text breaks."""

    def __init__(self, field: FieldSpec, lookup_values: frozenset[str] | None = None):
        self.field = field
        self.lookup_values = lookup_values
        self.pattern = re.compile(field.pattern) if field.pattern is not None else None
        self.enum = frozenset(field.enum) if field.enum is not None else None
        self.minimum = field.bound("minimum")
        self.maximum = field.bound("maximum")
        self.true_texts, self.false_texts = field.boolean_texts

    def judge(self, raw: str) -> tuple[list[str], object]:
        """The cell rules `raw` (the cell as read, untrimmed) breaks, `unique` aside, and its
        converted value (None when null or not of the type)."""
        field = self.field
        text = raw.strip() if field.trim else raw
        if not text:
            return (["required"] if field.required else []), None
        try:
            value = self.convert(text)
        except (ValueError, OverflowError):
            return ["type"], None
        broken = []
        if field.min_length is not None and len(text) < field.min_length:
            broken.append("min_length")
        if field.max_length is not None and len(text) > field.max_length:
            broken.append("max_length")
        if self.pattern is not None and self.pattern.fullmatch(text) is None:
            broken.append("pattern")
        if self.enum is not None and text not in self.enum:
            broken.append("enum")
        if self.minimum is not None and value < self.minimum:
            broken.append("minimum")
        if self.maximum is not None and value > self.maximum:
            broken.append("maximum")
        if self.lookup_values is not None and text not in self.lookup_values:
            broken.append("lookup")
        return broken, value

    def convert(self, text: str) -> object:
        """`text` (trimmed, not empty) as the field's type; ValueError when it is not one."""
        kind = self.field.type
        if kind == FieldType.STRING:
            return text
        if kind == FieldType.INTEGER:
            value = int(text) if INTEGER_TEXT.fullmatch(text) else None
            if value is None or not INT64_MIN <= value <= INT64_MAX:
                raise ValueError(text)
            return value
        if kind == FieldType.DECIMAL:
            if not DECIMAL_TEXT.fullmatch(text):
                raise ValueError(text)
            return Decimal(text)
        if kind == FieldType.BOOLEAN:
            lowered = text.lower()
            if lowered in self.true_texts or lowered in self.false_texts:
                return lowered in self.true_texts
            raise ValueError(text)
        parsed = dt.datetime.strptime(text, self.field.date_format)
        if parsed.strftime(self.field.date_format) != text:  # read strictly: `2019-1-5` is no %Y-%m-%d
            raise ValueError(text)
        return parsed if kind == FieldType.DATETIME else parsed.date()


def expected_rules(field: FieldSpec, text: str, lookup_values: frozenset[str] | None = None) -> list[str]:
    """The cell rules (all but `unique`) that the cell text `text` of `field` breaks."""
    return CellJudge(field, lookup_values).judge(text)[0]


@dataclass
class RequiredEnrich:
    """An enrich with `required: true`: a row whose `on` values match no table row fails `enrich`."""

    field_names: tuple[str, ...]  # the `on` fields; the first one names the message
    table_rows: list[tuple[str, ...]]  # the table's `on` columns, in table order, nulls dropped
    matches: frozenset[tuple[str, ...]]

    def fails(self, cells: dict[str, str]) -> bool:
        """Whether a row with these cell texts gets an `enrich` message. A null `on` field is
        never generated (the contract leaves it open), so it is not reported here."""
        values = tuple(cells[name].strip() for name in self.field_names)
        return "" not in values and values not in self.matches


# --- fields and the values they can hold -------------------------------------------------------


@dataclass
class FieldPlan:
    """One field and what the generator knows about it."""

    field: FieldSpec
    judge: CellJudge
    width: int | None  # fixed width: the slot's width
    lookup_table: list[str] | None  # the lookup column's values in table order
    regex: RegexGenerator | None
    enrich: RequiredEnrich | None  # the required enrich that lists this field in `on`
    null_rate: float = 0.0
    examples: tuple[str, ...] = ()  # a few clean values, to derive injected values from

    @property
    def name(self) -> str:
        return self.field.name

    def cell(self, value: str | None) -> str:
        """The text the pipeline reads for a cell written as `value` (None: left empty)."""
        text = value or ""
        return text.ljust(self.width) if self.width is not None else text

    def length_window(self) -> tuple[int, int]:
        """Lengths a clean value may have: not null, within min/max_length and the slot."""
        low = max(1, self.field.min_length or 0)
        high = min(self.field.max_length if self.field.max_length is not None else MAX_LENGTH, self.width or MAX_LENGTH)
        if self.width is not None and not self.field.trim:
            low = self.width  # the padding is part of an untrimmed fixed-width cell
        return low, high

    def is_clean(self, value: str | None) -> bool:
        return self.judge.judge(self.cell(value))[0] == []

    def problems(self, value: str) -> list[str]:
        """Why `value` cannot be a clean cell of this field: the rules it breaks, or its width."""
        if self.width is not None and len(value) > self.width:
            return [f"wider than {self.width} characters"]
        return self.judge.judge(self.cell(value))[0]

    def converted(self, value: str) -> object:
        return self.judge.judge(self.cell(value))[1]


class SampledSource:
    """Clean values drawn from a list of valid rows of values (one column per field): a pool of
    one field's values, or the `on` columns of a required enrich's table. Unique: each row once."""

    def __init__(
        self,
        plans: list[FieldPlan],
        candidates: list[tuple[str, ...]],
        unique: bool,
        total_rows: int,
        rng: np.random.Generator,
    ):
        self.plans = plans
        self.columns = [
            pl.Series(plan.name, [values[index] for values in candidates], dtype=pl.String)
            for index, plan in enumerate(plans)
        ]
        self.order = None
        if unique:
            if len(candidates) < total_rows:
                names = ", ".join(plan.name for plan in plans)
                raise IngestError(
                    f"field {names} must be unique over {total_rows} rows, "
                    f"but only {len(candidates)} distinct values meet its rules"
                )
            self.order = rng.permutation(len(candidates))[:total_rows]

    def columns_for(self, first_row: int, count: int, rng: np.random.Generator) -> list[pl.Series]:
        if self.order is not None:
            picks = self.order[first_row - 1 : first_row - 1 + count]
        else:
            picks = rng.integers(0, len(self.columns[0]), count)
        return [
            with_nulls(column.gather(picks), plan.null_rate, rng)
            for plan, column in zip(self.plans, self.columns, strict=True)
        ]


class UniqueSource:
    """Unique values computed from the row number; subclasses say how (`values`)."""

    def __init__(self, plan: FieldPlan):
        self.plan = plan

    def values(self, first_row: int, count: int) -> pl.Series:
        raise NotImplementedError

    def check_ends(self, total_rows: int) -> None:
        """Fail before writing when the first or last row's value is no clean one (the values
        grow monotonically in length and size, so the ends are the extremes)."""
        if total_rows:
            check_unique_values(self.plan, pl.concat([self.values(1, 1), self.values(total_rows, 1)]))

    def columns_for(self, first_row: int, count: int, rng: np.random.Generator) -> list[pl.Series]:
        return [with_nulls(self.values(first_row, count), self.plan.null_rate, rng)]


class PatternUniqueSource(UniqueSource):
    """Unique values of a pattern: the row's index written in the mixed radix of a fixed shape."""

    def __init__(self, plan: FieldPlan, shape: tuple[str, ...], total_rows: int):
        super().__init__(plan)
        self.alphabets = [np.array([ord(char) for char in chars], dtype=np.uint32) for chars in shape]
        capacity = math.prod(len(chars) for chars in shape)
        self.offset = 1 if capacity > total_rows else 0  # E00000001 rather than E00000000 when possible
        self.check_ends(total_rows)

    def values(self, first_row: int, count: int) -> pl.Series:
        index = np.arange(first_row - 1 + self.offset, first_row - 1 + self.offset + count, dtype=np.int64)
        codes = np.empty((count, len(self.alphabets)), dtype=np.uint32)
        for position in reversed(range(len(self.alphabets))):
            index, digit = np.divmod(index, len(self.alphabets[position]))
            codes[:, position] = self.alphabets[position][digit]
        return pl.Series(self.plan.name, codes.view(f"<U{len(self.alphabets)}").ravel(), dtype=pl.String)

    def columns_for(self, first_row: int, count: int, rng: np.random.Generator) -> list[pl.Series]:
        if self.plan.field.type != FieldType.STRING:
            # The pattern's texts need not all be of the type or within bounds: check each.
            check_unique_values(self.plan, self.values(first_row, count))
        return super().columns_for(first_row, count, rng)


class CounterUniqueSource(UniqueSource):
    """Unique values of a string (no pattern), integer or decimal field, counted from the row number."""

    def __init__(self, plan: FieldPlan, total_rows: int):
        super().__init__(plan)
        field = plan.field
        low, high = field.bound("minimum"), field.bound("maximum")
        if field.type == FieldType.DECIMAL:  # counted in hundredths
            low = math.ceil(low * 100) if low is not None else None
            high = math.floor(high * 100) if high is not None else None
        if low is not None:
            self.start = low
        elif high is not None:
            self.start = high - total_rows + 1
        else:
            self.start = 1
        last = self.start + total_rows - 1
        if (high is not None and last > high) or self.start < INT64_MIN or last > INT64_MAX:
            raise IngestError(
                f"field {field.name!r} must be unique over {total_rows} rows, more than its minimum..maximum allows"
            )
        self.check_ends(total_rows)

    def values(self, first_row: int, count: int) -> pl.Series:
        first = self.start + first_row - 1
        number = pl.int_range(first, first + count, dtype=pl.Int64, eager=True)
        if self.plan.field.type == FieldType.DECIMAL:
            whole = (number.abs() // 100).cast(pl.String)
            cents = (number.abs() % 100).cast(pl.String).str.zfill(2)
            sign = pl.Series(np.where(number.to_numpy() < 0, "-", ""), dtype=pl.String)
            text = sign + whole + "." + cents
        else:
            text = number.cast(pl.String)
        return text.str.zfill(self.plan.field.min_length or 0).alias(self.plan.name)


class DateUniqueSource(UniqueSource):
    """Unique dates or datetimes, one step of the format's finest unit per row (formatted in Python)."""

    def __init__(self, plan: FieldPlan, total_rows: int):
        super().__init__(plan)
        field = plan.field
        fmt = field.date_format
        if field.type == FieldType.DATETIME and re.search(r"%[STf]", fmt):
            self.step = dt.timedelta(seconds=1)
        elif field.type == FieldType.DATETIME and "%M" in fmt:
            self.step = dt.timedelta(minutes=1)
        elif field.type == FieldType.DATETIME and re.search(r"%[HI]", fmt):
            self.step = dt.timedelta(hours=1)
        else:
            self.step = dt.timedelta(days=1)
        low, high = as_datetime(field.bound("minimum")), as_datetime(field.bound("maximum"))
        if low is not None:
            self.start = low
        elif high is not None:
            self.start = high - self.step * (total_rows - 1)
        else:
            self.start = DEFAULT_FIRST_DATE
        self.previous = None  # the converted value of the last row written
        self.check_ends(total_rows)

    def values(self, first_row: int, count: int) -> pl.Series:
        texts = []
        for row in range(first_row, first_row + count):
            try:
                texts.append((self.start + self.step * (row - 1)).strftime(self.plan.field.date_format))
            except OverflowError:
                texts.append("")
        return pl.Series(self.plan.name, texts, dtype=pl.String)

    def columns_for(self, first_row: int, count: int, rng: np.random.Generator) -> list[pl.Series]:
        values = self.values(first_row, count)
        for row, text in enumerate(values.to_list(), start=first_row):
            # A format coarser than the step (a %y year, a missing %d) would repeat values.
            value = self.plan.converted(text)
            if self.plan.problems(text) or value is None or (self.previous is not None and value <= self.previous):
                raise IngestError(
                    f"field {self.plan.name!r} must be unique, but its format {self.plan.field.date_format!r} "
                    f"and bounds leave too few distinct values (row {row} would be {text!r})"
                )
            self.previous = value
        return [with_nulls(values, self.plan.null_rate, rng)]


def check_unique_values(plan: FieldPlan, values: pl.Series) -> None:
    """Raise when a generated unique value is no clean value (too wide, or out of bounds)."""
    for value in values.to_list():
        problems = plan.problems(value)
        if problems:
            raise IngestError(
                f"field {plan.name!r} must be unique, and the generator cannot produce that many unique values "
                f"that also meet its other rules ({value!r}: {', '.join(problems)})"
            )


def with_nulls(values: pl.Series, null_rate: float, rng: np.random.Generator) -> pl.Series:
    if null_rate <= 0:
        return values
    return values.scatter(np.flatnonzero(rng.random(len(values)) < null_rate), None)


def as_datetime(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.combine(value, dt.time())


# --- candidate values --------------------------------------------------------------------------


def typed_samples(field: FieldSpec, rng: random.Random, count: int) -> list[str]:
    """Texts of the field's (non-string) type: within its bounds, bounds included; for a boolean
    every text it reads."""
    low, high = field.bound("minimum"), field.bound("maximum")
    pad = field.min_length or 0
    if field.type == FieldType.INTEGER:
        low = low if low is not None else (high - 1000 if high is not None else 0)
        high = high if high is not None else low + 1000
        low, high = max(low, INT64_MIN), min(high, INT64_MAX)
        numbers = [low, high] + [rng.randint(low, high) for _ in range(count)]
        return [f"{number:0{pad}d}" for number in numbers]
    if field.type == FieldType.DECIMAL:
        low = low if low is not None else (high - 100_000 if high is not None else Decimal(0))
        high = high if high is not None else low + 100_000
        first, last = math.ceil(low * 100), math.floor(high * 100)
        texts = [text.strip() for text in (field.minimum, field.maximum) if text is not None]
        for _ in range(count if first <= last else 0):  # no hundredth between bounds 0.001..0.009
            places = rng.choice((0, 1, 2, 2, 2))
            texts.append(f"{Decimal(rng.randint(first, last)) / 100:.{places}f}")
        return [text.zfill(pad) for text in texts]
    if field.type in (FieldType.DATE, FieldType.DATETIME):
        low, high = as_datetime(low), as_datetime(high)
        if low is None and high is None:
            low, high = DEFAULT_FIRST_DATE, DEFAULT_LAST_DATE
        elif low is None:
            low = min(DEFAULT_FIRST_DATE, high - DEFAULT_DATE_SPAN)
        elif high is None:
            high = max(DEFAULT_LAST_DATE, low + min(DEFAULT_DATE_SPAN, dt.datetime.max - low))
        seconds = int((high - low).total_seconds())
        moments = [low, high] + [low + dt.timedelta(seconds=rng.randint(0, seconds)) for _ in range(count)]
        return [moment.strftime(field.date_format) for moment in moments]
    if field.type == FieldType.BOOLEAN:
        if isinstance(field.format, dict):
            return [str(text) for texts in field.format.values() for text in texts]
        return list(DEFAULT_TRUE_TEXTS + DEFAULT_FALSE_TEXTS)
    return []


def free_text(rng: random.Random, low: int, high: int, delimiter: str | None, quote: str | None) -> str:
    """Words, now and then (delimited files) holding the delimiter, quotes or a line break."""
    words = [rng.choice(WORDS) for _ in range(rng.choice((1, 1, 2, 2, 3, 5)))]
    if delimiter is not None:
        special = rng.random()
        if special < SPECIAL_TEXT_RATE and len(words) > 1:
            words[0] += delimiter
        elif special < 2 * SPECIAL_TEXT_RATE:
            words[-1] = f"{quote}{words[-1]}{quote}"
        elif special < 3 * SPECIAL_TEXT_RATE and len(words) > 1:
            words[0] += "\n" + words.pop(1)
    text = " ".join(words)
    while len(text) < low:
        text += " " + rng.choice(WORDS)
    return text[:high].rstrip()


# --- the generator -----------------------------------------------------------------------------


class UploadGenerator:
    """Everything one upload's generation needs, prepared once; `write` streams the file."""

    def __init__(
        self, spec: FileSpec, rows: int, error_rate: float, seed: int, company_id: str, home: Path, filespecs_dir: Path
    ):
        if rows < 0:
            raise IngestError(f"rows must be 0 or more, not {rows}")
        if not 0 <= error_rate <= 1:
            raise IngestError(f"error rate must be between 0 and 1, not {error_rate}")
        self.spec = spec
        self.rows = rows
        self.error_rate = error_rate
        self.format = spec.format
        self.fixed_width = spec.format.kind == FormatKind.FIXED_WIDTH
        self.delimiter = None if self.fixed_width else spec.format.delimiter
        self.quote = None if self.fixed_width else spec.format.quote
        self.codec = "utf-8" if spec.format.encoding == "utf-8-sig" else spec.format.encoding
        self.random = random.Random(seed)
        self.rng = np.random.default_rng(seed)
        self.company_id, self.home, self.filespecs_dir = company_id, Path(home), Path(filespecs_dir)
        self.tables: dict[tuple[str, str], pl.DataFrame] = {}
        self.plans = [self._plan(field) for field in spec.fields]
        self.by_name = {plan.name: plan for plan in self.plans}
        self._attach_required_enrich()
        if self.fixed_width:
            self._check_fixed_width_layout()
        if not self._encodable(self.preamble()):
            raise FilespecError(
                f"the header or banner of {spec.form_type} cannot be written in encoding {self.format.encoding}"
            )
        self.sources = self._sources()
        self.injector = Injector(self)

    # --- setup ---------------------------------------------------------------------------------

    def _table(self, scope: str, table: str, columns: list[str]) -> pl.DataFrame:
        if (scope, table) not in self.tables:
            path = find_reference_table(scope, table, self.company_id, self.home, self.filespecs_dir)
            self.tables[(scope, table)] = read_reference_csv(path)
        frame = self.tables[(scope, table)]
        for column in columns:
            if column not in frame.columns:
                raise ReferenceDataError(
                    f"reference table {scope}.{table} has no column {column!r}; it has {', '.join(frame.columns)}"
                )
        return frame

    def _plan(self, field: FieldSpec) -> FieldPlan:
        lookup_table = None
        if field.lookup_parts is not None:
            scope, table, column = field.lookup_parts
            lookup_table = self._table(scope, table, [column])[column].drop_nulls().to_list()
        regex = None
        if field.pattern is not None:
            try:
                regex = RegexGenerator(field.pattern, self._plain_char)
            except UnsupportedPatternError as error:
                raise FilespecError(f"field {field.name!r}: {error}") from None
        plan = FieldPlan(
            field=field,
            judge=CellJudge(field, frozenset(lookup_table) if lookup_table is not None else None),
            width=field.width if self.fixed_width else None,
            lookup_table=lookup_table,
            regex=regex,
            enrich=None,
        )
        if plan.is_clean(None):  # not required, and an empty cell reads as null (an untrimmed slot does not)
            plan.null_rate = NULL_RATE
        return plan

    def _attach_required_enrich(self) -> None:
        for enrich in self.spec.enrich:
            if not enrich.required:
                continue  # without `required`, no row ever gets an `enrich` message
            scope, table = enrich.scope_and_table
            frame = self._table(scope, table, list(enrich.on.values())).select(list(enrich.on.values())).drop_nulls()
            rows = [tuple(row) for row in frame.iter_rows()]
            check = RequiredEnrich(tuple(enrich.on), rows, frozenset(rows))
            for name in enrich.on:
                plan = self.by_name[name]
                if plan.enrich is not None:
                    raise IngestError(
                        f"field {name!r} is an `on` field of two required enrich tables; the generator cannot match both"
                    )
                plan.enrich = check
                plan.null_rate = 0.0

    def _check_fixed_width_layout(self) -> None:
        end, previous = 0, None
        for field in sorted(self.spec.fields, key=lambda field: field.start):
            if field.start - 1 < end:
                raise FilespecError(f"fields {previous!r} and {field.name!r} overlap; the generator cannot write both")
            end, previous = field.start - 1 + field.width, field.name
        # Some field is never empty in clean rows, so that no record is a line of spaces.
        anchor = next((plan for plan in self.plans if plan.field.required), self.plans[0])
        anchor.null_rate = 0.0

    def _plain_char(self, char: str) -> bool:
        """Printable (no control character, no whitespace but the space) and encodable."""
        return char.isprintable() and self._encodable(char)

    def _encodable(self, text: str) -> bool:
        try:
            text.encode(self.codec)
        except UnicodeEncodeError:
            return False
        return True

    def can_write(self, value: str, plan: FieldPlan) -> bool:
        """Whether `value` can stand as one cell of the file (in its slot, for fixed width):
        printable, or a line break or the delimiter inside a (quoted) delimited cell."""
        if plan.width is not None and len(value) > plan.width:
            return False
        quotable = "" if self.fixed_width else "\n" + self.delimiter
        printable = value.isprintable() or all(char.isprintable() or char in quotable for char in value)
        return printable and self._encodable(value)

    def _clean_values(self, plan: FieldPlan, candidates: list[str]) -> list[str]:
        """The candidates a clean cell may hold, deduplicated in order: non-null, writable,
        breaking no rule, and (when trimmed) without surrounding whitespace."""
        seen: set[str] = set()
        clean = []
        for value in candidates:
            if plan.width is not None:
                value = value.rstrip(" ")  # trailing spaces are the slot's padding anyway
            if value in seen or not value or (plan.field.trim and value != value.strip()):
                continue
            if self.can_write(value, plan) and plan.is_clean(value):
                seen.add(value)
                clean.append(value)
        return clean

    def generated_candidates(self, plan: FieldPlan, count: int) -> list[str]:
        """Values of the field's shape (pattern, type or free text), not yet checked against the rules."""
        field = plan.field
        low, high = plan.length_window()
        candidates = []
        if plan.regex is not None:
            lengths = plan.regex.lengths(low, high)[:SAMPLE_LENGTHS]
            if lengths:
                candidates += [plan.regex.sample(self.random, self.random.choice(lengths)) for _ in range(count)]
        if field.type != FieldType.STRING:
            candidates += typed_samples(field, self.random, count)
        elif plan.regex is None:
            candidates += [free_text(self.random, low, high, self.delimiter, self.quote) for _ in range(count)]
        return candidates

    def _finite_candidates(self, plan: FieldPlan) -> list[str] | None:
        """The only values the field can hold, when it has a closed list of them."""
        if plan.field.enum is not None:
            return list(plan.field.enum)
        if plan.lookup_table is not None:
            return plan.lookup_table
        if plan.field.type == FieldType.BOOLEAN:
            return typed_samples(plan.field, self.random, 0)
        return None

    def _sources(self) -> list:
        sources, grouped = [], set()
        for plan in self.plans:
            if plan.enrich is not None:
                if plan.name not in grouped:
                    sources.append(self._enrich_source(plan.enrich))
                    grouped.update(plan.enrich.field_names)
                continue
            field = plan.field
            finite = self._finite_candidates(plan)
            if field.unique and finite is None:
                sources.append(self._unique_source(plan))
                # Clean-looking values to derive injected ones from, when a row's own cell is empty.
                plan.examples = tuple(self._clean_values(plan, self.generated_candidates(plan, 50))[:20])
                continue
            if finite is not None:
                values = self._clean_values(plan, finite)
                if field.unique:
                    values = distinct_by_value(plan, values)
            else:
                values = self._clean_values(plan, self.generated_candidates(plan, POOL_SIZE))
            if not values:
                raise IngestError(
                    f"field {field.name!r}: the generator found no value that meets all of its rules "
                    f"(in encoding {self.format.encoding})"
                )
            plan.examples = tuple(values[:20])
            sources.append(SampledSource([plan], [(value,) for value in values], field.unique, self.rows, self.rng))
        return sources

    def _enrich_source(self, enrich: RequiredEnrich) -> SampledSource:
        plans = [self.by_name[name] for name in enrich.field_names]
        rows = [
            row
            for row in enrich.table_rows
            if all(
                value == value.strip() and self.can_write(value, plan) and plan.is_clean(value)
                for plan, value in zip(plans, row, strict=True)
            )
        ]
        unique = any(plan.field.unique for plan in plans)
        for index, plan in enumerate(plans):
            if plan.field.unique:
                first_rows = {}
                for row in rows:
                    first_rows.setdefault(plan.converted(row[index]), row)
                rows = list(first_rows.values())
        if not rows:
            names = ", ".join(enrich.field_names)
            raise IngestError(f"fields {names}: no row of their required enrich table meets the fields' own rules")
        for index, plan in enumerate(plans):
            plan.examples = tuple(dict.fromkeys(row[index] for row in rows[:20]))
        return SampledSource(plans, rows, unique, self.rows, self.rng)

    def _unique_source(self, plan: FieldPlan):
        field = plan.field
        if plan.regex is not None:
            low, high = plan.length_window()
            shape = plan.regex.unique_shape(low, high, self.rows, trimmed=field.trim)
            if shape is None:
                raise IngestError(
                    f"field {field.name!r} must be unique, but its pattern {field.pattern!r} (within its lengths) "
                    f"does not have {self.rows} distinct values the generator can produce"
                )
            return PatternUniqueSource(plan, shape, self.rows)
        if field.type in (FieldType.DATE, FieldType.DATETIME):
            return DateUniqueSource(plan, self.rows)
        return CounterUniqueSource(plan, self.rows)

    # --- writing -------------------------------------------------------------------------------

    def _banner(self, number: int) -> str:
        text = f"# {self.spec.form_type} test data - banner line {number}"
        return "".join(char for char in text if char not in (self.delimiter, self.quote))

    def preamble(self) -> str:
        """Banner lines and the header row."""
        lines = [self._banner(number) for number in range(1, self.format.skip_rows + 1)]
        if self.format.has_header:
            names = [field.source if field.source is not None else field.name for field in self.spec.fields]
            lines.append(self.delimiter.join(self.quote_cell(name) for name in names))
        return "".join(line + "\n" for line in lines)

    def quote_cell(self, text: str) -> str:
        if any(char in text for char in (self.delimiter, self.quote, "\n", "\r")):
            return self.quote + text.replace(self.quote, self.quote * 2) + self.quote
        return text

    def record_lines(self, frame: pl.DataFrame) -> pl.Series:
        """One text per record (delimited records may span lines)."""
        if self.fixed_width:
            parts, end = [], 0
            for plan in sorted(self.plans, key=lambda plan: plan.field.start):
                if plan.field.start - 1 > end:
                    parts.append(pl.lit(" " * (plan.field.start - 1 - end)))
                parts.append(pl.col(plan.name).fill_null("").str.pad_end(plan.width))
                end = plan.field.start - 1 + plan.width
            return frame.select(pl.concat_str(parts).alias("line"))["line"]
        delimiter, quote = self.delimiter, self.quote
        quote_blank = len(self.plans) == 1  # a lone empty cell would be a blank line, which is no record
        cells = []
        for plan in self.plans:
            column = pl.col(plan.name)
            special = column.str.contains(delimiter, literal=True) | column.str.contains(quote, literal=True)
            special = special | column.str.contains("\n", literal=True) | column.str.contains("\r", literal=True)
            if quote_blank:
                special = special | (column.str.strip_chars() == "")
            quoted = pl.lit(quote) + column.str.replace_all(quote, quote * 2, literal=True) + pl.lit(quote)
            cells.append(pl.when(special).then(quoted).otherwise(column).fill_null(quote * 2 if quote_blank else ""))
        return frame.select(pl.concat_str(cells, separator=delimiter).alias("line"))["line"]

    def write(self, out: Path, answer_key: Path) -> int:
        """Write the upload and its answer key; returns the number of key entries."""
        entries_written = 0
        with open(out, "wb") as data, open(answer_key, "w", encoding="utf-8", newline="") as key_file:
            key = csv.writer(key_file, lineterminator="\n")
            key.writerow(KEY_HEADER)
            if self.format.encoding == "utf-8-sig":
                data.write("\ufeff".encode())
            data.write(self.preamble().encode(self.codec))
            if self.rows == 0:
                key.writerow(("", "", "empty_file"))
                return 1
            for first_row in range(1, self.rows + 1, BATCH_ROWS):
                encoded, entries = self._batch(first_row, min(BATCH_ROWS, self.rows - first_row + 1))
                data.write(encoded)
                key.writerows(entries)
                entries_written += len(entries)
        return entries_written

    def _batch(self, first_row: int, count: int) -> tuple[bytes, list[tuple[int, str, str]]]:
        """The bytes of records first_row.. first_row+count-1, and their answer key rows."""
        columns = [column for source in self.sources for column in source.columns_for(first_row, count, self.rng)]
        frame = pl.DataFrame(columns).select([plan.name for plan in self.plans])
        injected = np.flatnonzero(self.rng.random(count) < self.error_rate) if self.error_rate else np.array([], int)
        batch = self.injector.inject(frame, first_row, injected)
        for name, (indexes, values) in batch.cells.items():
            frame = frame.with_columns(frame[name].scatter(indexes, values))
        lines = self.record_lines(frame)
        if batch.lines:
            indexes = list(batch.lines)
            lines = lines.scatter(indexes, [batch.lines[index](lines[index]) for index in indexes])
        encoded = (lines.str.join("\n").item() + "\n").encode(self.codec)
        if batch.has_bad_bytes:
            encoded = encoded.translate(self.injector.bad_byte_table)
        return encoded, batch.entries


def distinct_by_value(plan: FieldPlan, values: list[str]) -> list[str]:
    """The first value of each converted value (unique compares converted values: 5 = 05)."""
    first_values: dict = {}
    for value in values:
        first_values.setdefault(plan.converted(value), value)
    return list(first_values.values())


# --- injecting errors --------------------------------------------------------------------------


@dataclass
class InjectedBatch:
    """One batch's injected errors: what to change in it, and the answer key's rows for it."""

    frame: pl.DataFrame  # the batch's clean values, one column per field (None: empty)
    first_row: int
    injected_rows: set[int]  # batch indexes of the rows that get an error
    # field -> (batch indexes, new values) of the changed cells
    cells: dict[str, tuple[list[int], list[str | None]]] = dataclass_field(default_factory=dict)
    # batch index -> how the text of that record changes (field_count)
    lines: dict[int, Callable[[str], str]] = dataclass_field(default_factory=dict)
    entries: list[tuple[int, str, str]] = dataclass_field(default_factory=list)  # answer key rows
    has_bad_bytes: bool = False

    def values(self, index: int) -> dict[str, str | None]:
        return dict(zip(self.frame.columns, self.frame.row(index), strict=True))

    def set_cell(self, name: str, index: int, value: str | None) -> None:
        indexes, values = self.cells.setdefault(name, ([], []))
        indexes.append(index)
        values.append(value)


class Injector:
    """Chooses, builds and judges the one error of each injected row."""

    def __init__(self, generator: UploadGenerator):
        self.generator = generator
        self.random = generator.random
        self.targets = self._targets()
        bad_bytes = BAD_BYTES.get(generator.format.encoding, b"")
        self.placeholders = PLACEHOLDERS[: len(bad_bytes)]
        self.bad_byte_table = bytes.maketrans(self.placeholders.encode(), bad_bytes)
        # Per unique field, the injected values (converted) and their first row: clean values
        # never repeat, so these are the only repeats to watch for.
        self.injected_values: dict[str, dict[object, int]] = {
            plan.name: {} for plan in generator.plans if plan.field.unique
        }
        self.earlier_clean: dict[str, str] = {}  # per unique field: a clean value of an earlier batch

    def _targets(self) -> list[tuple[FieldPlan | None, str]]:
        """Every (field, rule) that an injected error may aim at; (None, rule) for row rules."""
        generator = self.generator
        targets: list[tuple[FieldPlan | None, str]] = []
        for plan in generator.plans:
            field = plan.field
            rules = []
            # A null or mistyped `on` field of a required enrich is left out: the contract does
            # not say whether it also fails `enrich`.
            if field.required and plan.enrich is None and (field.trim or not generator.fixed_width):
                rules.append("required")
            if field.type != FieldType.STRING and plan.enrich is None:
                rules.append("type")
            if field.min_length is not None and field.min_length >= 2:
                rules.append("min_length")
            if field.max_length is not None:
                rules.append("max_length")
            for rule in ("pattern", "enum", "minimum", "maximum", "lookup", "unique"):
                if getattr(field, rule) not in (None, False):
                    rules.append(rule)
            if plan.enrich is not None and plan.enrich.field_names[0] == field.name:
                rules.append("enrich")
            if field.unique and field.type != FieldType.STRING:
                rules = [rule for rule in rules if rule in TYPED_UNIQUE_RULES]
            targets += [(plan, rule) for rule in rules]
        if not generator.fixed_width:
            targets.append((None, "field_count"))
        if generator.format.encoding in BAD_BYTES:
            targets.append((None, "encoding"))
        return targets

    def inject(self, frame: pl.DataFrame, first_row: int, injected: np.ndarray) -> InjectedBatch:
        batch = InjectedBatch(frame, first_row, set(injected.tolist()))
        for index in injected.tolist():
            targets = list(self.targets)
            while targets:  # a target this row cannot break gives way to another
                plan, rule = targets.pop(self.random.randrange(len(targets)))
                if plan is None:
                    self._break_record(rule, index, batch)
                    break
                if self._break_cell(plan, rule, index, batch):
                    break
        clean_rows = pl.Series(~np.isin(np.arange(frame.height), injected))
        for name in self.injected_values:
            clean_values = frame[name].filter(clean_rows).drop_nulls()
            if len(clean_values):
                self.earlier_clean[name] = clean_values[-1]
        batch.entries.sort()
        return batch

    def _break_record(self, rule: str, index: int, batch: InjectedBatch) -> None:
        generator = self.generator
        values = batch.values(index)
        batch.entries.append((batch.first_row + index, "", rule))
        if rule == "encoding":
            plan = self.random.choice(generator.plans)
            batch.set_cell(plan.name, index, self.random.choice(self.placeholders) + (values[plan.name] or "")[1:])
            batch.has_bad_bytes = True
            return
        delimiter = generator.delimiter
        others_empty = all(not values[plan.name] for plan in generator.plans[:-1])
        if len(generator.plans) > 1 and not others_empty and self.random.random() < 0.5:
            # A missing field: the last cell is emptied and its delimiter dropped.
            batch.set_cell(generator.plans[-1].name, index, None)
            batch.lines[index] = lambda line: line[: -len(delimiter)]
        else:
            extra = f"extra{index}"
            batch.lines[index] = lambda line: line + delimiter + extra

    def _break_cell(self, plan: FieldPlan, rule: str, index: int, batch: InjectedBatch) -> bool:
        """Give the row an error aimed at `rule` in `plan`'s cell; False when no candidate does."""
        row_number = batch.first_row + index
        values = batch.values(index)
        if rule == "unique":
            copied = self._earlier_clean_value(plan, index, batch)
            candidates = [copied] if copied is not None else []
        else:
            candidates = self._candidates(plan, rule, values[plan.name], row_number)
        cells = {name: self.generator.by_name[name].cell(value) for name, value in values.items()}
        options = []
        for value in dict.fromkeys(candidates):
            outcome = self._outcome(plan, value, cells, row_number, copied=rule == "unique")
            if outcome is not None and rule in outcome[0]:
                options.append((value, outcome))
        if not options:
            return False
        value, (rules, converted) = self.random.choice(options)
        batch.set_cell(plan.name, index, value)
        for broken in rules:
            field_name = plan.enrich.field_names[0] if broken == "enrich" else plan.name
            batch.entries.append((row_number, field_name, broken))
        if plan.field.unique and converted is not None and rule != "unique":
            self.injected_values[plan.name].setdefault(converted, row_number)
        return True

    def _outcome(self, plan: FieldPlan, value: str, cells: dict[str, str], row_number: int, copied: bool):
        """The rules the row breaks with `value` in `plan`'s cell, and the cell's converted value;
        None when `value` is not one to write."""
        generator = self.generator
        if not generator.can_write(value, plan):
            return None
        cell = plan.cell(value)
        rules, converted = plan.judge.judge(cell)
        if plan.field.unique and converted is not None:
            if not copied and not rules:
                return None  # it might equal the clean value of another row
            if copied or self.injected_values[plan.name].get(converted, row_number) < row_number:
                rules.append("unique")
        cells = {**cells, plan.name: cell}
        if generator.fixed_width and all(not text.strip() for text in cells.values()):
            return None  # a line of spaces: the contract does not say whether it is a record
        if plan.enrich is not None and plan.enrich.fails(cells):
            rules.append("enrich")
        return rules, converted

    def _earlier_clean_value(self, plan: FieldPlan, index: int, batch: InjectedBatch) -> str | None:
        """The value of an earlier row without any error, so that row is the value's first holder."""
        column = batch.frame[plan.name]
        for _ in range(8):
            if index == 0:
                break
            earlier = self.random.randrange(index)
            if earlier not in batch.injected_rows and column[earlier] is not None:
                return column[earlier]
        return self.earlier_clean.get(plan.name)

    def _candidates(self, plan: FieldPlan, rule: str, value: str | None, row_number: int) -> list[str]:
        """Texts that may break `rule` in this field; the caller keeps those that do."""
        field = plan.field
        base = value or (self.random.choice(plan.examples) if plan.examples else "0")
        if rule == "required":
            return ["", "  "] if field.trim and not self.generator.fixed_width else [""]
        if rule == "type":
            return self._type_candidates(field, base)
        if rule == "min_length":
            short = base[: field.min_length - 1].rstrip()
            return [short, short[:1], "x" * (field.min_length - 1), "1" * (field.min_length - 1)]
        if rule == "max_length":
            missing = field.max_length + 1 - len(base)
            return [base + "x" * missing, base + base[-1] * missing, "0" * missing + base, "x" * (field.max_length + 1)]
        if rule == "pattern":
            digits_as_letters = re.sub(r"[0-9]", "X", base)
            return [
                base[:-1],
                base[1:],
                "#" + base[1:],
                base + "#",
                base.swapcase(),
                digits_as_letters,
                f"?{row_number}",
            ]
        if rule == "enum":
            return [base.upper(), base.lower(), base + "x", base[:-1], "other", "UNKNOWN", "ZZ"]
        if rule in ("minimum", "maximum"):
            return self._bound_candidates(field, rule)
        if rule in ("lookup", "enrich"):
            mutated = [base[:-1] + "Z", "Z" + base[1:], base + "X", "ZZ", "XX", "QQ9", f"Z{row_number}"]
            samples = self.generator.generated_candidates(plan, 5)
            if rule == "enrich" and len(plan.enrich.field_names) > 1:
                # Another table row's value: each exists, the combination does not.
                column = plan.enrich.field_names.index(field.name)
                samples += [self.random.choice(plan.enrich.table_rows)[column] for _ in range(5)]
            return mutated + samples
        raise ValueError(f"no candidates for rule {rule!r}")

    def _type_candidates(self, field: FieldSpec, base: str) -> list[str]:
        if field.type == FieldType.INTEGER:
            return ["12x", "N/A", "1,000", "1e3", "4.5", "9223372036854775808", "-"]
        if field.type == FieldType.DECIMAL:
            return ["12,5O0", "N/A", "1e5", "1.2.3", ".5", "5.", "$12.00"]
        if field.type == FieldType.BOOLEAN:
            return ["maybe", "2", "unknown", "?"]
        return [re.sub(r"[0-9]", "9", base), "2019-13-45", "31/02/2020", "not a date", "N/A", "0" * len(base)]

    def _bound_candidates(self, field: FieldSpec, rule: str) -> list[str]:
        bound = field.bound(rule)
        sign = -1 if rule == "minimum" else 1
        pad = field.min_length or 0
        if field.type == FieldType.INTEGER:
            return [f"{bound + sign * step:0{pad}d}" for step in (1, 7, 100)]
        if field.type == FieldType.DECIMAL:
            return [format(bound + sign * Decimal(step), "f").zfill(pad) for step in ("0.01", "1", "100.5")]
        texts = []
        moment = as_datetime(bound)
        for step in BOUND_STEPS:
            try:
                texts.append((moment + sign * step).strftime(field.date_format))
            except OverflowError:
                pass
        return texts


def generate_upload(
    spec: FileSpec,
    rows: int,
    out: Path,
    *,
    error_rate: float = 0.0,
    seed: int = 0,
    company_id: str = "acme",
    home: Path,
    filespecs_dir: Path,
) -> GenerationSummary:
    """Write `rows` records following `spec` to `out`, with about `error_rate` of them given one
    error, and the answer key beside it (`out` + `.expected.csv`). Same arguments, same bytes."""
    out = Path(out)
    generator = UploadGenerator(spec, rows, error_rate, seed, company_id, Path(home), Path(filespecs_dir))
    answer_key = out.with_name(out.name + ".expected.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        errors = generator.write(out, answer_key)
    except IngestError:
        # Found out part way (a unique date running out of values): leave no half-written file.
        out.unlink(missing_ok=True)
        answer_key.unlink(missing_ok=True)
        raise
    return GenerationSummary(rows=rows, errors=errors, out=out, answer_key=answer_key, bytes=out.stat().st_size)
