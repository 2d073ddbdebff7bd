"""The core stages without Dagster: prepare → scan → columns → merge → publish on small files.

Checks the bookkeeping the contract fixes: row and line numbers of the whole file (quoted line
breaks, CRLF, BOM, banner lines, blank lines), encodings, fixed-width short lines, upload rules,
and that results never depend on the chunk size.
"""

import io
import re
from pathlib import Path

import pytest
import yaml

from ingest_pipeline.core.filespec import parse_filespec
from ingest_pipeline.core.judge import ChunkJudge
from ingest_pipeline.core.merge import profile_columns, publish_results, write_findings
from ingest_pipeline.core.prepare import UploadWorkspace, prepare_chunks
from ingest_pipeline.core.reference import snapshot_reference_data
from ingest_pipeline.core.scan import load_reference_snapshot, scan_chunk
from ingest_pipeline.core.uploads import register_upload
from ingest_pipeline.core.warehouse import Warehouse


def ingest(tmp_path: Path, spec_yaml: str, content: bytes, chunk_rows: int | None = None, block_bytes: int = 1 << 20):
    """Run every stage on `content`; returns (messages, results, rejects, upload row) as Python lists."""
    spec = parse_filespec(yaml.load(spec_yaml, Loader=yaml.BaseLoader), "t.yaml")
    home = tmp_path / f"home-{chunk_rows}-{block_bytes}"
    (home / "reference" / "ref").mkdir(parents=True)
    (home / "reference" / "ref" / "codes.csv").write_text("code,label\nA,Alpha\nB,Beta\n")
    warehouse = Warehouse(home / "warehouse.duckdb")
    register_upload(warehouse, upload_id="u1", company_id="c", form_type=spec.form_type, source="mem", sha256=None,
                    size=len(content), filespec_version=1)  # fmt: skip
    workspace = UploadWorkspace.of(home, "u1")
    snapshot_reference_data(spec, "c", home, tmp_path, workspace.reference)
    manifest = prepare_chunks(io.BytesIO(content), spec, workspace, upload_id="u1", company_id="c", source="mem",
                              chunk_rows=chunk_rows, block_bytes=block_bytes)  # fmt: skip
    judge = ChunkJudge(spec, load_reference_snapshot(spec, workspace))
    for chunk in manifest.chunks:
        scan_chunk(spec, manifest, chunk, workspace, judge)
    profile_columns(spec, manifest, workspace)
    write_findings(warehouse, spec, manifest, workspace)
    if manifest.failure is None:
        publish_results(warehouse, spec, manifest, workspace)
    with warehouse.connect(write=False) as connection:
        messages = connection.execute(
            "SELECT row_number, line_number, field, rule, severity, value FROM ingest.messages ORDER BY ALL NULLS FIRST"
        ).fetchall()
        rejects = connection.execute("SELECT row_number, line_number, raw FROM ingest.rejects ORDER BY row_number").fetchall()
        results = (
            connection.execute(f"SELECT * EXCLUDE (_upload_id) FROM results.{spec.form_type} ORDER BY _row_number").fetchall()
            if manifest.failure is None else []
        )  # fmt: skip
        upload = connection.execute("SELECT status, rows_total, rows_accepted, rows_rejected FROM ingest.uploads").fetchone()
    return messages, results, rejects, upload, manifest


CSV_SPEC = """
form_type: t
format: {delimiter: ',', header: true}
fields:
  - {name: id, type: integer, required: true, unique: true}
  - {name: note}
  - {name: code, lookup: ref.codes.code}
"""


def test_quoted_line_breaks_blank_lines_crlf_and_bom_keep_whole_file_numbers(tmp_path):
    content = (
        "\ufeffid,note,code\r\n"
        '1,"two\r\nlines",A\r\n'
        "\r\n"
        '2,"say ""hi""",Z\r\n'
        "3,x\r\n"  # one cell short
        '1,"dup, again",B'  # no final line break
    ).encode()
    messages, results, rejects, upload, _ = ingest(tmp_path, CSV_SPEC, content)
    assert messages == [
        (2, 5, "code", "lookup", "error", "Z"),
        (3, 6, None, "field_count", "error", None),
        (4, 7, "id", "unique", "error", "1"),
    ]
    assert results == [(1, 1, "two\r\nlines", "A")]
    assert rejects == [(2, 5, '2,"say ""hi""",Z'), (3, 6, "3,x"), (4, 7, '1,"dup, again",B')]
    assert upload == ("completed", 4, 1, 3)


