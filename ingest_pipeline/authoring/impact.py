"""`backfill --dry-run --impact`: what a new filespec would do to the uploads already received.

Each upload's original file is judged twice, in a scratch folder and in this process, by the
same stages a run uses (core.prepare, core.scan, core.merge's column stage, with the home's
reference data): once under the filespec the upload was judged by (recorded in its work folder
as filespec.json) and once under the new one. Rows are matched by row number and their outcomes
compared. Nothing is registered, published or written to the warehouse, and no Dagster run is
made: the answer cannot change what a client has been told.

Both sides read today's reference data, so the difference is the filespec's alone (a lookup
list that changed since the upload is not counted as the spec's doing).
"""

import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ingest_pipeline.authoring.check import judge_offline
from ingest_pipeline.core.errors import IngestError, SourceChangedError
from ingest_pipeline.core.filespec import FileSpec
from ingest_pipeline.core.merge import UploadFiles, scratch_connection
from ingest_pipeline.core.prepare import UploadWorkspace
from ingest_pipeline.core.quality import judge_error_rate
from ingest_pipeline.core.sql import scratch_duckdb, sql_read_parquet, sql_text
from ingest_pipeline.core.storage import AZURE_URI_SCHEME

IMPACT_MEMORY_LIMIT = "1GB"  # DuckDB's, for the comparison; it spills to the scratch folder beyond


@dataclass
class Judgement:
    """One file judged under one filespec: the upload's failure, or where its rejected rows and
    their error rules are (Parquet in the scratch folder; an upload's rows need not fit in memory)."""

    failure: str | None
    rows_total: int
    rows_rejected: int = 0
    rejected: Path | None = None  # one column: the rejected rows' numbers
    errors: Path | None = None  # (row_number, rule): the `field.rule` (or `rule`) errors of each row


@dataclass
class UploadImpact:
    upload_id: str
    company_id: str
    skipped: str | None = None  # why the upload could not be compared
    rows_total: int = 0
    old_failure: str | None = None
    new_failure: str | None = None
    to_rejected: int = 0
    to_accepted: int = 0
    rows_rejected: tuple[int, int] = (0, 0)  # (old, new)
    gate: tuple[bool, bool] = (True, True)  # the quality gate (max_error_rate) passed, (old, new)
    gate_reason: str | None = None  # why the new spec's gate fails
    rejected_by: Counter = field(default_factory=Counter)  # rule -> rows it newly rejects
    accepted_by: Counter = field(default_factory=Counter)  # rule -> newly accepted rows it rejected


def judge_file(source: Path, spec: FileSpec, *, company_id: str, home: Path, filespecs_dir: Path,
               scratch: Path, expected_sha256: str | None = None) -> Judgement:  # fmt: skip
    """Judge `source` under `spec` in `scratch` as the validate stages would, in this process."""
    workspace = UploadWorkspace(scratch)
    manifest, counts = judge_offline(source, spec, workspace, upload_id="impact", company_id=company_id, home=home,
                                     filespecs_dir=filespecs_dir, expected_sha256=expected_sha256)  # fmt: skip
    if manifest.failure:
        return Judgement(manifest.failure, manifest.rows_total)
    files = UploadFiles(workspace, manifest)
    errors = scratch / "row_errors.parquet"
    connection = scratch_connection(workspace, IMPACT_MEMORY_LIMIT)
    try:
        connection.execute(
            f"COPY (SELECT DISTINCT row_number, CASE WHEN field IS NULL THEN rule ELSE field || '.' || rule END AS rule "
            f"FROM ({files.all_messages()}) WHERE severity = 'error' AND row_number IS NOT NULL) "
            f"TO {sql_text(str(errors))} (FORMAT parquet)"
        )  # fmt: skip
    finally:
        connection.close()
    return Judgement(None, manifest.rows_total, counts.rows_rejected, files.rejected_rows, errors)


def compare(old: Judgement, new: Judgement, impact: UploadImpact, scratch: Path) -> UploadImpact:
    """Fill `impact` with the rows whose outcome differs between the two judgements (in DuckDB)."""
    impact.rows_total = max(old.rows_total, new.rows_total)
    impact.old_failure, impact.new_failure = old.failure, new.failure
    if old.failure or new.failure:
        return impact
    impact.rows_rejected = (old.rows_rejected, new.rows_rejected)
    connection = scratch_duckdb(IMPACT_MEMORY_LIMIT, scratch / "duckdb_tmp")
    try:
        for name, path in (("old_rejected", old.rejected), ("new_rejected", new.rejected)):
            connection.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {sql_read_parquet(path)} AS t(row_number)")
        connection.execute(f"CREATE TEMP VIEW old_errors AS SELECT * FROM {sql_read_parquet(old.errors)}")
        connection.execute(f"CREATE TEMP VIEW new_errors AS SELECT * FROM {sql_read_parquet(new.errors)}")
        for flipped, (into, out_of, errors) in {
            "to_rejected": ("new_rejected", "old_rejected", "new_errors"),
            "to_accepted": ("old_rejected", "new_rejected", "old_errors"),
        }.items():  # fmt: skip
            connection.execute(
                f"CREATE TEMP TABLE {flipped} AS SELECT row_number FROM {into} ANTI JOIN {out_of} USING (row_number)"
            )
            setattr(impact, flipped, connection.execute(f"SELECT count(*) FROM {flipped}").fetchone()[0])
            by_rule = connection.execute(
                f"SELECT rule, count(*) FROM {flipped} JOIN {errors} USING (row_number) GROUP BY rule"
            ).fetchall()
            (impact.rejected_by if flipped == "to_rejected" else impact.accepted_by).update(dict(by_rule))
    finally:
        connection.close()
    return impact


