"""Each cell rule of filespec.md, judged through the generated pandera schema."""

import datetime as dt
import random
import re

import polars as pl
import pytest
import yaml

from ingest_pipeline.core.filespec import parse_filespec
from ingest_pipeline.core.judge import (
    ChunkJudge,
    ReferenceSnapshot,
    build_schema,
    converted,
    converted_once_per_value,
    typed_column,
)

STATES = pl.DataFrame({"code": ["CA", "NY", "CA"], "name": ["California", "New York", "Second California"]})


def judge(field_yaml: str, values: list[str], enrich: str = "", tables: dict | None = None):
    spec = parse_filespec(
        yaml.load(f"form_type: t\nfields:\n  - {field_yaml}\n{enrich}", Loader=yaml.BaseLoader), "t.yaml"
    )
    reference = ReferenceSnapshot(tables or {("ref", "states"): STATES})
    raw = pl.DataFrame({f"raw:{spec.fields[0].name}": values}, schema={f"raw:{spec.fields[0].name}": pl.String})
    rows = pl.Series(range(1, len(values) + 1), dtype=pl.Int64)
    return ChunkJudge(spec, reference).judge(raw, rows, rows + 1)


def broken(field_yaml: str, values: list[str], **kwargs) -> list[tuple[int, str]]:
    """(row_number, rule) of every message, sorted."""
    messages = judge(field_yaml, values, **kwargs).messages
    return sorted(zip(messages["row_number"].to_list(), messages["rule"].to_list(), strict=True))


def test_null_only_fails_required():
    assert broken("{name: a, required: true, min_length: 3, pattern: 'x+'}", ["", "   ", "xxx"]) == [(1, "required"), (2, "required")]
    assert broken("{name: a, min_length: 3, pattern: 'x+', enum: [xxx]}", ["", "  "]) == []


def test_trim_false_keeps_spaces_and_only_empty_text_is_null():
    assert broken("{name: a, required: true, max_length: 2, trim: false}", ["", "   ", " a"]) == [(1, "required"), (2, "max_length")]


@pytest.mark.parametrize(
    ("field_type", "good", "bad"),
    [
        ("integer", ["0", "-12", "+7", "007", "9223372036854775807"], ["1.0", "1e3", "12a", "9223372036854775808", "1 000"]),
        ("decimal", ["0", "-1.5", "+2.25", "10"], ["1.", ".5", "1,000.00", "1e5", "NaN", "$5"]),
        ("date", ["2019-01-05", "2020-02-29"], ["2019-1-5", "2019-02-30", "2021-02-29", "05/01/2019", "2019-01-05T00:00:00"]),
        ("datetime", ["2019-01-05T13:45:00"], ["2019-01-05 13:45:00", "2019-01-05T25:00:00", "2019-01-05"]),
        ("boolean", ["true", "Yes", "N", "0", "FALSE"], ["maybe", "2", "t"]),
    ],
)
def test_type_conversion_is_strict(field_type, good, bad):
    result = broken(f"{{name: a, type: {field_type}}}", good + bad)
    assert result == [(len(good) + i + 1, "type") for i in range(len(bad))]


def test_integers_are_read_as_the_contract_reads_them():
    rng = random.Random(3)
    texts = ["".join(rng.choice("0123456789+- .e\u0663x_") for _ in range(rng.randint(1, 21))) for _ in range(20_000)]
    texts += ["9223372036854775807", "-9223372036854775808", "9223372036854775808", "-9223372036854775809"]
    field = parse_filespec({"form_type": "t", "fields": [{"name": "a", "type": "integer"}]}, "t.yaml").fields[0]
    got = pl.DataFrame({"a": texts}).select(converted(pl.col("a"), field)).to_series().to_list()
    expected = [int(t) if re.fullmatch(r"[+-]?[0-9]+", t) and -(2**63) <= int(t) < 2**63 else None for t in texts]
    assert got == expected
    assert sum(value is not None for value in got) > 1_000  # many readable ones among them


def test_type_failure_skips_the_cells_other_rules():
    assert broken("{name: a, type: integer, minimum: 5, max_length: 1, enum: ['7']}", ["abc"]) == [(1, "type")]


def test_every_failing_rule_is_reported_not_only_the_first():
    assert broken("{name: a, min_length: 5, pattern: '[0-9]+', enum: [12345]}", ["ab"]) == [
        (1, "enum"), (1, "min_length"), (1, "pattern")]  # fmt: skip


def test_lengths_count_characters_of_the_trimmed_text():
    assert broken("{name: a, min_length: 2, max_length: 3}", [" é ", "ñoño", "  ab  ", "abc"]) == [(1, "min_length"), (2, "max_length")]


def test_pattern_must_match_the_whole_trimmed_text():
    assert broken("{name: a, pattern: 'E[0-9]{3}'}", ["E123", " E123 ", "E1234", "xE123", "E12"]) == [(3, "pattern"), (4, "pattern"), (5, "pattern")]