def test_header_columns_match_case_insensitively_in_any_order_and_extras_are_ignored(tmp_path):
    content = b"  CODE ,Extra,ID,Note\nA,x,7,hello\n"
    messages, results, _, upload, _ = ingest(tmp_path, CSV_SPEC, content)
    assert messages == [(None, None, None, "extra_column", "warning", "Extra")]
    assert results == [(1, 7, "hello", "A")]


def test_missing_or_duplicate_columns_fail_the_upload_and_keep_the_messages(tmp_path):
    messages, _, _, upload, manifest = ingest(tmp_path, CSV_SPEC, b"id,note,note\n1,a,b\n")
    assert [m[3] for m in messages] == ["duplicate_column", "missing_column"]
    assert upload == ("queued", None, None, None)  # not judged row by row; the merge asset ends it failed:
    assert manifest.failure.startswith("Header columns 2 and 3 all match field 'note'")


def test_empty_file_completes_with_a_warning(tmp_path):
    messages, results, _, upload, _ = ingest(tmp_path, CSV_SPEC, b"id,note,code\n\n")
    assert messages == [(None, None, None, "empty_file", "warning", None)]
    assert upload == ("completed", 0, 0, 0)


def test_skip_rows_and_headerless_pipe_files(tmp_path):
    spec = CSV_SPEC.replace("{delimiter: ',', header: true}", "{delimiter: '|', header: false, skip_rows: 2}")
    content = b"BANNER, not a record\nexported 2024\n5|a|A\n\n6|b|B|extra\n"
    messages, results, _, upload, _ = ingest(tmp_path, spec, content)
    assert messages == [(2, 5, None, "field_count", "error", None)]
    assert results == [(1, 5, "a", "A")]


def test_undecodable_records_are_rejected_and_the_rest_is_processed(tmp_path):
    content = b"id,note,code\n1,caf\xe9,A\n2,ok,B\n"
    messages, results, rejects, upload, _ = ingest(tmp_path, CSV_SPEC, content)
    assert messages == [(1, 2, None, "encoding", "error", None)]
    assert rejects == [(1, 2, "1,caf\ufffd,A")]
    assert results == [(2, 2, "ok", "B")]
    latin1 = CSV_SPEC.replace("header: true}", "header: true, encoding: latin-1}")
    _, results, _, _, _ = ingest(tmp_path / "latin1", latin1, content)
    assert results[0] == (1, 1, "café", "A")


FIXED_SPEC = """
form_type: f
format: {kind: fixed_width}
fields:
  - {name: id, start: 1, width: 3, type: integer}
  - {name: name, start: 4, width: 5, required: true}
  - {name: flag, start: 9, width: 1, type: boolean, format: {true: [Y], false: [N]}}
"""


def test_fixed_width_slices_by_character_and_pads_short_lines(tmp_path):
    content = "001Zoë  Y\r\n002Bob\n\n0x3Al   N\n".encode()
    messages, results, _, upload, _ = ingest(tmp_path, FIXED_SPEC, content)
    assert messages == [(3, 4, "id", "type", "error", "0x3")]
    assert results == [(1, 1, "Zoë", True), (2, 2, "Bob", None)]


def rows_of(count: int) -> bytes:
    lines = ["id,note,code"]
    for i in range(1, count + 1):
        note = f'"multi\nline {i}"' if i % 7 == 0 else f"n{i}"
        code = "Z" if i % 11 == 0 else "A"
        lines.append(f"{100 + i // 13 if i % 13 == 0 else i + 100},{note},{code}")  # every 13th repeats an id
        if i % 17 == 0:
            lines.append("")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, None])
def test_results_are_identical_for_any_chunk_and_block_size(tmp_path, chunk_rows):
    content = rows_of(300)
    reference = ingest(tmp_path / "reference", CSV_SPEC, content, chunk_rows=None)
    chunked = ingest(tmp_path / "chunked", CSV_SPEC, content, chunk_rows=chunk_rows, block_bytes=97)
    assert chunked[:4] == reference[:4]
    assert any(m[3] == "unique" for m in reference[0]) and any(m[3] == "lookup" for m in reference[0])


