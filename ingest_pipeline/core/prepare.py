"""Prepare an upload: read the header, apply the upload rules, and split the file into chunks.

The file is streamed in blocks; only whole records go into a chunk, so every chunk can be read
on its own. A chunk file holds the original bytes (original encoding, blank lines and all) of a
run of records, and the manifest says which row and line it starts at. Nothing here holds more
than one block and one unfinished record in memory.
"""

import hashlib
import json
import math
import os
import queue
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ingest_pipeline.core import faults
from ingest_pipeline.core.errors import IngestError, SourceChangedError, SourceFileError, WorkFilesRemovedError
from ingest_pipeline.core.faults import fault_point
from ingest_pipeline.core.file_shape import SAMPLE_BYTES, whole_file_problem
from ingest_pipeline.core.filespec import FileSpec, FormatKind
from ingest_pipeline.core.records import (
    UTF8_BOM,
    RecordSpans,
    Structure,
    as_array,
    delimited_cells,
    read_header,
    record_spans,
    to_utf8,
)

BLOCK_BYTES = 16 * 1024 * 1024
TARGET_CHUNK_BYTES = 64 * 1024 * 1024  # the default chunk size: about this many bytes of records
MIN_CHUNK_ROWS = 1_000
MAX_RECORD_BYTES = 64 * 1024 * 1024  # default of $INGEST_MAX_RECORD_MIB: the longest record read
MAX_RECORD_VARIABLE = "INGEST_MAX_RECORD_MIB"


class UploadWorkspace:
    """The folder of one upload's work files under the home: `<home>/work/<upload_id>/`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def of(cls, home: Path, upload_id: str, work_dir: str | Path | None = None) -> "UploadWorkspace":
        """`<work_dir>/<upload_id>`; the work folder defaults to $INGEST_WORK_DIR, else `<home>/work`.

        Every step of an upload must see the same folder: on several machines, a shared mount
        (an Azure Files share, or a blob container mounted with BlobFuse2).
        """
        root = work_dir or os.environ.get("INGEST_WORK_DIR") or Path(home) / "work"
        return cls(Path(root) / upload_id)

    manifest = property(lambda self: self.root / "manifest.json")
    filespec = property(lambda self: self.root / "filespec.json")
    chunks = property(lambda self: self.root / "chunks")
    reference = property(lambda self: self.root / "reference")
    scans = property(lambda self: self.root / "scan")
    columns = property(lambda self: self.root / "columns")
    metrics = property(lambda self: self.root / "metrics")
    removal_note = property(lambda self: self.root / "REMOVED.txt")  # left by core.retention

    def chunk_file(self, index: int) -> Path:
        return self.chunks / f"chunk-{index:05d}.bin"

    def scan_rows(self, index: int) -> Path:
        return self.scans / f"chunk-{index:05d}.rows.parquet"

    def scan_messages(self, index: int) -> Path:
        return self.scans / f"chunk-{index:05d}.messages.parquet"

    def load_manifest(self) -> "Manifest":
        self._check_not_removed()
        if not self.manifest.exists():
            raise SourceFileError(f"upload work folder {self.root} has no manifest: run the prepare stage (upload_chunks) first")
        return Manifest.from_json(self.manifest.read_text())

    def load_filespec(self) -> FileSpec:
        self._check_not_removed()
        return FileSpec.model_validate_json(self.filespec.read_text())

    def _check_not_removed(self) -> None:
        """A stage re-executed after retention removed the work files fails with the note's sentence."""
        if self.removal_note.exists():
            raise WorkFilesRemovedError(self.removal_note.read_text().strip())


@dataclass
class ChunkInfo:
    index: int
    first_row: int
    first_line: int
    records: int
    bytes: int


