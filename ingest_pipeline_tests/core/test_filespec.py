"""Loading filespecs: valid ones round-trip, broken ones name the file, the key and the problem."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from ingest_pipeline.core.errors import FilespecError, UnknownFormTypeError
from ingest_pipeline.core.filespec import FileSpec, check_pattern_dialect, load_filespec, load_form_type, parse_filespec

PROJECT_FILESPECS = Path(__file__).resolve().parents[2] / "filespecs"


def parse(text: str) -> FileSpec:
    return parse_filespec(yaml.load(text, Loader=yaml.BaseLoader), "spec.yaml")


def problem(text: str) -> str:
    with pytest.raises(FilespecError) as caught:
        parse(text)
    return str(caught.value)


@pytest.mark.parametrize("path", sorted(PROJECT_FILESPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_project_filespecs_load_and_round_trip(path):
    spec = load_filespec(path)
    assert spec.form_type == path.stem
    assert FileSpec.model_validate_json(spec.model_dump_json()) == spec


def test_scalars_stay_text_where_the_contract_compares_text():
    spec = parse("form_type: t\nfields:\n  - {name: a, enum: [yes, no, 01]}\n  - {name: b, type: integer, required: true, minimum: 5}\n")
    assert spec.fields[0].enum == ["yes", "no", "01"]
    assert spec.fields[1].required is True and spec.fields[1].bound("minimum") == 5


def test_unquoted_yaml_nulls_are_unset_and_quoted_ones_are_text(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("form_type: t\ntitle:\nfields:\n  - {name: a, pattern: ~, source: null, enum: ['null', x]}\n")
    spec = load_filespec(path)
    assert spec.title is None and spec.fields[0].pattern is None and spec.fields[0].source is None
    assert spec.fields[0].enum == ["null", "x"]


def test_bounds_are_read_in_the_fields_type():
    spec = parse(
        "form_type: t\nfields:\n"
        "  - {name: d, type: date, format: '%d/%m/%Y', minimum: 2020-01-31, maximum: 31/12/2030}\n"
        "  - {name: x, type: decimal, minimum: '0.5'}\n"
        "  - {name: t, type: datetime, maximum: '2030-01-01T00:00:00'}\n"
    )
    assert spec.fields[0].bound("minimum") == dt.date(2020, 1, 31)
    assert spec.fields[0].bound("maximum") == dt.date(2030, 12, 31)
    assert spec.fields[1].bound("minimum") == Decimal("0.5")
    assert spec.fields[2].bound("maximum") == dt.datetime(2030, 1, 1)


def test_boolean_format_mapping_accepts_yaml_true_and_false_keys():
    spec = parse("form_type: t\nfields:\n  - {name: b, type: boolean, format: {true: [Y, Oui], false: [N]}}\n")
    assert spec.fields[0].boolean_texts == (("y", "oui"), ("n",))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("form_type: t\nfields:\n  - {name: a, requird: true}\n", "spec.yaml: fields[0] (a): unknown key 'requird'"),
        ("form_type: t\nfieldz: []\nfields: [{name: a}]\n", "spec.yaml: top level: unknown key 'fieldz'"),
        ("form_type: t\nformat: {kind: fixed_width}\nfields:\n  - {name: a, width: 3}\n", "fields[0] (a).start: is required for a fixed_width field"),
        ("form_type: t\nfields:\n  - {name: a, pattern: '(?<=x)y'}\n", "fields[0] (a).pattern: pattern '(?<=x)y' uses look-behind"),
        ("form_type: t\nfields:\n  - {name: a, pattern: '(a)\\1'}\n", "uses \\1"),
        ("form_type: t\nfields:\n  - {name: a, pattern: '(unclosed'}\n", "is not a valid regular expression"),
        ("form_type: t\nfields:\n  - {name: a, type: integer, minimum: x}\n", "minimum 'x' is not a valid integer"),
        ("form_type: t\nfields:\n  - {name: a, minimum: 1}\n", "minimum applies to integer, decimal, date and datetime"),
        ("form_type: t\nfields:\n  - {name: a, type: money}\n", "fields[0] (a).type: Input should be"),
        ("form_type: t\nfields:\n  - {name: a}\n  - {name: a}\n", "fields[1] (a).name: 'a' is used by two fields"),
        ("form_type: T\nfields: [{name: a}]\n", "form_type: 'T' is not a valid form type id"),
        ("form_type: t\nformat: {delimiter: ';;'}\nfields: [{name: a}]\n", "format.delimiter: must be one ASCII character"),
        ("form_type: t\nformat: {encoding: utf-16}\nfields: [{name: a}]\n", "format.encoding: must be one of"),
        ("form_type: t\nfields: [{name: a, lookup: states.code}]\n", "must be ref.<table>.<column> or company.<table>.<column>"),
        ("form_type: t\nfields: [{name: a}]\nenrich:\n  - {lookup: ref.x, on: {b: id}, add: {y: id}}\n", "enrich[0].on: 'b' is not a field"),
        ("form_type: t\nfields: [{name: a}]\nquality: {max_error_rate: 2}\n", "quality.max_error_rate: must be between 0 and 1"),
        ("form_type: t\nfields: []\n", "fields: must list at least one field"),
    ],
)
def test_broken_filespecs_name_the_key_and_the_problem(text, expected):
    assert expected in problem(text)


def test_pattern_dialect_is_the_common_subset_of_python_re_and_re2():
    for allowed in (r"E[0-9]{8}", r"(?i)abc|def", r"[^@\s]+@[^@\s]+\.[a-z]+", r"(?P<x>a)+", r"\d{3}-\d{4}"):
        check_pattern_dialect(allowed)
    for refused in (r"a(?=b)", r"a(?!b)", r"(?<!a)b", r"(?P<x>a)(?P=x)", r"a++", r"\Z", r"(?x)a b", r"(?>a)"):
        with pytest.raises(ValueError):
            check_pattern_dialect(refused)


def test_load_filespec_reports_yaml_syntax_and_file_name_mismatch(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("form_type: broken\nfields: [{name: a\n")
    with pytest.raises(FilespecError, match=r"broken.yaml: not valid YAML at line \d"):
        load_filespec(broken)
    renamed = tmp_path / "other.yaml"
    renamed.write_text("form_type: something\nfields: [{name: a}]\n")
    with pytest.raises(FilespecError, match="must equal the file's name 'other'"):
        load_filespec(renamed)


def test_unknown_form_type_lists_the_known_ones(tmp_path):
    (tmp_path / "roster.yaml").write_text("form_type: roster\nfields: [{name: a}]\n")
    with pytest.raises(UnknownFormTypeError, match=r"unknown form type 'claims'.*known form types: roster"):
        load_form_type("claims", tmp_path)