def test_an_unclosed_quote_fails_with_the_line_it_starts_on(tmp_path, monkeypatch):
    from ingest_pipeline.core import prepare
    from ingest_pipeline.core.errors import SourceFileError

    monkeypatch.setattr(prepare, "MAX_RECORD_BYTES", 1000)
    content = b'id,note,code\n1,ok,A\n2,"never closed\n' + b"x" * 3000
    with pytest.raises(SourceFileError, match="starting on line 3 runs on for more than"):
        ingest(tmp_path, CSV_SPEC, content, block_bytes=256)


def test_a_filespec_changing_a_fields_type_converts_earlier_results(tmp_path):
    from ingest_pipeline.core.errors import WarehouseError
    from ingest_pipeline.core.merge import _ensure_results_table

    def spec_of(text: str):
        return parse_filespec(yaml.load(text, Loader=yaml.BaseLoader), "t.yaml")

    as_text = CSV_SPEC.replace("{name: id, type: integer, required: true, unique: true}", "{name: id, required: true}")
    *_, manifest = ingest(tmp_path, as_text, b"id,note,code\n7,a,A\n")
    warehouse = Warehouse(tmp_path / "home-None-1048576" / "warehouse.duckdb")
    with warehouse.transaction() as connection:  # the field is now an integer: earlier text values convert
        _ensure_results_table(connection, spec_of(CSV_SPEC), {})
        assert connection.execute("SELECT id FROM results.t").fetchall() == [(7,)]
    with pytest.raises(WarehouseError, match="results.t.id holds BIGINT values from earlier uploads that cannot become DATE"):
        with warehouse.transaction() as connection:
            _ensure_results_table(connection, spec_of(CSV_SPEC.replace("type: integer", "type: date")), {})


def test_text_columns_of_many_distinct_values_are_stored_with_zstd(tmp_path, monkeypatch):
    from ingest_pipeline.core import merge

    monkeypatch.setattr(merge, "ZSTD_MIN_DISTINCT", 100)  # 300 rows: `note` has about 300 values, `code` two
    spec = CSV_SPEC.replace("{name: id, type: integer, required: true, unique: true}", "{name: id, required: true, unique: true}")
    expected = ingest(tmp_path / "reference", spec, rows_of(300))
    monkeypatch.setattr(merge, "ZSTD_MIN_DISTINCT", 10**9)
    assert ingest(tmp_path / "automatic", spec, rows_of(300))[:4] == expected[:4]
    monkeypatch.setattr(merge, "ZSTD_MIN_DISTINCT", 100)
    warehouse = Warehouse(tmp_path / "reference" / "home-None-1048576" / "warehouse.duckdb")
    with warehouse.transaction() as connection:
        connection.execute("CHECKPOINT")
        compressed = dict(connection.execute(
            "SELECT column_name, any_value(compression) FROM pragma_storage_info('results.t') "
            "WHERE segment_type = 'VARCHAR' GROUP BY ALL").fetchall())  # fmt: skip
    # `id` is unique (a value per row whatever the count), `note` past the threshold; `code` is left to DuckDB.
    assert compressed["id"] == "ZSTD" and compressed["note"] == "ZSTD" and compressed["code"] != "ZSTD"


@pytest.mark.parametrize("block_bytes", [16, 40, 1 << 20])
def test_blank_lines_that_end_a_block_still_count_as_lines(tmp_path, block_bytes):
    # A read block whose finished part is only blank lines: they hold no record, but their lines count.
    content = b"id,note,code\n\r\n\n" + b'1,"a\nb",A\n\n2,x,Z\n'
    messages, _, rejects, upload, _ = ingest(tmp_path, CSV_SPEC, content, block_bytes=block_bytes)
    assert rejects == [(2, 7, "2,x,Z")]
    assert upload == ("completed", 2, 1, 1)