@dataclass
class Manifest:
    upload_id: str
    company_id: str
    form_type: str
    filespec_version: int
    source: str
    sha256: str
    bytes: int
    rows_total: int
    expected_cells: int  # cells per record (delimited): the header's count, or the number of fields
    column_of_field: dict[str, int]  # delimited: the cell position of each field
    chunks: list[ChunkInfo] = field(default_factory=list)
    upload_messages: list[dict] = field(default_factory=list)  # row-less messages (extra_column, ...)
    failure: str | None = None  # why the upload as a whole cannot be processed
    chunk_rows: int = 0
    first_data_line: int = 1
    sniff: str = ""
    header: list[str] | None = None  # the header's cells as read (delimited with a header), for reports

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        raw = json.loads(text)
        raw["chunks"] = [ChunkInfo(**chunk) for chunk in raw["chunks"]]
        return cls(**raw)


def upload_message(rule: str, severity: str, message: str, value: str | None = None) -> dict:
    return {"row_number": None, "line_number": None, "field": None, "rule": rule, "severity": severity,
            "value": value, "message": message}  # fmt: skip


def match_header(spec: FileSpec, header: list[str]) -> tuple[dict[str, int], list[dict], str | None]:
    """Map fields to header cells; returns (column of each field, upload messages, failure)."""
    by_text: dict[str, list[int]] = {}
    for position, cell in enumerate(header):
        by_text.setdefault(cell.strip().lower(), []).append(position)
    messages, columns, failure = [], {}, None
    for spec_field in spec.fields:
        positions = by_text.get(spec_field.header_text, [])
        header_name = spec_field.source if spec_field.source is not None else spec_field.name
        if not positions:
            messages.append(upload_message(
                "missing_column", "error",
                f"The header has no column '{header_name}' for field '{spec_field.name}', so the file cannot be processed.",
            ))  # fmt: skip
        elif len(positions) > 1:
            listed = " and ".join(str(p + 1) for p in positions)
            messages.append(upload_message(
                "duplicate_column", "error",
                f"Header columns {listed} all match field '{spec_field.name}', so the file cannot be processed.",
                value=header[positions[1]],
            ))  # fmt: skip
        else:
            columns[spec_field.name] = positions[0]
    used = {position for positions in by_text.values() for position in positions if any(
        f.header_text == header[position].strip().lower() for f in spec.fields)}  # fmt: skip
    for position, cell in enumerate(header):
        if position not in used:
            messages.append(upload_message(
                "extra_column", "warning",
                f"Header column {position + 1} ('{cell.strip()}') matches no field and was ignored.", value=cell,
            ))  # fmt: skip
    errors = [m for m in messages if m["severity"] == "error"]
    if errors:
        failure = errors[0]["message"] if len(errors) == 1 else (
            f"{errors[0]['message'][:-1]}; and {len(errors) - 1} more header problem(s).")  # fmt: skip
    return columns, messages, failure


class _InOrder:
    """One worker thread that runs the work it is given in order: hashing the blocks read and
    writing the chunk files, while the caller finds the records of the next block (both release
    the GIL, so on two cores they cost little time). `mark` gives an event set once everything
    given so far is done, `check` raises the first error the work met (a full disk, say) in the
    caller's thread; the caller waits for the block before last, so at most three are held."""

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="prepare-io", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            function, args = item
            if isinstance(function, threading.Event):
                function.set()  # a mark is set even after an error, so that no caller waits forever
            elif self._error is None:
                try:
                    function(*args)
                except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread by `check`
                    self._error = error

    def submit(self, function, *args) -> None:
        self._queue.put((function, args))

    def mark(self) -> threading.Event:
        done = threading.Event()
        self._queue.put((done, ()))
        return done

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def wait(self) -> None:
        self.mark().wait()
        self.check()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()


