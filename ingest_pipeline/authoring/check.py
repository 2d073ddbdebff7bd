"""`check-spec` beyond the contract: does a filespec fit the home's reference data, and real files?

Pure logic over core/ (no Dagster, nothing registered, nothing written to the warehouse): the
reference check reads the tables' headers where an upload would find them (core/reference.py);
the sample check runs an upload's own stages (prepare, scan, column) in a temporary work folder
that is removed afterwards, and counts the messages by field and rule.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ingest_pipeline.core.errors import IngestError
from ingest_pipeline.core.filespec import FileSpec
from ingest_pipeline.core.reference import (
    find_reference_table,
    read_reference_csv,
    reference_columns,
    snapshot_reference_data,
)


def companies_with_reference_data(home: Path, filespecs_dir: Path) -> list[str]:
    """Every company with a folder of its own reference data, under the home or the filespecs."""
    found = set()
    for base in (Path(home), Path(filespecs_dir)):
        folder = base / "reference" / "company"
        if folder.is_dir():
            found.update(path.name for path in folder.iterdir() if path.is_dir())
    return sorted(found)


def reference_problems(spec: FileSpec, home: Path, filespecs_dir: Path, company: str | None = None) -> list[str]:
    """One sentence per lookup or enrich table or column that the reference data lacks.

    `company.<table>` is checked for `company`, else for every company that has reference data."""
    needed = reference_columns(spec)
    problems: list[str] = []
    companies = [company] if company else companies_with_reference_data(home, filespecs_dir)
    if not companies and any(scope == "company" for scope, _ in needed):
        return [f"no company has reference data under {Path(home) / 'reference' / 'company'} "
                f"(or {Path(filespecs_dir) / 'reference' / 'company'}), so the company tables cannot be checked"]  # fmt: skip
    for (scope, table), columns in needed.items():
        for company_id in companies if scope == "company" else ["-"]:
            try:
                path = find_reference_table(scope, table, company_id, home, filespecs_dir)
                frame = read_reference_csv(path)
            except IngestError as error:
                problems.append(f"{error}")
                continue
            for column in columns:
                if column not in frame.columns:
                    problems.append(f"reference table {scope}.{table} ({path}) has no column {column!r}; "
                                    f"it has {', '.join(frame.columns)}")  # fmt: skip
    return problems


@dataclass
class SampleCounts:
    """What judging a sample file found: rows, and messages per (field, rule, severity)."""

    rows_total: int
    rows_rejected: int
    failure: str | None
    counts: list[tuple[str, str, str, int]]  # (field or '-', rule, severity, messages), most first

    @property
    def messages(self) -> int:
        return sum(count for *_, count in self.counts)


def judge_offline(source: Path, spec: FileSpec, workspace, *, upload_id: str, company_id: str, home: Path,
                  filespecs_dir: Path, other_specs=(), expected_sha256: str | None = None):  # fmt: skip
    """An upload's own stages (prepare, scan, column) on `source` in `workspace`, in this process:
    nothing registered, no Dagster run, nothing written to the warehouse. Used by `check-spec
    --sample` and `backfill --impact`; returns the manifest and the upload's counts."""
    from ingest_pipeline.core.judge import ChunkJudge
    from ingest_pipeline.core.merge import profile_columns
    from ingest_pipeline.core.prepare import prepare_chunks
    from ingest_pipeline.core.scan import load_reference_snapshot, scan_chunk

    snapshot_reference_data(spec, company_id, home, filespecs_dir, workspace.reference)
    with open(source, "rb") as stream:
        manifest = prepare_chunks(stream, spec, workspace, upload_id=upload_id, company_id=company_id, source=str(source),
                                  expected_sha256=expected_sha256, other_specs=other_specs)  # fmt: skip
    if manifest.chunks:
        judge = ChunkJudge(spec, load_reference_snapshot(spec, workspace))
        for chunk in manifest.chunks:
            scan_chunk(spec, manifest, chunk, workspace, judge)
    return manifest, profile_columns(spec, manifest, workspace)


def judge_sample(spec: FileSpec, sample: Path, company: str, home: Path, filespecs_dir: Path) -> SampleCounts:
    """Run the upload stages' pure logic on `sample` in a temporary work folder (removed after)."""
    from ingest_pipeline.core.filespec import load_other_form_types
    from ingest_pipeline.core.merge import UploadFiles, scratch_connection
    from ingest_pipeline.core.prepare import UploadWorkspace

    with tempfile.TemporaryDirectory(prefix="check-spec-") as folder:
        workspace = UploadWorkspace(Path(folder) / "sample")
        manifest, counts = judge_offline(sample, spec, workspace, upload_id="sample", company_id=company, home=home,
                                         filespecs_dir=filespecs_dir,
                                         other_specs=load_other_form_types(spec.form_type, filespecs_dir))  # fmt: skip
        connection = scratch_connection(workspace, "1GB")
        try:
            rows = connection.execute(f"""
                SELECT coalesce(field, '-'), rule, severity, count(*) AS n FROM ({UploadFiles(workspace, manifest).all_messages()})
                GROUP BY ALL ORDER BY n DESC, 1, 2
            """).fetchall()  # fmt: skip
        finally:
            connection.close()
    return SampleCounts(counts.rows_total, counts.rows_rejected, manifest.failure, [tuple(row) for row in rows])


def format_counts(result: SampleCounts) -> list[str]:
    """The counts as aligned lines: field, rule, severity, messages."""
    header = ("field", "rule", "severity", "messages")
    rows = [header] + [(f, r, s, f"{n:,}") for f, r, s, n in result.counts]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