def test_bare_crs_are_text_inside_records_and_whole_file_line_endings_are_refused(tmp_path):
    from ingest_pipeline.core.errors import SourceFileError

    messages, results, rejects, upload, _ = ingest(tmp_path, CSV_SPEC, b"id,note,code\n1,a\rb,A\n2,c\rd,Z\n")
    assert results == [(1, 1, "a\rb", "A")] and rejects == [(2, 3, "2,c\rd,Z")]
    with pytest.raises(SourceFileError, match=r"lines end in bare carriage returns \(classic Mac line endings\)"):
        ingest(tmp_path / "mac", CSV_SPEC, b"id,note,code\r1,a,A\r2,b,B\r")


@pytest.mark.parametrize(
    ("spec", "content", "sentence"),
    [
        (CSV_SPEC, b"id,note,code\n1," + b"x" * 5000 + b",A\n2,y,B\n", "line 2 is longer than 1,048 bytes without a line break"),
        (FIXED_SPEC, b"001Ann  Y\n" + b"y" * 5000 + b"\n", "line 2 is longer than 1,048 bytes without a line break"),
        (CSV_SPEC, b'id,note,code\n1,"x\n' + b"x" * 5000 + b'",A\n', "the record starting on line 2 runs on for more than"),
    ],
)  # fmt: skip
def test_a_record_too_long_to_read_says_why(tmp_path, monkeypatch, spec, content, sentence):
    from ingest_pipeline.core.errors import SourceFileError

    monkeypatch.setenv("INGEST_MAX_RECORD_MIB", "0.001")
    with pytest.raises(SourceFileError, match=re.escape(sentence)):
        ingest(tmp_path, spec, content, block_bytes=512)


def test_a_bad_max_record_setting_is_one_sentence(tmp_path, monkeypatch):
    from ingest_pipeline.core.errors import IngestError

    monkeypatch.setenv("INGEST_MAX_RECORD_MIB", "lots")
    with pytest.raises(IngestError, match="INGEST_MAX_RECORD_MIB is 'lots', not a positive number of MiB"):
        ingest(tmp_path, CSV_SPEC, b"id,note,code\n1,a,A\n")


def test_a_file_that_does_not_look_like_its_form_type_fails_before_any_record_is_scanned(tmp_path):
    content = ("\n".join(["id|note|code", *[f"{i}|n{i}|A" for i in range(1, 50)]]) + "\n").encode()
    headerless = CSV_SPEC.replace("header: true}", "header: false}")
    messages, results, rejects, upload, manifest = ingest(tmp_path, headerless, content)
    assert upload == ("queued", None, None, None)  # not judged row by row; the merge asset ends it failed
    assert manifest.chunks == [] and manifest.rows_total == 0 and results == [] == rejects
    assert messages == [(None, None, None, "layout", "error", None)]
    assert manifest.failure == ("The file does not look like t: 0 of its first 50 records have the layout's cells "
                                "(most records have 1 cell when split at commas). Check the form type it was uploaded as.")  # fmt: skip
    # Opting out: the records are judged, each rejected for its cell count.
    opted_out = headerless.replace("form_type: t\n", "form_type: t\nquality: {min_layout_match: 0}\n")
    messages, _, rejects, upload, _ = ingest(tmp_path / "opted-out", opted_out, content)
    assert upload == ("completed", 50, 0, 50) and {m[3] for m in messages} == {"field_count"}


def test_half_the_first_records_in_shape_is_enough():
    from ingest_pipeline.core.prepare import Sniff, layout_failure

    spec = parse_filespec(yaml.load(CSV_SPEC, Loader=yaml.BaseLoader), "t.yaml")
    assert layout_failure(spec, Sniff(10, 5, ""), []) is None
    assert layout_failure(spec, Sniff(0, 0, ""), []) is None  # nothing to look at: nothing to say
    assert "it looks like payroll" in layout_failure(spec, Sniff(10, 4, "", "most records have 9 cells"), ["payroll"])