class _ChunkWriter:
    """Writes runs of whole records into numbered chunk files of at most `chunk_rows` records.

    The bookkeeping (rows, lines, bytes) is done at once; the bytes are written by `io` in order."""

    def __init__(self, workspace: UploadWorkspace, chunk_rows: int, first_line: int, io: _InOrder):
        self.workspace = workspace
        self.chunk_rows = chunk_rows
        self.chunks: list[ChunkInfo] = []
        self.next_row = 1
        self.next_line = first_line  # the physical line at which the next written byte starts
        self._io = io
        self._file = None
        self._current: ChunkInfo | None = None

    def room(self) -> int:
        return self.chunk_rows - (self._current.records if self._current else 0)

    def write(self, data: bytes, start: int, end: int, records: int, lines: int) -> None:
        """Append `data[start:end]` (whole records, `records` of them, `lines` line breaks) to the open chunk."""
        if self._current is None:
            index = len(self.chunks) + 1
            self._current = ChunkInfo(index, self.next_row, self.next_line, 0, 0)
            self._file = open(self.workspace.chunk_file(index), "wb")
        self._io.submit(self._file.write, memoryview(data)[start:end])
        self._current.records += records
        self._current.bytes += end - start
        self.next_row += records
        self.next_line += lines
        if self._current.records >= self.chunk_rows:
            self.close_chunk()

    def skip(self, data: bytes, end: int, lines: int) -> None:
        """Blank lines (`data[:end]`) between records: kept in the open chunk, else left out (they are
        not records); either way the lines are counted, so the next record's line number stays right."""
        if self._current is not None:
            self._io.submit(self._file.write, memoryview(data)[:end])
            self._current.bytes += end
        self.next_line += lines

    def close_chunk(self) -> None:
        if self._current is not None:
            self._io.submit(self._file.close)
            self.chunks.append(self._current)
            self._current, self._file = None, None
            fault_point(faults.PREPARE)


def default_chunk_rows(sample: bytes, records_in_sample: int) -> int:
    """Records per chunk so that a chunk holds about TARGET_CHUNK_BYTES."""
    if records_in_sample == 0:
        return MIN_CHUNK_ROWS
    return max(MIN_CHUNK_ROWS, int(TARGET_CHUNK_BYTES / (len(sample) / records_in_sample)))


def prepare_chunks(
    stream: BinaryIO,
    spec: FileSpec,
    workspace: UploadWorkspace,
    *,
    upload_id: str,
    company_id: str,
    source: str,
    chunk_rows: int | None = None,
    expected_sha256: str | None = None,
    block_bytes: int = BLOCK_BYTES,
    other_specs: list[FileSpec] = (),
) -> Manifest:
    """Stream `stream` into chunk files under `workspace` and return the manifest (also written)."""
    record_format = spec.format
    structure = Structure.of(record_format)
    record_limit = max_record_bytes()
    workspace.chunks.mkdir(parents=True, exist_ok=True)
    for stale in workspace.chunks.glob("chunk-*.bin"):
        stale.unlink()
    head = _read_head(stream, SAMPLE_BYTES)
    problem = whole_file_problem(head, record_format)
    if problem:
        raise SourceFileError(problem)
    stream = _HeadThenRest(head, stream)
    digest = hashlib.sha256()
    io = _InOrder()
    try:
        writer, header, total_bytes, chunk_rows = _split(stream, record_format, structure, workspace, chunk_rows,
                                                         block_bytes, record_limit, digest, io)  # fmt: skip
        io.wait()  # every chunk file written and closed, every block hashed
    finally:
        io.stop()

    sha256 = digest.hexdigest()
    if expected_sha256 and sha256 != expected_sha256:
        raise SourceChangedError(f"{source} changed since it was registered (its SHA-256 is now {sha256[:12]}…); upload it again")
    manifest = _manifest(spec, header, writer, upload_id=upload_id, company_id=company_id, source=source,
                         sha256=sha256, size=total_bytes, chunk_rows=chunk_rows or MIN_CHUNK_ROWS)  # fmt: skip
    sample = b""
    if manifest.chunks and not manifest.failure:
        with open(workspace.chunk_file(1), "rb") as chunk:
            sample = chunk.read(SNIFF_BYTES)
    verdict = sniff(spec, sample, manifest)
    manifest.sniff = verdict.sentence
    if verdict.share < spec.quality.min_layout_match:
        failure = layout_failure(spec, verdict, other_form_types_like(sample, other_specs))
        if failure:  # nothing is scanned: the upload fails with the one sentence, its chunks unused
            manifest.failure, manifest.chunks, manifest.rows_total = failure, [], 0
            manifest.upload_messages.append(upload_message("layout", "error", failure))
    workspace.manifest.parent.mkdir(parents=True, exist_ok=True)
    workspace.filespec.write_text(spec.model_dump_json())
    workspace.manifest.write_text(manifest.to_json())
    return manifest