def test_enum_compares_text_case_sensitively():
    assert broken("{name: a, type: integer, enum: ['1', '2']}", ["1", "01", "2"]) == [(2, "enum")]
    assert broken("{name: a, enum: [Active]}", ["Active", "active"]) == [(2, "enum")]


def test_minimum_and_maximum_are_inclusive_in_the_fields_type():
    assert broken("{name: a, type: integer, minimum: 0, maximum: 168}", ["0", "168", "-1", "169"]) == [(3, "minimum"), (4, "maximum")]
    assert broken("{name: a, type: decimal, minimum: '0.01'}", ["0.01", "0.009"]) == [(2, "minimum")]
    assert broken("{name: a, type: date, format: '%d/%m/%Y', maximum: '2020-12-31'}", ["31/12/2020", "01/01/2021"]) == [(2, "maximum")]


def test_lookup_compares_trimmed_text_with_the_reference_column():
    assert broken("{name: a, lookup: ref.states.code}", ["CA", " NY ", "ca", "ZZ"]) == [(3, "lookup"), (4, "lookup")]


def test_warnings_are_reported_but_do_not_reject():
    result = judge("{name: a, pattern: 'x', severity: warning}", ["y", "x"])
    assert result.messages["severity"].to_list() == ["warning"]
    assert result.rejected.to_list() == [False, False]


def test_errors_reject_the_row_and_messages_keep_the_raw_text():
    result = judge("{name: a, type: integer}", ["  12x ", "3"])
    assert result.rejected.to_list() == [True, False]
    assert result.messages["value"].to_list() == ["  12x "]
    assert result.messages["message"][0] == "Field 'a' must be a whole number (digits with an optional sign), but is '12x'."


def test_converted_values_have_the_contract_types():
    frame = judge("{name: a, type: datetime, format: '%d.%m.%Y %H:%M'}", ["05.01.2019 13:45"]).frame
    assert frame[typed_column("a")].to_list() == [dt.datetime(2019, 1, 5, 13, 45)]


ENRICH = "enrich:\n  - {lookup: ref.states, on: {a: code}, add: {state_name: name}, required: true}\n"


def test_enrich_adds_text_of_the_first_matching_table_row_and_requires_a_match():
    result = judge("{name: a}", ["CA", "ZZ", ""], enrich=ENRICH)
    assert result.frame["state_name"].to_list() == ["California", None, None]
    assert sorted(zip(result.messages["row_number"], result.messages["rule"], result.messages["field"], strict=True)) == [
        (2, "enrich", "a"), (3, "enrich", "a")]  # fmt: skip


def test_optional_enrich_leaves_nulls_without_a_message():
    result = judge("{name: a}", ["NY", "ZZ"], enrich=ENRICH.replace("required: true", "required: false"))
    assert result.frame["state_name"].to_list() == ["New York", None]
    assert result.messages.is_empty()


def test_schema_is_a_pandera_schema_with_one_named_check_per_rule():
    spec = parse_filespec(yaml.load("form_type: t\nfields:\n  - {name: a, type: integer, minimum: 1, maximum: 9, required: true}\n",
                                    Loader=yaml.BaseLoader), "t.yaml")  # fmt: skip
    column = build_schema(spec, {}).columns["a"]
    assert column.nullable is False
    assert [check.name for check in column.checks] == ["type", "minimum", "maximum"]


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("%d/%m/%y", ["05/01/69", "05/01/68"], ["5/1/69", "05/01/1969"]),
        ("%Y-%m-%d %H:%M:%S.%f", ["2020-01-05 10:00:00.123456"], ["2020-01-05 10:00:00.123", "2020-01-05 10:00:00"]),
        ("%Y-%m-%dT%H:%M:%S%z", ["2020-01-05T10:00:00+0100"], ["2020-01-05T10:00:00"]),
        ("%I:%M %p %d %b %Y", ["01:30 PM 05 Jan 2020"], ["1:30 PM 05 Jan 2020", "13:30 PM 05 Jan 2020", "01:30 PM 05 jan 2020"]),
    ],
)
def test_dates_are_read_as_pythons_strptime_reads_them(fmt, good, bad):
    result = judge(f"{{name: a, type: datetime, format: '{fmt}'}}", good + bad)
    assert sorted(result.messages["row_number"].to_list()) == list(range(len(good) + 1, len(good) + len(bad) + 1))
    expected = [dt.datetime.strptime(text, fmt) for text in good]
    expected = [v.astimezone(dt.UTC).replace(tzinfo=None) if v.tzinfo else v for v in expected]
    assert result.frame[typed_column("a")].to_list()[: len(good)] == expected



@pytest.mark.parametrize(("fmt", "text"), [("%Y-%m-%d", "0000-01-01"), ("%Y-%m-%d", "0943-11-25"), ("%Y-%m-%dT%H:%M:%S", "0999-12-31T10:00:00")])
def test_years_python_cannot_write_back_are_not_dates(fmt, text):
    # Python has no year 0, and its %Y writes years before 1000 with fewer digits: no round trip.
    kind = "date" if "H" not in fmt else "datetime"
    result = judge(f"{{name: a, type: {kind}, format: '{fmt}'}}", [text, "2020-01-05" + text[10:]])
    assert result.messages["rule"].to_list() == ["type"]
    assert result.messages["row_number"].to_list() == [1]


