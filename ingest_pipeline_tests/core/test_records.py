"""The vectorised tokenizer against Python's csv module, and its line and encoding bookkeeping."""

import csv
import io
import random

import numpy as np
import polars as pl
import pytest

from ingest_pipeline.core.filespec import FieldSpec, RecordFormat
from ingest_pipeline.core.records import (
    ASCII_WHITESPACE,
    WIDE_WHITESPACE,
    Structure,
    as_array,
    cells_may_need_trimming,
    delimited_cells,
    fixed_width_cells,
    record_spans,
    records_with_bad_bytes,
    slices,
    split_delimited,
    to_utf8,
)

COMMA = Structure(delimiter=ord(","), quote=ord('"'))


def read_with_csv_module(text: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank record, as Python's csv module reads them."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    records, line = [], 1
    for cells in reader:
        if cells:
            records.append((line, cells))
        line = reader.line_num + 1
    return records


def tokenize(text: str, expected: int) -> list[tuple[int, list[str]]]:
    buffer = text.encode("utf-8")
    spans, used = record_spans(as_array(buffer), COMMA)
    assert used == len(buffer)
    parsed = delimited_cells(buffer, spans, COMMA, expected)
    rows = [list(row) for row in zip(*[cell.to_list() for cell in parsed.cells], strict=True)]
    good = iter(rows)
    out = []
    for line, complete, count in zip(spans.line_offsets + 1, parsed.complete, parsed.cell_counts, strict=True):
        out.append((int(line), next(good) if complete else [f"<{count} cells>"]))
    return out


def random_csv(rng: random.Random, rows: int, stray_quotes: bool, cell_counts=(3, 3, 3, 2, 4)) -> str:
    pieces = ["a", "b c", "", "x,y", 'say "hi"', "line\nbreak", "crlf\r\nin", "é", " pad "]
    lines = []
    for _ in range(rows):
        cells = []
        for _ in range(rng.choice(cell_counts)):
            value = rng.choice(pieces)
            needs_quotes = any(c in value for c in ',"\r\n') or rng.random() < 0.2
            cells.append('"' + value.replace('"', '""') + '"' if needs_quotes else value)
        if stray_quotes and rng.random() < 0.1:
            cells[0] = 'ab"c'
        lines.append(",".join(cells))
        if rng.random() < 0.1:
            lines.append("")  # a blank line: not a record
    ending = rng.choice(["\n", "\r\n"])
    return ending.join(lines) + rng.choice(["", ending])


@pytest.mark.parametrize("stray_quotes", [False, True], ids=["well-formed", "stray-quotes"])
def test_tokenizer_agrees_with_csv_module(stray_quotes):
    rng = random.Random(42)
    for _ in range(200):
        text = random_csv(rng, rng.randint(1, 30), stray_quotes)
        expected = read_with_csv_module(text)
        got = tokenize(text, 3)
        assert [line for line, _ in got] == [line for line, _ in expected], text
        for (_, mine), (_, theirs) in zip(got, expected, strict=True):
            if len(theirs) == 3:
                assert mine == theirs, text
            else:
                assert mine == [f"<{len(theirs)} cells>"], text


def test_records_all_complete_are_cut_by_polars_and_agree_with_csv_module(monkeypatch):
    from ingest_pipeline.core import records

    used = []
    reader = records._cells_by_polars_reader
    monkeypatch.setattr(records, "_cells_by_polars_reader", lambda *a: used.append(out := reader(*a)) or out)
    rng = random.Random(7)
    for _ in range(200):
        text = random_csv(rng, rng.randint(1, 30), stray_quotes=False, cell_counts=(3,))
        assert tokenize(text, 3) == read_with_csv_module(text), text
    assert sum(result is not None for result in used) > 150  # the fast path, not the fallback, did the work


def some_cell_needs_trimming(text: str) -> bool:
    """The truth, from the exact reader: does trimming (polars' strip_chars) change any cell?"""
    buffer = text.encode("utf-8")
    spans, _ = record_spans(as_array(buffer), COMMA)
    cells = [cell for record in slices(buffer, spans.starts, spans.ends).to_list() for cell in split_delimited(record, ",", '"')]
    values = pl.Series(cells, dtype=pl.String)
    return bool((values.str.strip_chars() != values).any())


EDGE_PIECES = [" pad", "pad ", "\tx", "x\u00a0", "\u3000x", "\u2009", "x\r", "\x0b", " "]
INNER_PIECES = ["a", "b c", "", "x, y", 'say "hi" now', 'x "q" y', "é", "\u200bzero-width", "en\u2013dash", "a\rb", "\u00e9t\u00e9"]


def test_trimming_is_skipped_only_when_no_cell_has_whitespace_at_its_edges():
    rng = random.Random(11)
    skipped = clean = 0
    for _ in range(600):
        lines = []
        for _ in range(rng.randint(1, 20)):
            cells = []
            for _ in range(3):
                value = rng.choice(EDGE_PIECES) if rng.random() < 0.01 else rng.choice(INNER_PIECES)
                if rng.random() < 0.005:
                    value = "line\nbreak"
                quote = any(c in value for c in ',"\r\n') or rng.random() < 0.3
                cells.append('"' + value.replace('"', '""') + '"' if quote else value)
            lines.append(",".join(cells))
        ending = rng.choice(["\n", "\r\n"])
        text = ending.join(lines) + rng.choice(["", ending])
        if rng.random() < 0.05:  # the file ends inside a quoted cell
            text += ',"open' + rng.choice(["", " ", "\n", ending])
        buffer = text.encode("utf-8")
        spans, _ = record_spans(as_array(buffer), COMMA, find_spaces=True)
        needs = some_cell_needs_trimming(text)
        may_need = cells_may_need_trimming(as_array(buffer), spans, COMMA)
        assert may_need or not needs, repr(text)  # never skips a trim that would change a cell
        clean += not needs
        skipped += not may_need
    assert skipped > 0.8 * clean  # and does skip it for most chunks that need none


@pytest.mark.parametrize(("text", "may_need"), [
    ("a,b\n", False), ("a,b\r\n", False), ('a,"x, y","say ""hi"" now"\n', False), ("a,\u00e9,en\u2013dash\n", False),
    ("a, b\n", True), ("a,b \r\n", True), (' a,b', True), ('a," b"\n', True), ('a,"b """\n', False),
    ('a,""" b"\n', False), ('a,"b ",c\n', True), ("a,\u00a0b\n", True), ("a,b\u3000\n", True),
    ("a,b\u2009", True), ("a,b\u200b\n", False), ("a,b\r\r\n", True), ("a,b\t\n", True), ('a,"line\nbreak"\n', True), ('a,"b\n', True),
])  # fmt: skip
def test_whitespace_at_a_cell_edge_is_found(text, may_need):
    buffer = text.encode("utf-8")
    spans, _ = record_spans(as_array(buffer), COMMA, find_spaces=True)
    assert cells_may_need_trimming(as_array(buffer), spans, COMMA) is may_need
    if not may_need:
        assert not some_cell_needs_trimming(text)


def test_the_whitespace_table_is_what_polars_trims():
    characters = pl.Series([chr(code) for code in range(0x110000) if not 0xD800 <= code < 0xE000])
    trimmed = set(characters.filter(characters.str.strip_chars() == "").to_list())
    table = {chr(byte) for byte in np.flatnonzero(ASCII_WHITESPACE)} | {"\n"} | {w.decode() for w in WIDE_WHITESPACE}
    assert trimmed == table


def test_a_whitespace_delimiter_always_trims():
    tab = Structure(delimiter=ord("\t"), quote=ord('"'))
    buffer = b"a\tb\n"
    spans, _ = record_spans(as_array(buffer), tab, find_spaces=True)
    assert cells_may_need_trimming(as_array(buffer), spans, tab)


def test_records_found_without_the_whitespace_always_trim():
    buffer = b"a,b\n"
    with_spaces, _ = record_spans(as_array(buffer), COMMA, find_spaces=True)
    without, _ = record_spans(as_array(buffer), COMMA)
    assert not cells_may_need_trimming(as_array(buffer), with_spaces, COMMA)
    assert cells_may_need_trimming(as_array(buffer), without, COMMA)
    assert without.starts.tolist() == with_spaces.starts.tolist() and without.structural.quotes.tolist() == with_spaces.structural.quotes.tolist()


def test_quoted_line_breaks_move_line_numbers_but_not_records():
    text = 'id,note\n1,"two\nlines"\n\n2,x\r\n3,"a\r\nb"\n'
    assert tokenize(text, 2) == [(1, ["id", "note"]), (2, ["1", "two\nlines"]), (5, ["2", "x"]), (6, ["3", "a\r\nb"])]


def test_unfinished_record_is_carried_over_when_not_final():
    buffer = b'1,"open\nstill open'
    spans, used = record_spans(as_array(buffer), COMMA, final=False)
    assert spans.starts.size == 0 and used == 0
    spans, used = record_spans(as_array(b"1,a\n2,b"), COMMA, final=False)
    assert spans.starts.tolist() == [0] and used == 4


def test_undecodable_bytes_are_found_per_record():
    buffer = b"ok,1\nbad\xff,2\nok,3\n"
    utf8, bad = to_utf8(buffer, "utf-8")
    spans, _ = record_spans(as_array(buffer), COMMA)
    assert records_with_bad_bytes(spans, bad).tolist() == [False, True, False]
    spans_utf8, _ = record_spans(as_array(utf8), COMMA)
    assert slices(utf8, spans_utf8.starts, spans_utf8.ends).to_list() == ["ok,1", "bad\ufffd,2", "ok,3"]


def test_cp1252_and_latin1_are_transcoded():
    text = "café,€5\n"
    utf8, bad = to_utf8(text.encode("cp1252"), "cp1252")
    assert utf8.decode("utf-8") == text and bad.size == 0
    utf8, bad = to_utf8(b"x\x81y\n", "cp1252")
    assert bad.tolist() == [1]
    utf8, bad = to_utf8("ÿ\n".encode("latin-1"), "latin-1")
    assert utf8.decode() == "ÿ\n" and bad.size == 0


def test_fixed_width_slices_pad_short_lines():
    fields = [FieldSpec(name="a", start=1, width=3), FieldSpec(name="b", start=4, width=4)]
    lines = slices(b"abcdefg\nxy\n", np.array([0, 8]), np.array([7, 10]))
    a, b = fixed_width_cells(lines, fields)
    assert a.to_list() == ["abc", "xy "] and b.to_list() == ["defg", "    "]


def test_structure_of_fixed_width_ignores_quotes():
    assert Structure.of(RecordFormat(kind="fixed_width")).quote is None


def test_split_delimited_reads_a_record_as_the_csv_module_does():
    rng = random.Random(4)
    alphabet = 'ab ,;""\x00é'
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        for delimiter in ",;":
            expected = next(csv.reader([text], delimiter=delimiter, strict=False), [])
            assert split_delimited(text, delimiter, '"') == expected, (text, delimiter)


def test_split_delimited_keeps_bare_crs_and_huge_cells_as_text():
    assert split_delimited('1,a\rb,"c\rd"\r', ",", '"') == ["1", "a\rb", "c\rd\r"]
    assert split_delimited("\r,x", ",", '"') == ["\r", "x"]
    huge = "z" * 300_000  # over the csv module's 128 KiB field limit
    assert split_delimited(f'1,"{huge}",{huge}', ",", '"') == ["1", huge, huge]


def test_a_block_with_stray_quotes_and_bare_crs_is_cut_record_by_record():
    text = '1,a"b\rc,x\n2,"q\rr",y\n3,s\r,z\n'
    buffer = text.encode()
    spans, _ = record_spans(as_array(buffer), COMMA)
    parsed = delimited_cells(buffer, spans, COMMA, 3)
    assert parsed.complete.tolist() == [True, True, True]
    assert [cell.to_list() for cell in parsed.cells] == [["1", "2", "3"], ['a"b\rc', "q\rr", "s\r"], ["x", "y", "z"]]


def test_polars_cut_is_checked_against_every_records_bytes(monkeypatch):
    """Escaped and empty quoted cells pass the byte check; a short record (which polars pads with
    empty cells) fails it, and the exact cut reports its count."""
    from ingest_pipeline.core import records

    used = []
    reader = records._cells_by_polars_reader
    monkeypatch.setattr(records, "_cells_by_polars_reader", lambda *a: used.append(out := reader(*a)) or out)
    quoted = 'a,"""",""\n"x""y""",,"z,"\r\n"",b,""""""\n'
    assert tokenize(quoted, 3) == read_with_csv_module(quoted)
    assert used[-1] is not None
    short = 'a,b,c\n"d,",e\nf,g,h\n'
    assert tokenize(short, 3) == [(1, ["a", "b", "c"]), (2, ["<2 cells>"]), (3, ["f", "g", "h"])]
    assert used[-1] is None