def _split(stream, record_format, structure, workspace, chunk_rows, block_bytes, record_limit, digest, io):
    """The streaming loop of `prepare_chunks`: returns (writer, header, bytes read, chunk rows)."""
    total_bytes = 0
    line = 1  # physical line at the start of `pending`
    lines_to_skip = record_format.skip_rows
    header: list[str] | None = None
    needs_header = record_format.has_header
    writer: _ChunkWriter | None = None
    pending = b""
    at_start, at_end = True, False
    in_flight: list[threading.Event] = []  # one per block: set when its hashing and writing are done

    while not at_end:
        block = stream.read(block_bytes)
        at_end = not block
        in_flight.append(io.mark())
        if len(in_flight) > 2:  # the block before last is written: at most three blocks held
            in_flight.pop(0).wait()
            io.check()
        io.submit(digest.update, block)
        total_bytes += len(block)
        data = pending + block
        if at_start and len(data) >= 3 or at_end:
            if at_start and data.startswith(UTF8_BOM):
                data = data[3:]  # a UTF-8 BOM is always accepted and dropped
            at_start = False
        elif at_start:
            pending = data
            continue
        while lines_to_skip and data:
            newline = data.find(b"\n")
            if newline < 0 and not at_end:
                break
            data = data[newline + 1 :] if newline >= 0 else b""
            lines_to_skip -= 1
            line += 1
        if lines_to_skip and not at_end:
            pending = data
            continue
        array = as_array(data)
        if needs_header:
            spans, used = record_spans(array, structure, final=at_end)
            if spans.starts.size == 0:
                if not at_end:
                    _check_record_size(data, line, record_limit)
                    pending = data
                    continue
            else:
                start, end = int(spans.starts[0]), int(spans.ends[0])
                header = read_header(data[start:end], record_format)
                after = data.find(b"\n", end)
                after = len(data) if after < 0 else after + 1
                line += data.count(b"\n", 0, after)
                data = data[after:]
                array = as_array(data)
            needs_header = False
        if writer is None:
            if chunk_rows is None:
                sample_spans, _ = record_spans(array[: min(array.size, 4 * 1024 * 1024)], structure, final=at_end)
                chunk_rows = default_chunk_rows(data[: min(len(data), 4 * 1024 * 1024)], sample_spans.starts.size)
            writer = _ChunkWriter(workspace, chunk_rows, line, io)
        spans, used = record_spans(array, structure, final=at_end)
        _write_records(writer, data, spans, used)
        line = writer.next_line  # it counted the lines of data[:used]
        pending = data[used:]
        if not at_end:
            _check_record_size(pending, line, record_limit)
    if writer is None:
        writer = _ChunkWriter(workspace, chunk_rows or MIN_CHUNK_ROWS, line, io)
    writer.close_chunk()
    return writer, header, total_bytes, chunk_rows


