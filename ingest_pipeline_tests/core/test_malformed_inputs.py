"""Fuzz: malformed inputs, generated from a seed, through the core stages (prepare → scan →
columns → merge → publish, no Dagster) for the three example filespecs.

Each input is a clean generated upload with one to three kinds of damage: random bytes, truncation,
unclosed and stray quotes, bare CRs, classic Mac and mixed line endings, NULs and control
characters, wrong field counts, invalid UTF-8 or latin-1, BOMs in odd places, huge cells, empty
and whitespace lines, banners, header damage, and whole files in another shape (UTF-16, gzip, zip).
Chunk and block sizes are drawn too, so records cross block and chunk boundaries.

For every input (prepare and scan): no exception but an IngestError, whose text is one line; the
scans hold rows 1..rows_total once each, rejected exactly when they have an error message, and
those agree with a reading that does not use the pipeline's code (Python's csv module for delimited
files, line splitting for fixed width): the number of records, each record's line and the rows with
a wrong field count. For every MERGE_EVERY-th input also the column stage, merge and publish (they
cost most) and, in the warehouse: rows_total = accepted + rejected, the rejects are distinct rows
and exactly those with an error message, and the published rows are all the others.

A failure names the case and keeps its input in the test's tmp folder; `FUZZ_CASE=<id>` reruns that
case alone (through every stage).
"""

import csv
import gzip
import io
import os
import random
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

from ingest_pipeline.core import prepare as prepare_module
from ingest_pipeline.core.errors import IngestError
from ingest_pipeline.core.filespec import FileSpec, FormatKind, load_form_type
from ingest_pipeline.core.generate import UploadGenerator
from ingest_pipeline.core.judge import ChunkJudge
from ingest_pipeline.core.merge import profile_columns, publish_results, results_table, write_findings
from ingest_pipeline.core.prepare import UploadWorkspace, prepare_chunks
from ingest_pipeline.core.reference import snapshot_reference_data
from ingest_pipeline.core.scan import load_reference_snapshot, scan_chunk
from ingest_pipeline.core.uploads import register_upload
from ingest_pipeline.core.warehouse import Warehouse

FILESPECS = Path(__file__).resolve().parents[2] / "filespecs"
FORM_TYPES = {"employee_roster": "acme", "payroll": "globex", "claims_extract": "acme"}  # form type: company
CASES_PER_FORM_TYPE = 334
BATCH = 85  # uploads per warehouse
MERGE_EVERY = 20  # every 20th upload also goes through columns, merge and publish (they cost most)
BASE_ROWS = 24


# --- Damage -----------------------------------------------------------------------------------


@dataclass
class Damage:
    """What one kind of damage needs to know about the file it damages."""

    rng: random.Random
    spec: FileSpec

    @property
    def delimiter(self) -> bytes:
        return b" " if self.spec.format.kind == FormatKind.FIXED_WIDTH else self.spec.format.delimiter.encode()

    @property
    def quote(self) -> bytes:
        return b'"' if self.spec.format.kind == FormatKind.FIXED_WIDTH else self.spec.format.quote.encode()

    def position(self, data: bytes) -> int:
        return self.rng.randint(0, len(data))

    def line_start(self, data: bytes) -> int:
        starts = [0] + [m.end() for m in re.finditer(b"\n", data)]
        return self.rng.choice(starts)

    def cell_start(self, data: bytes) -> int:
        starts = [0] + [m.end() for m in re.finditer(re.escape(self.delimiter) + b"|\n", data)]
        return self.rng.choice(starts)

    def insert(self, data: bytes, piece: bytes, times: int = 1, at: Callable[[bytes], int] | None = None) -> bytes:
        for _ in range(times):
            where = (at or self.position)(data)
            data = data[:where] + piece + data[where:]
        return data


def random_bytes(d: Damage, data: bytes) -> bytes:
    return d.rng.randbytes(d.rng.choice([0, 1, 7, 60, 700, 9000]))


