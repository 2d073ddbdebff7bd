"""Whole-file checks on an upload's first bytes: is it text in the declared encoding at all, with
lines that end in LF or CRLF?

A file that is compressed, an Office document, UTF-16, binary, or whose lines end in bare CRs
would otherwise be read as one huge record or as records of garbage: every row rejected, or the
upload failing on a header it cannot match, with no word about the real cause. These checks look
at a fixed-size sample (the same whatever the read block size) and only flag what text in the
declared encoding does not look like, so no file that follows the contract is affected:

- magic numbers of compressed files, archives and documents at byte 0 (gzip, zip and so .xlsx,
  bzip2, xz, zstd, 7z, OLE2 .xls/.doc, PDF): none begins a text record;
- a UTF-16 or UTF-32 byte order mark followed by zero bytes (a UTF-16 CSV always has them: its
  delimiters and line breaks are ASCII characters with a zero byte beside them);
- UTF-16 without a byte order mark: many zero bytes, nearly all at even or all at odd offsets;
- only zero bytes (a file that was never written, or copied incompletely);
- binary data: many zero bytes or control characters (other than tab, LF, VT, FF and CR). Bytes
  that merely do not decode do not count: a file in another text encoding is judged record by
  record (rule `encoding`), as the contract says;
- classic Mac line endings: more bare CRs (not followed by LF) ending a line outside quotes than
  LFs. By the contract a bare CR is ordinary text, so such a file would be one record.
"""

import numpy as np

from ingest_pipeline.core.filespec import FormatKind, RecordFormat
from ingest_pipeline.core.records import CARRIAGE_RETURN, NEWLINE, Structure, as_array, record_terminators

SAMPLE_BYTES = 64 * 1024  # how much of the file's start the checks look at

# Thresholds on the sample: far from any text file, and absolute minimums so that a tiny file with
# one stray control character is judged record by record, as the contract says.
BINARY_SHARE = 0.08  # zero bytes and control characters, of all bytes (random bytes have 11% or more)
BINARY_MIN_BYTES = 16
UTF16_ZERO_SHARE = 0.25  # zero bytes, of all bytes (ASCII text in UTF-16 has ~50%)
UTF16_SAME_PARITY_SHARE = 0.9  # of the zero bytes, those at even (big-endian) or odd (little-endian) offsets
UTF16_MIN_ZEROS = 8

_UPLOAD_TEXT = "upload the CSV or fixed-width text file itself"

# (magic bytes at offset 0, what the file is, what to do)
_MAGIC = [
    (b"\x1f\x8b\x08", "gzip-compressed", "decompress it (gunzip) and upload the file inside"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it (unxz) and upload the file inside"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it (unzstd) and upload the file inside"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract it and upload the file inside"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls) or another Office document",
     "save it as CSV and upload that"),
    (b"%PDF-", "a PDF document", _UPLOAD_TEXT),
]  # fmt: skip
_BZIP2_MARKERS = (b"1AY&SY", b"\x17rE8P\x90")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

# (byte order mark, name); UTF-32 LE first, as it starts with the UTF-16 LE mark
_WIDE_BOMS = [
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
]


# Bytes no text holds, in any encoding the contract allows: C0 controls but tab, LF, VT, FF and CR;
# and DEL. (Bytes that merely do not decode, or latin-1's C1 controls, which a cp1252 file declared
# latin-1 is full of, are left to the records' `encoding` rule.)
_CONTROL = np.zeros(256, dtype=bool)
_CONTROL[[*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F]] = True


def whole_file_problem(sample: bytes, record_format: RecordFormat) -> str | None:
    """Why a file starting with `sample` cannot be read as text of `record_format`, in one sentence
    a client can act on; None when it may be (its records are then judged one by one).

    `sample` is the file's first SAMPLE_BYTES bytes (all of it, when it is shorter).
    """
    encoding = record_format.encoding
    magic = _magic_problem(sample)
    if magic:
        return magic
    data = as_array(sample)
    zeros = int((data == 0).sum())
    looked_at = f"its first {data.size:,} bytes" if data.size == SAMPLE_BYTES else f"its {data.size:,} bytes"
    if zeros and zeros == data.size:
        return (
            f"the file is not text: {looked_at} are all zero bytes (it was probably not written or copied "
            "completely); upload it again"
        )
    for bom, name in _WIDE_BOMS:
        if sample.startswith(bom) and zeros:
            return (
                f"the file is {name} text (it starts with a {name} byte order mark), not {encoding}: "
                f"save it as {encoding} and upload it again"
            )
    if zeros >= UTF16_MIN_ZEROS and zeros >= UTF16_ZERO_SHARE * data.size:
        odd = int((data[1::2] == 0).sum())
        if max(odd, zeros - odd) >= UTF16_SAME_PARITY_SHARE * zeros:
            return (
                "the file looks like UTF-16 text without a byte order mark (every other byte is zero), "
                f"not {encoding}: save it as {encoding} and upload it again"
            )
    controls = int(_CONTROL[data].sum())
    if controls >= BINARY_MIN_BYTES and controls >= BINARY_SHARE * data.size:
        share = controls / data.size
        return f"the file is not text: {share:.0%} of {looked_at} are zero bytes or control characters; {_UPLOAD_TEXT}"
    if _ends_lines_in_bare_carriage_returns(data, record_format):
        return (
            "the file's lines end in bare carriage returns (classic Mac line endings); save the file with LF or "
            "CRLF line endings and upload it again"
        )
    return None


def _magic_problem(sample: bytes) -> str | None:
    if sample.startswith(_ZIP_MAGIC):
        if b"xl/" in sample:  # a workbook's parts (xl/workbook.xml, ...) come first
            return (
                "the file is an Excel workbook (.xlsx), not text: open it in Excel, save the sheet as CSV "
                "and upload that"
            )
        return "the file is a ZIP archive, not text: unzip it and upload the file inside"
    # bzip2: "BZh", the block size digit, then a block or end-of-stream marker ("BZh" alone is text)
    if sample[:3] == b"BZh" and sample[3:4].isdigit() and sample[4:10] in _BZIP2_MARKERS:
        return "the file is bzip2-compressed, not text: decompress it (bunzip2) and upload the file inside"
    for magic, what, action in _MAGIC:
        if sample.startswith(magic):
            return f"the file is {what}, not text: {action}"
    return None


def _ends_lines_in_bare_carriage_returns(data: np.ndarray, record_format: RecordFormat) -> bool:
    """More bare CRs where a line would end (outside quotes) than LFs in the sample.

    A CR in the sample's last byte is left out: it may be the first half of a CRLF, and a CR that
    ends the file is a line ending already.
    """
    carriage_returns = np.flatnonzero(data[:-1] == CARRIAGE_RETURN)
    bare = carriage_returns[data[carriage_returns + 1] != NEWLINE]
    if bare.size == 0:
        return False
    line_feeds = int((data == NEWLINE).sum())
    if bare.size <= line_feeds:
        return False
    if record_format.kind == FormatKind.FIXED_WIDTH:
        return True
    # Read the sample as if the bare CRs were LFs: those that then end a record lie outside quotes.
    as_line_feeds = data.copy()
    as_line_feeds[bare] = NEWLINE
    ends = record_terminators(as_line_feeds, Structure.of(record_format))
    return int(np.isin(bare, ends).sum()) > line_feeds