def _read_head(stream: BinaryIO, size: int) -> bytes:
    """The stream's first `size` bytes (fewer only at its end; a read may return less than asked)."""
    parts, got = [], 0
    while got < size:
        part = stream.read(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


class _HeadThenRest:
    """A stream whose first bytes were read already: serves them again, then the rest, in the
    block sizes asked for (so the blocks are what they would have been without the look)."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head, self._rest = head, rest

    def read(self, size: int) -> bytes:
        if not self._head:
            return self._rest.read(size)
        piece, self._head = self._head[:size], self._head[size:]
        if len(piece) < size:
            piece += self._rest.read(size - len(piece))
        return piece


def _write_records(writer: _ChunkWriter, data: bytes, spans: RecordSpans, used: int) -> None:
    """Append the records of `data` (whole ones, ending at `used`) to chunks of the right size.

    The line breaks in each part written are counted from where the records start (`line_offsets`,
    found with the records), not by reading the bytes again."""
    starts, line_offsets = spans.starts, spans.line_offsets
    index, count, offset, line = 0, starts.size, 0, 0
    if count == 0:  # only blank lines (a block can end right after them)
        writer.skip(data, used, spans.lines_in_buffer)
    while index < count:
        take = min(writer.room(), count - index)
        end, end_line = ((int(starts[index + take]), int(line_offsets[index + take])) if index + take < count
                         else (used, spans.lines_in_buffer))  # fmt: skip
        writer.write(data, offset, end, take, end_line - line)
        offset, index, line = end, index + take, end_line


def max_record_bytes() -> int:
    """The longest record prepare reads: $INGEST_MAX_RECORD_MIB MiB, else MAX_RECORD_BYTES.

    A record is held in memory whole (with one read block), so this bounds prepare's memory on a
    file with an unclosed quote or no line breaks.
    """
    setting = os.environ.get(MAX_RECORD_VARIABLE, "").strip()
    if not setting:
        return MAX_RECORD_BYTES
    try:
        mib = float(setting)
    except ValueError:
        mib = 0
    if not (mib > 0 and math.isfinite(mib)):
        raise IngestError(f"{MAX_RECORD_VARIABLE} is {setting!r}, not a positive number of MiB")
    return int(mib * 2**20)


def _check_record_size(pending: bytes, line: int, limit: int) -> None:
    """Refuse an unfinished record longer than `limit` bytes, saying why it does not end."""
    if len(pending) <= limit:
        return
    size = f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit:,} bytes"
    if b"\n" in pending:  # its line breaks were all inside quotes
        raise SourceFileError(
            f"the record starting on line {line} runs on for more than {size} without ending: a quoted field is "
            "probably not closed"
        )
    raise SourceFileError(
        f"line {line} is longer than {size} without a line break (records end in LF or CRLF); if such long lines "
        f"are meant, raise {MAX_RECORD_VARIABLE}"
    )


def _manifest(spec, header, writer, *, upload_id, company_id, source, sha256, size, chunk_rows) -> Manifest:
    rows_total = sum(chunk.records for chunk in writer.chunks)
    messages: list[dict] = []
    failure = None
    if spec.format.kind == FormatKind.FIXED_WIDTH:
        expected, columns = len(spec.fields), {}
    elif spec.format.has_header and header is not None:
        expected = len(header)
        columns, messages, failure = match_header(spec, header)
    else:
        expected, columns = len(spec.fields), {f.name: i for i, f in enumerate(spec.fields)}
    if failure is None and rows_total == 0:
        messages.append(upload_message("empty_file", "warning", "The file has no data records."))
    return Manifest(
        upload_id=upload_id, company_id=company_id, form_type=spec.form_type, filespec_version=spec.version,
        source=source, sha256=sha256, bytes=size, rows_total=rows_total if failure is None else 0,
        expected_cells=expected, column_of_field=columns, chunks=writer.chunks if failure is None else [],
        upload_messages=messages, failure=failure, chunk_rows=chunk_rows,
        first_data_line=writer.chunks[0].first_line if writer.chunks else 1,
        header=list(header) if header is not None else None,
    )  # fmt: skip


SNIFF_BYTES = 256 * 1024


@dataclass
class Sniff:
    """A quick look at the first records of an upload: how many have the form type's shape."""

    records: int  # looked at (0: nothing to look at)
    matching: int  # of those, with the form type's shape
    sentence: str  # what was seen, for the prepare step's metadata
    seen: str = ""  # what most records look like instead, when they do not match

    @property
    def share(self) -> float:
        return self.matching / self.records if self.records else 1.0


def sniff(spec: FileSpec, sample: bytes, manifest: Manifest) -> Sniff:
    """A quick look at the first records (`sample`: the first chunk's first SNIFF_BYTES): does the
    file look like this form type at all?"""
    if not sample:
        return Sniff(0, 0, "no records to look at")
    matching, records, seen = _shape_in_sample(spec, sample, manifest.expected_cells)
    if records == 0:
        return Sniff(0, 0, "the first records are longer than the sample")
    looks = matching >= records * (spec.quality.min_layout_match or 0.5)  # as layout_failure judges it
    verdict = "looks like" if looks else "does not look like"
    if spec.format.kind == FormatKind.FIXED_WIDTH:
        sentence = f"{verdict} {spec.form_type}: {records - matching} of the first {records} lines are shorter than the layout"
    else:
        sentence = f"{verdict} {spec.form_type}: {matching} of the first {records} records have {manifest.expected_cells} cells"
    return Sniff(records, matching, sentence, seen)


def _shape_in_sample(
    spec: FileSpec, sample: bytes, expected_cells: int | None = None, strict: bool = False
) -> tuple[int, int, str]:
    """(records with the layout's shape, records looked at, what most records look like) in a sample
    of whole records: delimited, `expected_cells` cells (at least the fields, for a header file of
    unknown header); fixed width, reaching the last field's start (`strict`: and not past the
    layout's end, so that another layout's longer lines do not count)."""
    structure = Structure.of(spec.format)
    spans, _ = record_spans(as_array(sample), structure, final=False)
    if spans.starts.size == 0:
        return 0, 0, ""
    if spec.format.kind == FormatKind.FIXED_WIDTH:
        lengths = spans.ends - spans.starts
        fits = lengths >= max(f.start for f in spec.fields)
        if strict:
            fits &= lengths <= max(f.start + f.width - 1 for f in spec.fields)
        matching = int(fits.sum())
        return matching, int(spans.starts.size), f"most lines are {int(np.median(lengths))} characters long"
    utf8, _ = to_utf8(sample[: int(spans.ends[-1])], spec.format.encoding)
    utf8_spans, _ = record_spans(as_array(utf8), structure)
    counts = delimited_cells(utf8, utf8_spans, structure, expected_cells or len(spec.fields)).cell_counts
    if expected_cells is None and spec.format.has_header:
        matching = int((counts >= len(spec.fields)).sum())
    else:
        matching = int((counts == (expected_cells or len(spec.fields))).sum())
    values, times = np.unique(counts, return_counts=True)
    most = int(values[np.argmax(times)])
    separator = {"\t": "tabs", ",": "commas", "|": "'|'", ";": "semicolons"}.get(spec.format.delimiter, repr(spec.format.delimiter))
    return matching, int(counts.size), f"most records have {most} cell{'s' if most != 1 else ''} when split at {separator}"


def other_form_types_like(sample: bytes, specs: list[FileSpec]) -> list[str]:
    """The form types whose layout most of these first records have (a hint for a wrong upload)."""
    found = []
    for other in specs:
        matching, records, _ = _shape_in_sample(other, sample, strict=True)
        if records and matching >= records * max(other.quality.min_layout_match, 0.5):
            found.append(other.form_type)
    return found


def layout_failure(spec: FileSpec, verdict: Sniff, others: list[str]) -> str | None:
    """The sentence an upload fails with when too few of its first records have the form type's shape
    (`quality.min_layout_match`, default 0.5; 0 turns the check off), else None."""
    if verdict.records == 0 or verdict.share >= spec.quality.min_layout_match:
        return None
    shape = "reach the last field" if spec.format.kind == FormatKind.FIXED_WIDTH else "have the layout's cells"
    instead = f"; it looks like {' or '.join(others)}" if others else ""
    return (f"The file does not look like {spec.form_type}: {verdict.matching} of its first {verdict.records} records "
            f"{shape} ({verdict.seen}){instead}. Check the form type it was uploaded as.")  # fmt: skip