def recorded_filespec(upload: dict, home: Path) -> FileSpec | None:
    """The filespec the upload was last judged by, from its work folder; None once that is removed."""
    workspace = UploadWorkspace.of(home, upload["upload_id"])
    if not workspace.filespec.is_file() or workspace.removal_note.exists():
        return None
    return FileSpec.model_validate_json(workspace.filespec.read_text())


def upload_impact(upload: dict, new_spec: FileSpec, *, home: Path, filespecs_dir: Path,
                  current_spec: FileSpec) -> UploadImpact:  # fmt: skip
    """The impact of `new_spec` on one registered upload (skipped, with the reason, when it cannot be told)."""
    impact = UploadImpact(upload["upload_id"], upload["company_id"])
    source = upload["source"] or ""
    if source.startswith(AZURE_URI_SCHEME):
        impact.skipped = f"its file is in Azure storage ({source}); the impact is measured on local files only"
        return impact
    if not Path(source).is_file():
        impact.skipped = f"its original file {source} is no longer there"
        return impact
    old_spec = recorded_filespec(upload, home)
    if old_spec is None:
        if upload["filespec_version"] != current_spec.version:
            impact.skipped = (f"its work folder (with the filespec version {upload['filespec_version']} it was judged by) "
                              "was removed")  # fmt: skip
            return impact
        old_spec = current_spec  # recorded as the same version as the home's filespec
    scratch = Path(tempfile.mkdtemp(prefix=f"impact-{upload['upload_id'][:12]}-", dir=_scratch_root(home)))
    try:
        sides = []
        # The same rules on both sides (no --spec, nothing changed since): the file is judged once.
        versions = (("old", old_spec),) if old_spec == new_spec else (("old", old_spec), ("new", new_spec))
        for name, spec in versions:
            try:
                sides.append(judge_file(Path(source), spec, company_id=upload["company_id"], home=home,
                                        filespecs_dir=filespecs_dir, scratch=scratch / name,
                                        expected_sha256=upload["sha256"]))  # fmt: skip
            except IngestError as error:
                if name == "old" or isinstance(error, SourceChangedError):
                    impact.skipped = str(error)
                    return impact
                sides.append(Judgement(str(error), 0))
        compare(sides[0], sides[-1], impact, scratch)
        if not (impact.old_failure or impact.new_failure):
            old_gate = judge_error_rate(impact.rows_total, impact.rows_rejected[0], old_spec.quality.max_error_rate)
            new_gate = judge_error_rate(impact.rows_total, impact.rows_rejected[1], new_spec.quality.max_error_rate)
            impact.gate, impact.gate_reason = (old_gate.passed, new_gate.passed), new_gate.reason
        return impact
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _scratch_root(home: Path) -> Path:
    root = Path(home) / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return root


def impact_lines(impacts: list[UploadImpact], old_label: str, new_label: str) -> list[str]:
    """The report: one line per upload, then per rule, then the totals."""
    lines = [
        f"impact of {new_label} against {old_label} (each upload's original file judged again, nothing published):"
    ]
    rejected_by: Counter = Counter()
    accepted_by: Counter = Counter()
    compared = 0
    for impact in impacts:
        if impact.skipped:
            lines.append(f"upload {impact.upload_id} ({impact.company_id}): not compared: {impact.skipped}")
            continue
        compared += 1
        if impact.old_failure or impact.new_failure:
            lines.append(f"upload {impact.upload_id} ({impact.company_id}): "
                         f"{'failed' if impact.old_failure else 'completed'} -> {'fails' if impact.new_failure else 'completes'}"
                         + (f": {impact.new_failure}" if impact.new_failure else ""))  # fmt: skip
            continue
        gate = {(True, True): "", (False, False): "; still fails the quality gate", (False, True): "; now passes the quality gate",
                (True, False): f"; now FAILS the quality gate ({impact.gate_reason})"}[impact.gate]  # fmt: skip
        lines.append(f"upload {impact.upload_id} ({impact.company_id}): {impact.rows_total} rows, rejected "
                     f"{impact.rows_rejected[0]} -> {impact.rows_rejected[1]}: {impact.to_rejected} accepted -> rejected, "
                     f"{impact.to_accepted} rejected -> accepted{gate}")  # fmt: skip
        rejected_by.update(impact.rejected_by)
        accepted_by.update(impact.accepted_by)
    rules = sorted(set(rejected_by) | set(accepted_by))
    if rules:
        lines.append("per rule (a row broken by two rules counts under each):")
        width = max(len(rule) for rule in rules)
        for rule in rules:
            lines.append(
                f"  {rule.ljust(width)}  {rejected_by[rule]:>8} accepted -> rejected  {accepted_by[rule]:>8} rejected -> accepted"
            )
    to_rejected = sum(i.to_rejected for i in impacts if not i.skipped)
    to_accepted = sum(i.to_accepted for i in impacts if not i.skipped)
    lines.append(f"total: {to_rejected} row(s) accepted -> rejected, {to_accepted} row(s) rejected -> accepted "
                 f"in {compared} of {len(impacts)} upload(s)")  # fmt: skip
    return lines
