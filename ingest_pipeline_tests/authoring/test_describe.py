"""Unit tests of the inference behind `ingest-pipeline describe` (no Dagster, no warehouse)."""

import pytest
import yaml

from ingest_pipeline.authoring.describe import (
    ColumnProfile,
    DescribeError,
    describe_sample,
    detect_encoding,
    fixed_width_columns,
    infer_field,
    read_sample,
    render_yaml,
    sniff_dialect,
    yaml_scalar,
)
from ingest_pipeline.core.filespec import FilespecLoader, load_filespec


def inferred(values: list[str]) -> dict:
    profile = ColumnProfile()
    for value in values:
        profile.add(value)
    return {key: value for key, value, _ in infer_field("x", None, profile, None).keys}


def test_types_follow_the_contracts_texts():
    assert inferred(["1", "+2", "-3", " 40 "])["type"] == "integer"
    assert inferred(["01", "22"])["type"] == "string"  # an integer would read 01 as 1
    assert inferred(["01", "22"])["pattern"] == "[0-9]{2}"
    assert inferred(["1.50", "2", "-0.25"])["type"] == "decimal"
    assert inferred(["1e5", "2.0"])["type"] == "string"  # no exponent in the contract's decimal
    assert inferred(["1,000.00", "2.00"])["type"] == "string"  # no thousands separators
    assert inferred(["99999999999999999999", "1"])["type"] == "string"  # beyond 64 bits
    assert inferred(["Yes", "no", "Y"])["type"] == "boolean"
    assert inferred(["1", "0", "1"])["type"] == "integer"


def test_dates_are_read_strictly_as_the_pipeline_reads_them():
    assert inferred(["2024-01-31", "2023-12-01"])["format"] == "%Y-%m-%d"
    assert inferred(["2019-1-5", "2024-01-31"])["type"] == "string"  # not %Y-%m-%d, strictly
    assert inferred(["2024-02-30"])["type"] == "string"  # written right, but no such date
    assert inferred(["31/01/2024", "01/02/2024"])["format"] == "%d/%m/%Y"
    assert inferred(["01/31/2024", "02/01/2024"])["format"] == "%m/%d/%Y"
    moment = inferred(["2024-01-31 13:45:00", "2024-02-01 00:00:00"])
    assert (moment["type"], moment["format"]) == ("datetime", "%Y-%m-%d %H:%M:%S")


def test_rules_need_the_whole_sample():
    column = inferred(["a", "b", "a", "b", "c", "a"])
    assert column["required"] is True and column["enum"] == ["a", "b", "c"] and "unique" not in column
    assert "required" not in inferred(["a", "", "b"])
    assert "required" not in inferred(["a", "   ", "b"])  # blank after trimming is null
    unique = inferred([f"id{i}" for i in range(100)])
    assert unique["unique"] is True and "enum" not in unique and unique["max_length"] == 4
    assert inferred(["5", "05"])["type"] == "string"  # as integers, 5 and 05 would be one value
    assert inferred(["1", "2", "3"])["minimum"] == "0" and "minimum" not in inferred(["1", "-2"])


def test_evidence_is_written_beside_each_rule():
    profile = ColumnProfile()
    for value in ["x", "y"] * 25_000:
        profile.add(value)
    evidence = {key: why for key, _, why in infer_field("x", None, profile, None).keys}
    assert evidence["required"] == "no empty cell in 50,000 rows"
    assert evidence["enum"] == "2 distinct values in 50,000 rows"


def test_dialect_and_encoding():
    assert sniff_dialect("a;b;c\n1;2;3\n")[0] == ";"
    assert sniff_dialect("a\tb\n1\t2,5\n")[0] == "\t"
    assert sniff_dialect('a|b\n"x|y"|2\n')[:2] == ("|", '"')
    assert detect_encoding("é".encode())[0] == "utf-8"
    assert detect_encoding("é€".encode("cp1252"))[0] == "cp1252"
    assert detect_encoding(b"\x81\xe9")[0] == "latin-1"  # 0x81 is no cp1252 character
    with pytest.raises(DescribeError, match="NUL"):
        detect_encoding("a,b".encode("utf-16"))


def test_the_sample_is_bounded(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(1000)))
    sample = read_sample(path, 10)
    assert not sample.whole_file and sample.data.count(b"\n") == 12
    draft = describe_sample(path, "big", sample_rows=10)
    assert draft.rows == 10 and "the first; --sample-rows 10" in draft.notes[0]
    assert read_sample(path, 10, max_bytes=20).data.count(b"\n") < 5


def test_yaml_scalars_read_back_as_the_same_text():
    for text in [
        "yes",
        "null",
        "",
        "a: b",
        "#x",
        "it's",
        'say "hi"',
        " pad ",
        "01",
        "%Y-%m-%d",
        "E[0-9]{8}",
        "Ünïcode",
    ]:
        assert yaml.load(f"v: {yaml_scalar(text)}", Loader=FilespecLoader)["v"] == text, text
    texts = ["a, b", "x]", "{y}", "a:b", "two\r\nlines", "Lee Jr.", "n/a", "-", "@home"]
    listed = "[" + ", ".join(yaml_scalar(text) for text in texts) + "]"  # as an enum is written
    assert yaml.load(f"v: {listed}", Loader=FilespecLoader)["v"] == texts


def test_fixed_width_columns_from_shared_spaces():
    lines = ["0001 Ann   12.50", "0002 Bob  100.00", "0003 Cy     3.25"]
    assert fixed_width_columns(lines) == [(1, 5), (6, 5), (11, 6)]


def test_fixed_width_without_columns_of_spaces_says_what_to_do(tmp_path):
    path = tmp_path / "dense.txt"
    path.write_text("0001Ann12.50\n0002Bob100.0\n")
    with pytest.raises(DescribeError, match="write start and width per field by hand"):
        describe_sample(path, "dense", "fixed_width")


def test_the_draft_is_a_valid_filespec_with_sources_for_odd_headers(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("Employee ID,Hire Date,2nd Name\nE1,2024-01-31,x\nE2,2024-02-01,y\n")
    draft = describe_sample(path, "odd")
    out = tmp_path / "odd.yaml"
    out.write_text(render_yaml(draft, out))
    spec = load_filespec(out)
    assert [(f.name, f.source) for f in spec.fields] == [
        ("employee_id", "Employee ID"),
        ("hire_date", "Hire Date"),
        ("c_2nd_name", "2nd Name"),
    ]
    assert out.read_text().startswith("# yaml-language-server: $schema=")


def test_a_repeated_header_is_one_sentence(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("id,Name,name\n1,a,b\n")
    with pytest.raises(DescribeError, match="header columns 2 and 3 are both 'name'"):
        describe_sample(path, "dup")


def test_the_layout_is_sniffed_when_not_given(tmp_path):
    fixed = tmp_path / "fixed.txt"
    fixed.write_text("0001 Lee, Jr.   12.50\n0002 Bob        100.00\n0003 Cy Young     3.25\n")
    assert describe_sample(fixed, "fixed").kind == "fixed_width"
    delimited = tmp_path / "delimited.txt"
    delimited.write_text("a|b\n1|x\n2|y\n")
    assert describe_sample(delimited, "delimited").kind == "delimited"