def spliced_random_bytes(d: Damage, data: bytes) -> bytes:
    return d.insert(data, d.rng.randbytes(d.rng.randint(1, 40)), times=d.rng.randint(1, 3))


def truncated(d: Damage, data: bytes) -> bytes:
    return data[: d.position(data)]


def unclosed_quote(d: Damage, data: bytes) -> bytes:
    return d.insert(data, d.quote, at=d.cell_start)


def stray_quotes(d: Damage, data: bytes) -> bytes:
    return d.insert(data, d.rng.choice([d.quote, d.quote * 2, d.quote * 3]), times=d.rng.randint(1, 4))


def quoted_cell_with_line_breaks(d: Damage, data: bytes) -> bytes:
    inner = d.rng.choice([b"a\nb", b"a\r\nb", b"a\rb", b"x" + d.delimiter + b"y", d.quote * 2])
    return d.insert(data, d.quote + inner + d.quote + d.delimiter, at=d.cell_start)


def bare_carriage_returns(d: Damage, data: bytes) -> bytes:
    return d.insert(data, b"\r", times=d.rng.randint(1, 5))


def classic_mac_line_endings(d: Damage, data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r")


def mixed_line_endings(d: Damage, data: bytes) -> bytes:
    pieces = data.split(b"\n")
    return b"".join(p + d.rng.choice([b"\n", b"\r\n", b"\r", b"\n\r"]) for p in pieces[:-1]) + pieces[-1]


def nuls(d: Damage, data: bytes) -> bytes:
    return d.insert(data, b"\x00" * d.rng.choice([1, 1, 2, 40]), times=d.rng.randint(1, 3))


def control_characters(d: Damage, data: bytes) -> bytes:
    return d.insert(data, bytes([d.rng.choice([*range(1, 9), 0x0B, 0x0C, *range(14, 32), 0x7F])]), times=3)


def wrong_field_counts(d: Damage, data: bytes) -> bytes:
    for _ in range(d.rng.randint(1, 4)):
        if d.rng.random() < 0.5:
            data = d.insert(data, d.delimiter)
        else:
            found = [m.start() for m in re.finditer(re.escape(d.delimiter), data)]
            if found:
                where = d.rng.choice(found)
                data = data[:where] + data[where + 1 :]
    return data


def invalid_bytes(d: Damage, data: bytes) -> bytes:
    pieces = [b"\xc3", b"\xe2\x82", b"\xff", b"\xfe", b"\x81", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
              b"caf\xe9", "café".encode(), "€".encode("cp1252"), b"\x80\x80"]  # fmt: skip
    for _ in range(d.rng.randint(1, 4)):
        data = d.insert(data, d.rng.choice(pieces))
    return data


def boms_in_odd_places(d: Damage, data: bytes) -> bytes:
    bom = d.rng.choice([b"\xef\xbb\xbf", b"\xef\xbb\xbf\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"])
    return d.insert(data, bom, at=d.rng.choice([d.line_start, d.position, lambda _: 0]))


def huge_cell(d: Damage, data: bytes) -> bytes:
    size = d.rng.choice([5_000, 140_000, 600_000])
    return d.insert(data, d.rng.choice([b"x", b"ab ", d.quote + b"q"]) * (size // 3), at=d.cell_start)


def empty_lines(d: Damage, data: bytes) -> bytes:
    pieces = [b"\n", b"\r\n", b"   \n", b"\t\n", b"\n\n\n", b"\r\r\n"]
    for _ in range(d.rng.randint(1, 4)):
        data = d.insert(data, d.rng.choice(pieces), at=d.line_start)
    return data


def banner(d: Damage, data: bytes) -> bytes:
    lines = [b"Report generated 2024-01-31, page 1 of 3\n", b"=== EXPORT ===\r\n", b'"quoted, banner"\n', b"\n",
             b"sep=,\n", b"total" + d.delimiter * 3 + b"99\n"]  # fmt: skip
    return b"".join(d.rng.sample(lines, d.rng.randint(1, 3))) + data


def duplicated_lines(d: Damage, data: bytes) -> bytes:
    lines = data.split(b"\n")
    if len(lines) > 2:
        lines.insert(d.rng.randrange(len(lines)), d.rng.choice(lines[1:]))
    return b"\n".join(lines)


def header_damage(d: Damage, data: bytes) -> bytes:
    head, sep, rest = data.partition(b"\n")
    cells = head.split(d.delimiter)
    how = d.rng.choice(["shuffle", "drop", "duplicate", "upper", "extra"])
    if how == "shuffle":
        d.rng.shuffle(cells)
    elif how == "drop" and cells:
        cells.pop(d.rng.randrange(len(cells)))
    elif how == "duplicate" and cells:
        cells.append(d.rng.choice(cells))
    elif how == "upper":
        cells = [c.upper() + b" " for c in cells]
    else:
        cells.append(b"unexpected")
    return d.delimiter.join(cells) + sep + rest


def another_file_shape(d: Damage, data: bytes) -> bytes:
    text = data.decode("latin-1")
    how = d.rng.choice(["utf-16", "utf-16-le", "utf-16-be", "gzip", "zip", "xlsx"])
    if how.startswith("utf-16"):
        return text.encode(how)
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if how == "xlsx":
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("xl/workbook.xml", "<workbook/>")
        else:
            archive.writestr("upload.csv", data)
    return buffer.getvalue()


DAMAGE = [random_bytes, spliced_random_bytes, truncated, unclosed_quote, stray_quotes, quoted_cell_with_line_breaks,
          bare_carriage_returns, classic_mac_line_endings, mixed_line_endings, nuls, control_characters,
          wrong_field_counts, invalid_bytes, boms_in_odd_places, huge_cell, empty_lines, banner, duplicated_lines,
          header_damage, another_file_shape]  # fmt: skip
RARE = {random_bytes, classic_mac_line_endings, another_file_shape, huge_cell}  # whole-file changes, or slow


@dataclass
class Case:
    case_id: str
    form_type: str
    content: bytes
    damage: list[str]
    chunk_rows: int | None
    block_bytes: int
    max_record_mib: str | None  # INGEST_MAX_RECORD_MIB for this case


def make_case(form_type: str, number: int, spec: FileSpec, base: bytes) -> Case:
    case_id = f"{form_type}-{number:04d}"
    rng = random.Random(case_id)
    kinds = []
    while not kinds or (len(kinds) < 3 and rng.random() < 0.4):
        kind = rng.choice(DAMAGE)
        if kind not in RARE or rng.random() < 0.3:
            kinds.append(kind)
    content = base
    for kind in kinds:
        content = kind(Damage(rng, spec), content)
    return Case(
        case_id, form_type, content, [k.__name__ for k in kinds],
        # Mostly one chunk (every chunk costs a scan); small blocks, except for huge cells, whose
        # unfinished record would be copied again for every block.
        chunk_rows=rng.choice([None] * 10 + [4]),
        block_bytes=rng.choice([1 << 16, 1 << 20] if huge_cell in kinds else [64, 97, 1000, 1 << 20]),
        max_record_mib=rng.choice([None, None, "0.05"]) if huge_cell in kinds else None,
    )  # fmt: skip


# --- An independent reading of the records -----------------------------------------------------


@dataclass
class Reading:
    lines: list[int]  # start line of each data record, by row
    cells: list[int] | None = None  # delimited: cells of each data record
    expected_cells: int | None = None


def independent_reading(content: bytes, spec: FileSpec) -> Reading:
    """The records as the contract defines them, read without the pipeline's code."""
    assert spec.format.skip_rows == 0, "the example filespecs skip no rows; this reading does not either"
    text = content.removeprefix(b"\xef\xbb\xbf").decode("latin-1")  # one character per byte
    if spec.format.kind == FormatKind.FIXED_WIDTH:
        lines = text.split("\n")
        return Reading([number for number, line in enumerate(lines, start=1) if line.removesuffix("\r")])
    # The csv module ends a line at a bare CR, which the contract reads as text: hide those from it
    # (but for a CR ending the file, which the pipeline takes for a line ending).
    hidden = re.sub(r"\r(?!\n|\Z)", "\x01", text)
    reader = csv.reader(io.StringIO(hidden, newline=""), delimiter=spec.format.delimiter,
                        quotechar=spec.format.quote, strict=False)  # fmt: skip
    records = []
    while True:
        first_line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        if cells:
            records.append((first_line, len(cells)))
    expected = len(spec.fields)
    if spec.format.has_header:
        if not records:
            return Reading([], [], expected)
        (_, expected), records = records[0], records[1:]
    return Reading([line for line, _ in records], [cells for _, cells in records], expected)


# --- Running the stages -----------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    merged: bool = False  # went on through columns, merge and publish
    error: str | None = None  # the IngestError's text
    failure: str | None = None  # the manifest's upload rule failure
    problems: list[str] = field(default_factory=list)


class Batch:
    """Uploads of one form type run through the core stages, with one warehouse."""

    def __init__(self, root: Path, spec: FileSpec, company: str):
        self.root, self.spec, self.company = root, spec, company
        self.home = root / "home"
        self.warehouse = Warehouse(self.home / "warehouse.duckdb", memory_limit="256MB")
        # One reference snapshot and judge for the batch (the stages after prepare read no other).
        reference = UploadWorkspace.of(self.home, "reference")
        snapshot_reference_data(spec, company, self.home, FILESPECS, reference.reference)
        self.judge = ChunkJudge(spec, load_reference_snapshot(spec, reference))

    def run(self, case: Case, merge: bool, monkeypatch: pytest.MonkeyPatch) -> Outcome:
        """Prepare and scan `case` (and with `merge`, the column stage, merge and publish too)."""
        outcome = Outcome(case, merged=merge)
        spec = self.spec
        if merge:
            register_upload(self.warehouse, upload_id=case.case_id, company_id=self.company, form_type=spec.form_type,
                            source="fuzz", sha256=None, size=len(case.content), filespec_version=spec.version)  # fmt: skip
        workspace = UploadWorkspace.of(self.home, case.case_id)
        if case.max_record_mib:
            monkeypatch.setenv(prepare_module.MAX_RECORD_VARIABLE, case.max_record_mib)
        else:
            monkeypatch.delenv(prepare_module.MAX_RECORD_VARIABLE, raising=False)
        try:
            manifest = prepare_chunks(io.BytesIO(case.content), spec, workspace, upload_id=case.case_id,
                                      company_id=self.company, source="fuzz", chunk_rows=case.chunk_rows,
                                      block_bytes=case.block_bytes)  # fmt: skip
            outcome.failure = manifest.failure
            if manifest.failure is not None and "\n" in manifest.failure:
                outcome.problems.append(f"the upload's failure is not one line: {manifest.failure!r}")
            for chunk in manifest.chunks:
                scan_chunk(spec, manifest, chunk, workspace, self.judge)
            self._check_scans(outcome, workspace, manifest.rows_total, [c.index for c in manifest.chunks])
            if merge:
                profile_columns(spec, manifest, workspace, memory_limit="256MB")
                write_findings(self.warehouse, spec, manifest, workspace)
                if manifest.failure is None:
                    publish_results(self.warehouse, spec, manifest, workspace)
        except IngestError as error:
            outcome.error = str(error)
            if not outcome.error or "\n" in outcome.error:
                outcome.problems.append(f"{type(error).__name__} is not one line: {outcome.error!r}")
        return outcome

    def _check_scans(self, outcome: Outcome, workspace: UploadWorkspace, rows_total: int, chunks: list[int]) -> None:
        """Every record scanned once, rejected exactly when it has an error message, on the right line."""
        if outcome.failure is not None:
            if rows_total or chunks:
                outcome.problems.append("an upload failing an upload rule has records to scan")
            return
        reading = independent_reading(outcome.case.content, self.spec)
        if not chunks:
            if rows_total or reading.lines:
                outcome.problems.append(f"no chunks, {rows_total} rows, {len(reading.lines)} records by the csv module")
            return
        rows = pl.read_parquet(
            [workspace.scan_rows(i) for i in chunks], columns=["_row_number", "_line_number", "_rejected"]
        )
        messages = pl.read_parquet([workspace.scan_messages(i) for i in chunks],
                                   columns=["row_number", "line_number", "severity", "rule"])  # fmt: skip
        problems = outcome.problems
        if rows["_row_number"].to_list() != list(range(1, rows_total + 1)):
            problems.append(f"the scans hold rows {rows['_row_number'].to_list()[:10]}…, not 1..{rows_total} once each")
            return
        errors = messages.filter(pl.col("severity") == "error")
        if set(rows.filter("_rejected")["_row_number"]) != set(errors["row_number"]):
            problems.append("the rejected rows of the scans are not the rows with an error message")
        line_of = dict(zip(rows["_row_number"], rows["_line_number"], strict=True))
        if any(line_of.get(row) != line for row, line in zip(errors["row_number"], errors["line_number"], strict=True)):
            problems.append("a message's line is not its row's line")
        if rows_total != len(reading.lines):
            problems.append(f"rows_total {rows_total}, but an independent reading finds {len(reading.lines)} records")
            return
        if rows["_line_number"].to_list() != reading.lines:
            wrong = [
                (r, a, b)
                for r, (a, b) in enumerate(zip(rows["_line_number"], reading.lines, strict=True), start=1)
                if a != b
            ]
            problems.append(f"records on the wrong line: (row, line, independent line) {wrong[:3]}")
        if reading.cells is not None:
            # An undecodable record gets `encoding` instead, and no field_count (the contract).
            undecodable = set(errors.filter(pl.col("rule") == "encoding")["row_number"])
            expected = {row for row, cells in enumerate(reading.cells, start=1) if cells != reading.expected_cells}
            found = set(errors.filter(pl.col("rule") == "field_count")["row_number"])
            if found != expected - undecodable:
                problems.append(
                    f"field_count on rows {sorted(found ^ (expected - undecodable))[:5]} disagrees with the csv module"
                )

    def check_warehouse(self, outcomes: list[Outcome]) -> None:
        """Every record of the merged uploads accepted or rejected exactly once in the warehouse."""
        merged = [o for o in outcomes if o.merged and o.error is None]
        if not merged:
            return
        with self.warehouse.connect(write=False) as db:
            uploads = {row[0]: row[1:] for row in db.execute(
                "SELECT upload_id, status, rows_total, rows_accepted, rows_rejected FROM ingest.uploads").fetchall()}  # fmt: skip
            rejects, error_rows, results = {}, {}, {}
            for upload_id, row in db.execute("SELECT upload_id, row_number FROM ingest.rejects").fetchall():
                rejects.setdefault(upload_id, []).append(row)
            for upload_id, row in db.execute(
                "SELECT upload_id, row_number FROM ingest.messages WHERE severity = 'error' AND row_number IS NOT NULL"
            ).fetchall():  # fmt: skip
                error_rows.setdefault(upload_id, set()).add(row)
            table = db.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'results' AND table_name = ?",
                               [self.spec.form_type]).fetchone()[0]  # fmt: skip
            if table:
                for upload_id, row in db.execute(
                    f"SELECT _upload_id, _row_number FROM {results_table(self.spec)}"
                ).fetchall():
                    results.setdefault(upload_id, []).append(row)
        for outcome in merged:
            upload_id, problems = outcome.case.case_id, outcome.problems
            status, total, accepted, rejected = uploads[upload_id]
            rejected_rows, published = rejects.get(upload_id, []), results.get(upload_id, [])
            if outcome.failure is not None:
                if total is not None or published or rejected_rows:
                    problems.append("an upload failing an upload rule has counts, results or rejects")
                continue
            if status != "completed" or None in (total, accepted, rejected):
                problems.append(f"status {status} with counts {total}/{accepted}/{rejected}")
                continue
            if total != accepted + rejected:
                problems.append(f"rows_total {total} != accepted {accepted} + rejected {rejected}")
            if len(rejected_rows) != rejected or len(set(rejected_rows)) != rejected:
                problems.append(
                    f"{len(rejected_rows)} rejects ({len(set(rejected_rows))} distinct rows), rows_rejected {rejected}"
                )
            if set(rejected_rows) != error_rows.get(upload_id, set()):
                problems.append("the rejected rows are not the rows with an error message")
            if sorted(published + rejected_rows) != list(range(1, total + 1)):
                problems.append("published and rejected rows are not rows 1..rows_total, each once")


def base_upload(tmp_path: Path, spec: FileSpec, company: str) -> bytes:
    generator = UploadGenerator(spec, BASE_ROWS, 0.15, seed=5, company_id=company, home=tmp_path / "gen-home",
                                filespecs_dir=FILESPECS)  # fmt: skip
    out = tmp_path / f"{spec.form_type}.base"
    generator.write(out, tmp_path / f"{spec.form_type}.key.csv")
    return out.read_bytes()


@pytest.mark.parametrize("form_type", list(FORM_TYPES))
def test_malformed_inputs_never_crash_and_every_record_ends_accepted_or_rejected(tmp_path, monkeypatch, form_type):
    spec = load_form_type(form_type, FILESPECS)
    company = FORM_TYPES[form_type]
    base = base_upload(tmp_path, spec, company)
    only = os.environ.get("FUZZ_CASE")
    cases = [make_case(form_type, number, spec, base) for number in range(CASES_PER_FORM_TYPE)]
    if only:
        cases = [case for case in cases if case.case_id == only]
    field_size_limit = csv.field_size_limit(1 << 30)  # the independent reading must take huge cells too
    problems, shapes = [], {"IngestError": 0, "upload rule failure": 0, "judged": 0}
    try:
        for first in range(0, len(cases), BATCH):
            batch = Batch(tmp_path / f"batch-{first}", spec, company)
            outcomes = []
            for number, case in enumerate(cases[first : first + BATCH], start=first):
                try:
                    outcomes.append(
                        batch.run(case, merge=number % MERGE_EVERY == 0 or bool(only), monkeypatch=monkeypatch)
                    )
                except Exception as error:  # noqa: BLE001 - any other exception is the finding
                    kept = tmp_path / f"{case.case_id}.input"
                    kept.write_bytes(case.content)
                    raise AssertionError(f"{case.case_id} ({', '.join(case.damage)}; input in {kept}): "
                                         f"{type(error).__name__}: {error}") from error  # fmt: skip
            batch.check_warehouse(outcomes)
            for outcome in outcomes:
                shapes["IngestError" if outcome.error else "upload rule failure" if outcome.failure else "judged"] += 1
                if outcome.problems:
                    kept = tmp_path / f"{outcome.case.case_id}.input"
                    kept.write_bytes(outcome.case.content)
                    problems += [f"{outcome.case.case_id} ({', '.join(outcome.case.damage)}; input in {kept}): {p}"
                                 for p in outcome.problems]  # fmt: skip
            shutil.rmtree(batch.root)
    finally:
        csv.field_size_limit(field_size_limit)
    assert not problems, "\n".join(problems[:20])
    if not only:
        # The inputs reach every outcome, and most are judged record by record (not refused whole).
        assert shapes["judged"] > len(cases) / 2 and shapes["IngestError"] > 0, shapes