@pytest.mark.parametrize(("kind", "fmt", "texts"), [
    ("date", "%Y-%m-%d", ["2020-01-05", "2020-02-30", "0943-11-25", "05.01.2020", "2020-1-5", None, "1999-12-31"]),
    ("datetime", "%Y-%m-%d %H:%M", ["2020-01-05 10:00", "2020-01-05 25:00", "2020-01-05", None, "2021-06-30 23:59"]),
    ("date", "%d.%m.%y", ["05.01.20", "31.04.24", "05.01.2020", None, "29.02.96"]),
])  # fmt: skip
def test_repeating_dates_are_read_once_per_value_with_the_same_answers(kind, fmt, texts):
    spec = parse_filespec(yaml.load(f"form_type: t\nfields:\n  - {{name: a, type: {kind}, format: '{fmt}'}}\n",
                                    Loader=yaml.BaseLoader), "t.yaml")  # fmt: skip
    field = spec.fields[0]
    repeated = pl.Series("a", texts * 3000, dtype=pl.String)  # every value many times: read once each
    # Mostly distinct first rows, and all distinct (a timestamp): read cell by cell.
    repeating_less = pl.Series("a", [f"2020-01-{day:02d} x{i}" for i, day in enumerate(range(1, 29))] * 2 + texts, dtype=pl.String)
    all_distinct = pl.Series("a", [f"2020-01-{day:02d} y" for day in range(1, 29)] + texts, dtype=pl.String)
    for column in (repeated, repeating_less, all_distinct):
        cell_by_cell = column.to_frame().select(converted(pl.col("a"), field)).to_series()
        once = column.to_frame().select(converted_once_per_value(column, field)).to_series()
        assert once.name == typed_column("a") and once.dtype == cell_by_cell.dtype
        assert once.to_list() == cell_by_cell.to_list()
    assert repeated.to_frame().select(converted_once_per_value(repeated, field)).to_series().drop_nulls().len() > 0


def messages_of(field_yaml: str, values: list[str]) -> list[tuple[str, str]]:
    result = judge(field_yaml, values).messages
    return list(zip(result["rule"].to_list(), result["message"].to_list(), strict=True))


def test_a_date_written_right_that_does_not_exist_is_called_so():
    """29.02.2001 has the form DD.MM.YYYY; saying it "must be a date written as DD.MM.YYYY" misleads."""
    got = messages_of("{name: born, type: date, format: '%d.%m.%Y'}", ["29.02.2001", "31.04.2024", "2001-02-28", "1.2.2001", "28.02.2001"])
    assert got == [
        ("type", "Field 'born': '29.02.2001' is written as DD.MM.YYYY but is not a date that exists."),
        ("type", "Field 'born': '31.04.2024' is written as DD.MM.YYYY but is not a date that exists."),
        ("type", "Field 'born' must be a date written as DD.MM.YYYY (for example 31.01.2024), but is '2001-02-28'."),
        ("type", "Field 'born' must be a date written as DD.MM.YYYY (for example 31.01.2024), but is '1.2.2001'."),
    ]


def test_impossible_times_and_month_names():
    got = messages_of("{name: at, type: datetime, format: '%d %b %Y %I:%M %p'}",
                      ["31 Jan 2024 01:45 PM", "30 Feb 2024 01:45 PM", "01 Jan 2024 13:45 PM", "01 jan 2024 01:45 PM"])  # fmt: skip
    assert [message for _, message in got] == [
        "Field 'at': '30 Feb 2024 01:45 PM' is written as DD Mon YYYY hh:mm AM/PM but is not a date and time that exists.",
        "Field 'at': '01 Jan 2024 13:45 PM' is written as DD Mon YYYY hh:mm AM/PM but is not a date and time that exists.",
        # a real date whose month is written in lower case: the form is what is wrong
        "Field 'at' must be a date and time written as DD Mon YYYY hh:mm AM/PM (for example 31 Jan 2024 01:45 PM), "
        "but is '01 jan 2024 01:45 PM'.",
    ]


def test_pattern_messages_never_show_the_regular_expression():
    described = messages_of("{name: code, pattern: '[A-Z]{2}-[0-9]{5}', description: 'two letters, a dash, five digits'}", ["ab-1"])
    assert described == [("pattern", "Field 'code' does not have the expected form (two letters, a dash, five digits): 'ab-1'.")]
    (rule, message), = messages_of("{name: code, pattern: '[A-Z]{2}-[0-9]{5}'}", ["ab-1"])
    assert rule == "pattern" and "[A-Z]" not in message and "{5}" not in message
    example = message.split("(text like ")[1].split(")")[0]
    assert re.fullmatch("[A-Z]{2}-[0-9]{5}", example), message
    assert messages_of("{name: code, pattern: '[A-Z]{2}-[0-9]{5}'}", ["ab-1"]) == [(rule, message)]  # the same example every time
