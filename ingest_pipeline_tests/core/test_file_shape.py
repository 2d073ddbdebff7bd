"""Whole-file checks: each shape that is not text gets its sentence, and text that follows the
contract (however odd) gets none, so its records are judged as before."""

import gzip
import io
import random
import zipfile

import pytest

from ingest_pipeline.core.file_shape import SAMPLE_BYTES, whole_file_problem
from ingest_pipeline.core.filespec import RecordFormat

CSV = RecordFormat(delimiter=",", header=True)
LATIN1_FIXED = RecordFormat(kind="fixed_width", encoding="latin-1", header=False)
ROWS = "id,note,code\n1,hello,A\n2,world,B\n"


def zipped(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "x")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "record_format", "sentence"),
    [
        (gzip.compress(ROWS.encode()), CSV, "the file is gzip-compressed, not text: decompress it (gunzip)"),
        (zipped("[Content_Types].xml", "xl/workbook.xml"), CSV, "the file is an Excel workbook (.xlsx), not text"),
        (zipped("upload.csv"), CSV, "the file is a ZIP archive, not text: unzip it"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), CSV, "Excel 97-2003 workbook (.xls)"),
        (b"BZh91AY&SY" + bytes(20), CSV, "bzip2-compressed"),
        (b"%PDF-1.7\n%\xe2\xe3\n", CSV, "the file is a PDF document, not text"),
        (ROWS.encode("utf-16"), CSV, "the file is UTF-16 text (it starts with a UTF-16 byte order mark), not utf-8"),
        (ROWS.encode("utf-16"), LATIN1_FIXED, "UTF-16 text (it starts with a UTF-16 byte order mark), not latin-1"),
        (ROWS.encode("utf-32"), CSV, "the file is UTF-32 text"),
        (ROWS.encode("utf-16-le"), CSV, "UTF-16 text without a byte order mark (every other byte is zero), not utf-8"),
        (ROWS.encode("utf-16-be"), LATIN1_FIXED, "UTF-16 text without a byte order mark"),
        (bytes(100), CSV, "its 100 bytes are all zero bytes (it was probably not written or copied completely)"),
        (bytes(SAMPLE_BYTES), CSV, f"its first {SAMPLE_BYTES:,} bytes are all zero bytes"),
        (random.Random(3).randbytes(5000), LATIN1_FIXED, "of its 5,000 bytes are zero bytes or control characters"),
        (ROWS.replace("\n", "\r").encode(), CSV, "the file's lines end in bare carriage returns (classic Mac line"),
        (b"12345AB\r67890CD\r", LATIN1_FIXED, "lines end in bare carriage returns"),
        # the header ends in CRLF, every record in a bare CR
        (b"id,note,code\r\n" + b"1,a,A\r" * 5, CSV, "lines end in bare carriage returns"),
    ],
)  # fmt: skip
def test_what_is_not_text_gets_one_sentence(content, record_format, sentence):
    problem = whole_file_problem(content[:SAMPLE_BYTES], record_format)
    assert problem is not None and sentence in problem
    assert "\n" not in problem and problem.count(";") <= 1


@pytest.mark.parametrize(
    "content",
    [
        b"",
        ROWS.encode(),
        ROWS.replace("\n", "\r\n").encode(),
        b"\xef\xbb\xbf" + ROWS.encode(),
        b"id,note,code\r",  # one record; the CR at the end of the file is its line ending
        b'id,note,code\n1,"a\rb\rc\rd",A\n',  # bare CRs inside quotes are text
        b"id,note,code\n1,a\rb,A\n2,c\rd,B\n3,e,C\n",  # bare CRs in cells: fewer than the line feeds
        "id,note\n1,caf\xe9\n2,\xff\xfe\n".encode("latin-1"),  # undecodable in UTF-8: rule `encoding` per record
        "ÿþid,note\n1,x\n".encode("latin-1"),  # a latin-1 file that starts with ÿþ (no zero bytes: not UTF-16)
        "ελληνικά,κείμενο\n".encode("iso-8859-7") * 50,  # another encoding, declared utf-8: judged per record
        b"id,note,code\n1,a\x00b,A\n2,\x01,B\n" + b"3,ok,C\n" * 10,  # a few control characters in cells
        b"1,a\x00",  # too short to call binary: one record, judged
        b"BZh is a fine,header\n1,2\n",
        b"PK,id\n1,2\n",
        b"id,note\n" + b"1," + b"\x00" * 40 + b"\n" + b"2,some longer text in the cells of this file\n" * 20,
    ],
)  # fmt: skip
def test_text_that_follows_the_contract_gets_none(content):
    assert whole_file_problem(content[:SAMPLE_BYTES], CSV) is None


def test_the_fixed_width_layout_has_no_quotes_to_hide_a_line_ending_in():
    fixed = RecordFormat(kind="fixed_width", header=False)
    assert whole_file_problem(b'"12345\r67890"\r', fixed) is not None
    assert whole_file_problem(b'id,note\n1,"12345\r67890\r"\n', CSV) is None