@pytest.mark.parametrize("chunk_rows", [None, 2])
def test_column_summary_counts_exactly_what_the_rows_hold(tmp_path, chunk_rows):
    # A unique field whose values repeat (one three times), are missing or fail their type: its
    # distinct count is derived from the `unique` messages, the others' are counted; both must be
    # what the converted values themselves say, whatever the chunk size.
    lines = ["id,note,code", "1,a,A", "2,a,B", "1,b,A", "x,b,A", ",c,Z", "1,c,B", "3,,A", "2,d,A", "4,d,"]
    spec = CSV_SPEC.replace("required: true, unique: true", "unique: true")
    ingest(tmp_path, spec, ("\n".join(lines) + "\n").encode(), chunk_rows=chunk_rows)
    home = tmp_path / f"home-{chunk_rows}-{1 << 20}"
    with Warehouse(home / "warehouse.duckdb").connect(write=False) as connection:
        summary = connection.execute(
            "SELECT field, rows, nulls, distinct_values, errors, min_value, max_value FROM ingest.column_summary"
        ).fetchall()
    cells = [line.split(",") for line in lines[1:]]
    ids = [int(c[0]) for c in cells if c[0].isdigit()]
    notes, codes = [c[1] for c in cells if c[1]], [c[2] for c in cells if c[2]]
    assert summary == [
        # id: 'x' fails its type (an error, not a null); four later rows repeat a value (errors).
        ("id", 9, 1, len(set(ids)), 1 + len(ids) - len(set(ids)), str(min(ids)), str(max(ids))),
        ("note", 9, 1, len(set(notes)), 0, min(notes), max(notes)),
        # code: 'Z' is not in the lookup (an error; its value still counts as converted).
        ("code", 9, 1, len(set(codes)), 1, min(codes), max(codes)),
    ]


def test_a_write_error_on_prepares_worker_thread_is_raised_in_the_stage():
    from ingest_pipeline.core.prepare import _InOrder

    def full_disk():
        raise OSError(28, "No space left on device")

    ran: list[int] = []
    worker = _InOrder()
    try:
        worker.submit(full_disk)
        worker.submit(ran.append, 1)  # after an error nothing more is written
        with pytest.raises(OSError, match="No space left"):
            worker.wait()
    finally:
        worker.stop()
    assert ran == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device whose every write fails)")
def test_prepare_fails_with_the_write_error_of_a_full_disk(tmp_path, monkeypatch):
    spec = parse_filespec(yaml.load(CSV_SPEC, Loader=yaml.BaseLoader), "t.yaml")
    workspace = UploadWorkspace(tmp_path / "work")
    monkeypatch.setattr(UploadWorkspace, "chunk_file", lambda self, index: Path("/dev/full"))
    content = b"id,note,code\n" + b"".join(b"%d,note,A\n" % i for i in range(5000))
    with pytest.raises(OSError, match="No space left"):
        prepare_chunks(io.BytesIO(content), spec, workspace, upload_id="u1", company_id="c", source="mem",
                       chunk_rows=1000, block_bytes=4096)  # fmt: skip
    assert not workspace.manifest.exists()


def test_unique_is_judged_the_same_in_hash_buckets(tmp_path, monkeypatch):
    # Large uploads judge `unique` a bucket of rows at a time (rows split by a hash of the value):
    # every duplicate must name the same first row and line as when all rows are judged at once.
    from ingest_pipeline.core import merge

    lines = ["id,note,code"] + [f"{i % 7 if i % 5 else 'x'},n{i},A" for i in range(40)]
    content = ("\n".join(lines) + "\n").encode()
    at_once = ingest(tmp_path / "once", CSV_SPEC, content)
    monkeypatch.setattr(merge, "UNIQUE_BUCKET_ROWS", 4)
    in_buckets = ingest(tmp_path / "buckets", CSV_SPEC, content, chunk_rows=6)
    assert sum(1 for m in at_once[0] if m[3] == "unique") == 40 - 8 - 7  # all but the 'x' rows and each first
    assert in_buckets[:4] == at_once[:4]

    def sentences(home):
        with Warehouse(home / "warehouse.duckdb").connect(write=False) as connection:
            return connection.execute("SELECT row_number, message FROM ingest.messages WHERE rule = 'unique' ORDER BY 1").fetchall()

    assert sentences(tmp_path / "buckets" / f"home-6-{1 << 20}") == sentences(tmp_path / "once" / f"home-None-{1 << 20}")
    assert "already on row 2 (line 3)" in sentences(tmp_path / "once" / f"home-None-{1 << 20}")[0][1]
