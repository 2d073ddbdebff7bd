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
        # A misspelt key is named, not only the key it leaves missing.
        ("form_type: t\nfeilds:\n  - {name: a}\n", "spec.yaml: top level: unknown key 'feilds'"),
        ("form_type: t\nfields:\n  - {nmae: a}\n", "spec.yaml: fields[0]: unknown key 'nmae'"),
        # Numbers beyond what they are stored in or compared as.
        ("form_type: t\nversion: 99999999999999999999999\nfields: [{name: a}]\n", "spec.yaml: version: must be at most 2147483647"),
        ("form_type: t\nversion: 2147483648\nfields: [{name: a}]\n", "spec.yaml: version: must be at most 2147483647"),
        ("form_type: t\nformat: {skip_rows: 99999999999999999999}\nfields: [{name: a}]\n", "format.skip_rows: must be at most"),
        ("form_type: t\nfields: [{name: a, max_length: 99999999999999999999}]\n", "fields[0] (a).max_length: must be at most"),
        ("form_type: t\nformat: {kind: fixed_width}\nfields: [{name: a, start: 1, width: 4294967296}]\n", "fields[0] (a).width: must be at most"),
        ("form_type: t\nfields: [{name: a, type: decimal, minimum: 1e400}]\n", "fields[0] (a): minimum '1e400' is not a valid decimal"),
        ("form_type: t\nfields: [{name: a, type: decimal, maximum: NaN}]\n", "fields[0] (a): maximum 'NaN' is not a valid decimal"),
        ("form_type: t\nfields: [{name: a, type: decimal, maximum: Infinity}]\n", "maximum 'Infinity' is not a valid decimal"),
        ("form_type: t\nfields: [{name: a, type: decimal, minimum: '1.5e3'}]\n", "minimum '1.5e3' is not a valid decimal"),
        ("form_type: t\nfields: [{name: a, type: decimal, minimum: '1" + "0" * 400 + "'}]\n", "is beyond the range of a decimal field"),
        ("form_type: t\nfields: [{name: a, type: integer, maximum: 9223372036854775808}]\n",
         "fields[0] (a): maximum '9223372036854775808' is outside the 64-bit range of an integer field"),
        ("form_type: t\nfields: [{name: a, type: integer, minimum: -9223372036854775809}]\n", "outside the 64-bit range"),
        # Outside the regex dialect: Python re and RE2 read these differently.
        ("form_type: t\nfields: [{name: a, pattern: '[[:digit:]]+'}]\n", "fields[0] (a).pattern: pattern '[[:digit:]]+' has '[' inside a character class"),
        ("form_type: t\nfields: [{name: a, pattern: '[^[:space:]]'}]\n", "has '[' inside a character class"),
        ("form_type: t\nfields: [{name: a, pattern: '[[=e=]]'}]\n", "has '[' inside a character class"),
        ("form_type: t\nfields: [{name: a, pattern: '[]a[]'}]\n", "has '[' inside a character class"),
        # Delimited-only keys on a fixed-width spec would be silently ignored.
        ("form_type: t\nformat: {kind: fixed_width, delimiter: '|'}\nfields: [{name: a, start: 1, width: 2}]\n",
         "spec.yaml: format.delimiter: applies to delimited files only, not to kind fixed_width"),
        ("form_type: t\nformat: {kind: fixed_width, header: false}\nfields: [{name: a, start: 1, width: 2}]\n",
         "spec.yaml: format.header: applies to delimited files only"),
        ("form_type: t\nformat: {kind: fixed_width, quote: \"'\"}\nfields: [{name: a, start: 1, width: 2}]\n",
         "spec.yaml: format.quote: applies to delimited files only"),
        ("form_type: t\nfields: [{name: b, type: boolean, format: {true: [Y], True: [J], false: [N]}}]\n",
         "must have exactly the keys true and false"),
    ],
)
def test_broken_filespecs_name_the_key_and_the_problem(text, expected):
    message = problem(text)
    assert expected in message and "\n" not in message


def test_numbers_at_the_edge_of_their_range_are_accepted():
    spec = parse(
        "form_type: t\nversion: 2147483647\nfields:\n"
        "  - {name: i, type: integer, minimum: '-9223372036854775808', maximum: '+9223372036854775807'}\n"
        "  - {name: d, type: decimal, minimum: '-0.000001', maximum: '1" + "0" * 300 + ".5'}\n"
    )
    assert spec.version == 2**31 - 1
    assert (spec.fields[0].bound("minimum"), spec.fields[0].bound("maximum")) == (-(2**63), 2**63 - 1)
    assert spec.fields[1].bound("minimum") == Decimal("-0.000001")


def test_pattern_dialect_is_the_common_subset_of_python_re_and_re2():
    for allowed in (r"E[0-9]{8}", r"(?i)abc|def", r"[^@\s]+@[^@\s]+\.[a-z]+", r"(?P<x>a)+", r"\d{3}-\d{4}",
                    r"[]a]", r"[^]a]", r"\[[0-9]\]", r"[\[\]]", r"[:digit:]", r"[a-z]+\]"):  # fmt: skip
        check_pattern_dialect(allowed)
    for refused in (r"a(?=b)", r"a(?!b)", r"(?<!a)b", r"(?P<x>a)(?P=x)", r"a++", r"\Z", r"(?x)a b", r"(?>a)",
                    r"[[:alpha:]]", r"x[a-z[:digit:]]", r"[a[]"):  # fmt: skip
        with pytest.raises(ValueError):
            check_pattern_dialect(refused)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"form_type: dup\nversion: 1\nfields: [{name: a}]\nversion: 2\n",
         "dup.yaml: line 4: duplicate key 'version' (YAML would silently keep only the last one)"),
        (b"form_type: dup\nfields:\n  - {name: a, type: integer, minimum: 5, minimum: 1}\n",
         "dup.yaml: line 3: duplicate key 'minimum'"),
        (b"form_type: dup\nfields:\n  - name: a\n    required: true\n    pattern: '[0-9]+'\n    required: false\n",
         "dup.yaml: line 6: duplicate key 'required'"),
        (b"form_type: dup\nformat:\n  delimiter: ';'\n  delimiter: ','\nfields: [{name: a}]\n",
         "dup.yaml: line 4: duplicate key 'delimiter'"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "dup.yaml: is a binary file (byte 0x00 at offset 8), not a YAML filespec"),
        (b"form_type: dup\x00\nfields: []\n", "dup.yaml: is a binary file (byte 0x00 at offset 14)"),
        (b"form_type: caf\xe9\nfields: []\n", "dup.yaml: is not UTF-8 text (byte 0xe9 at offset 14)"),
        ("form_type: dup\nfields: [{name: a}]\n".encode("utf-16"), "dup.yaml: is UTF-16 text"),
        (b"form_type: dup\nfields:\n  - {name: a\x07}\n", "dup.yaml: line 3: holds the character #x0007"),
        (b"form_type: dup\nfields:\n  - {name: a\n", "dup.yaml: not valid YAML at line 4: expected ',' or '}'"),
    ],
)
def test_load_filespec_refuses_in_one_line_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "dup.yaml"
    path.write_bytes(content)
    with pytest.raises(FilespecError) as raised:
        load_filespec(path)
    message = str(raised.value)
    assert message.startswith(str(path)) and expected in message
    assert "\n" not in message


def test_the_same_key_in_different_mappings_is_not_a_duplicate(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text("form_type: two\nfields:\n  - {name: a, required: true}\n  - {name: b, required: true}\n")
    assert [f.name for f in load_filespec(path).fields] == ["a", "b"]


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
