"""The quality checks of an upload: the error-rate gate, row conservation, and drift.

Each check has a pure judging function (figures in, `CheckOutcome` out) and a loader that reads
the figures from the warehouse. `ingest_pipeline.defs.checks` wires them as Dagster asset checks;
`enforce_quality_gate` is also called by the publish stage itself, so that no run, whatever its
selection, publishes the rows of an upload above its form type's `quality.max_error_rate`.
"""

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import duckdb

from ingest_pipeline.core.uploads import FAILED, get_upload
from ingest_pipeline.core.warehouse import Warehouse, quote_identifier


@dataclass(frozen=True)
class CheckOutcome:
    """How one check ended: passed or not, one sentence saying why, and the figures behind it."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def format_percent(share: float, differs_from: float | None = None) -> str:
    """`share` (0..1) as a percentage with at most one decimal ("12.5%", "5%"), given more
    decimals when needed so that it does not read the same as `differs_from` (5.04% vs 5%)."""
    for decimals in range(1, 5):
        text = _percent(share, decimals)
        if differs_from is None or share == differs_from or text != _percent(differs_from, decimals):
            return text
    return _percent(share, 5)


def _percent(share: float, decimals: int) -> str:
    text = f"{share * 100:.{decimals}f}".rstrip("0").rstrip(".")
    return f"{text}%"


# --- error rate: the gate ---------------------------------------------------------------------


@dataclass(frozen=True)
class GateVerdict:
    """The error-rate gate for one upload: passed when the rejected share is at most the limit."""

    passed: bool
    rows_total: int
    rows_rejected: int
    max_error_rate: float | None
    reason: str | None = None  # the upload's `error` when the gate fails

    @property
    def error_rate(self) -> float:
        return self.rows_rejected / self.rows_total if self.rows_total else 0.0

    def outcome(self) -> CheckOutcome:
        if not self.passed:
            description = self.reason or ""
        elif self.max_error_rate is None:
            description = "The form type sets no limit on rejected rows (quality.max_error_rate)."
        else:
            description = (
                f"{format_percent(self.error_rate, self.max_error_rate)} of rows rejected, within the form type's "
                f"limit of {format_percent(self.max_error_rate)}."
            )
        return CheckOutcome(
            self.passed,
            description,
            {
                "rows_total": self.rows_total,
                "rows_rejected": self.rows_rejected,
                "error_rate": round(self.error_rate, 6),
                "max_error_rate": self.max_error_rate,
                "published": self.passed,
            },
        )


def judge_error_rate(rows_total: int, rows_rejected: int, max_error_rate: float | None) -> GateVerdict:
    """The gate: fails when rejected rows are *above* `max_error_rate` of all rows (None: no limit).

    Compared exactly (as fractions of the decimal limit), so 5 of 100 rows is not above 0.05.
    """
    if max_error_rate is None or rows_total <= 0:
        return GateVerdict(True, rows_total, rows_rejected, max_error_rate)
    above = Fraction(rows_rejected, rows_total) > Fraction(str(max_error_rate))
    if not above:
        return GateVerdict(True, rows_total, rows_rejected, max_error_rate)
    rate = rows_rejected / rows_total
    reason = (
        f"{format_percent(rate, max_error_rate)} of rows rejected, above the form type's limit of "
        f"{format_percent(max_error_rate)}."
    )
    return GateVerdict(False, rows_total, rows_rejected, max_error_rate, reason)


def gate_verdict(warehouse: Warehouse, upload_id: str, max_error_rate: float | None) -> GateVerdict:
    """The gate for an upload whose findings are written (its counts are in `ingest.uploads`)."""
    upload = get_upload(warehouse, upload_id)
    if upload is None:
        raise LookupError(f"upload {upload_id} is not in {warehouse.path}")
    if upload["rows_total"] is None and upload["status"] == FAILED:
        # Failed an upload rule (the wrong file, say), so never judged row by row: nothing is published.
        reason = upload["error"] or "The upload was not judged row by row, so nothing is published."
        return GateVerdict(False, 0, 0, max_error_rate, reason)
    return judge_error_rate(upload["rows_total"] or 0, upload["rows_rejected"] or 0, max_error_rate)


def enforce_quality_gate(
    warehouse: Warehouse, upload_id: str, max_error_rate: float | None, run_id: str | None = None
) -> GateVerdict:
    """Judge the gate; when it fails, end the upload `failed` with the reason and send the webhook.

    The upload's messages, rejects and summary (written by the merge) stay; its rows are not in
    `results` (the merge removed any from an earlier run), and the caller must not publish them.
    """
    # Imported here: merge pulls in the whole stage machinery, which this module's judges do not need.
    from ingest_pipeline.core.completion import notify_upload_finished
    from ingest_pipeline.core.merge import fail_upload_after_findings

    verdict = gate_verdict(warehouse, upload_id, max_error_rate)
    if not verdict.passed:
        upload = get_upload(warehouse, upload_id)
        # A rerun of the gate on an upload it already failed changes nothing and sends nothing again.
        if upload is None or upload["status"] != FAILED or upload["error"] != verdict.reason:
            fail_upload_after_findings(warehouse, upload_id, verdict.reason or "")
            notify_upload_finished(warehouse, upload_id, run_id)
    return verdict


# --- conservation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConservationFigures:
    """What the warehouse holds for one upload: its counts, and the rows of `results` and `rejects`."""

    rows_total: int | None
    rows_accepted: int | None
    rows_rejected: int | None
    results_rows: int  # rows of results.<form_type> for the upload
    results_distinct: int  # distinct row numbers among them
    rejects_rows: int
    rejects_distinct: int
    in_both: int  # row numbers both published and rejected
    out_of_range: int  # row numbers outside 1..rows_total, in either table


def judge_conservation(figures: ConservationFigures, published: bool = True) -> CheckOutcome:
    """Every record is exactly one of accepted (in `results`) or rejected (in `rejects`).

    `published` False is for an upload that must have no rows in `results` (gated).
    """
    f = figures
    metadata = {
        "rows_total": f.rows_total,
        "rows_accepted": f.rows_accepted,
        "rows_rejected": f.rows_rejected,
        "results_rows": f.results_rows,
        "rejects_rows": f.rejects_rows,
        "rows_in_both": f.in_both,
        "row_numbers_out_of_range": f.out_of_range,
    }
    if f.rows_total is None or f.rows_accepted is None or f.rows_rejected is None:
        if not published and f.results_rows == 0 and f.rejects_rows == 0:
            return CheckOutcome(True, "The upload was not judged row by row, and none of its rows are in results or "
                                "ingest.rejects.", metadata)  # fmt: skip
        return CheckOutcome(False, "The upload has no counts: its findings were not written.", metadata)
    problems = []
    if f.rows_total != f.rows_accepted + f.rows_rejected:
        problems.append(
            f"rows_total {f.rows_total} is not rows_accepted {f.rows_accepted} + rows_rejected {f.rows_rejected}"
        )
    expected_results = f.rows_accepted if published else 0
    if f.results_rows != expected_results:
        problems.append(f"results holds {f.results_rows} rows, not {expected_results}")
    if f.results_distinct != f.results_rows:
        problems.append(f"results holds {f.results_rows - f.results_distinct} duplicate row numbers")
    if f.rejects_rows != f.rows_rejected:
        problems.append(f"ingest.rejects holds {f.rejects_rows} rows, not {f.rows_rejected}")
    if f.rejects_distinct != f.rejects_rows:
        problems.append(f"ingest.rejects holds {f.rejects_rows - f.rejects_distinct} duplicate row numbers")
    if f.in_both:
        problems.append(f"{f.in_both} rows are both published and rejected")
    if f.out_of_range:
        problems.append(f"{f.out_of_range} row numbers are outside 1..{f.rows_total}")
    if problems:
        return CheckOutcome(False, "Rows are not conserved: " + "; ".join(problems) + ".", metadata)
    where = "results and ingest.rejects" if published else "ingest.rejects (none published)"
    return CheckOutcome(
        True,
        f"All {f.rows_total} rows are accounted for: {f.rows_accepted} accepted and {f.rows_rejected} rejected, "
        f"exactly as in {where}.",
        metadata,
    )


def conservation_figures(connection: duckdb.DuckDBPyConnection, upload_id: str, form_type: str) -> ConservationFigures:
    """Read the figures of `judge_conservation` (a read-only connection will do)."""
    counts = connection.execute(
        "SELECT rows_total, rows_accepted, rows_rejected FROM ingest.uploads WHERE upload_id = ?", [upload_id]
    ).fetchone()
    if counts is None:
        raise LookupError(f"upload {upload_id} is not in ingest.uploads")
    rows_total = counts[0]
    has_results = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'results' AND table_name = ?", [form_type]
    ).fetchone()[0]
    results = f"results.{quote_identifier(form_type)}"
    published = (
        f"SELECT _row_number AS row_number FROM {results} WHERE _upload_id = $upload_id"
        if has_results
        else "SELECT NULL::BIGINT AS row_number WHERE false"
    )
    rejected = "SELECT row_number FROM ingest.rejects WHERE upload_id = $upload_id"
    figures = connection.execute(
        f"""
        WITH published AS ({published}), rejected AS ({rejected})
        SELECT (SELECT count(*) FROM published), (SELECT count(DISTINCT row_number) FROM published),
               (SELECT count(*) FROM rejected), (SELECT count(DISTINCT row_number) FROM rejected),
               (SELECT count(*) FROM (SELECT row_number FROM published INTERSECT SELECT row_number FROM rejected)),
               (SELECT count(*) FROM (SELECT row_number FROM published UNION ALL SELECT row_number FROM rejected)
                WHERE row_number < 1 OR row_number > coalesce($rows_total, 0))
        """,
        {"upload_id": upload_id, "rows_total": rows_total},
    ).fetchone()
    return ConservationFigures(rows_total, counts[1], counts[2], *figures)


# --- drift ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftThresholds:
    """When an upload's columns count as a sudden change from the form type's recent uploads.

    Attributes:
        history_uploads: Completed uploads of the form type (the most recent) that make the baseline.
        min_history_uploads: Fewer than this and there is no baseline: shares are not compared.
        min_rows: Uploads with fewer rows are too small for their shares to mean anything.
        max_null_share_change: Largest change, in share of rows (0.2 = 20 percentage points), of a
            column's empty cells against the baseline.
        max_error_share_change: Likewise for a column's error messages per row.
    """

    history_uploads: int = 10
    min_history_uploads: int = 3
    min_rows: int = 100
    max_null_share_change: float = 0.2
    max_error_share_change: float = 0.1


@dataclass(frozen=True)
class ColumnFigures:
    """One field's rows, nulls and error messages: of one upload, or summed over the baseline."""

    field: str
    rows: int
    nulls: int
    errors: int

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def error_share(self) -> float:
        return self.errors / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class DriftInputs:
    """Everything `judge_drift` compares, as read by `drift_inputs`."""

    columns: list[ColumnFigures]
    baseline: list[ColumnFigures]  # summed over the baseline uploads
    baseline_uploads: int
    extra_columns: list[str]
    missing_columns: list[str]


def judge_drift(inputs: DriftInputs, thresholds: DriftThresholds | None = None) -> CheckOutcome:
    """Passes unless the header gained or lost columns, or a column's share of empty cells or of
    errors moved further from the baseline than the thresholds allow."""
    thresholds = thresholds or DriftThresholds()
    findings: list[str] = []
    if inputs.extra_columns:
        findings.append("extra column(s) " + ", ".join(repr(c) for c in inputs.extra_columns))
    if inputs.missing_columns:
        findings.append("missing column(s) " + ", ".join(repr(c) for c in inputs.missing_columns))
    compared = inputs.baseline_uploads >= thresholds.min_history_uploads
    baseline = {c.field: c for c in inputs.baseline}
    table = []
    for column in inputs.columns:
        base = baseline.get(column.field)
        row: dict[str, Any] = {
            "field": column.field,
            "null_share": round(column.null_share, 4),
            "error_share": round(column.error_share, 4),
        }
        if base is not None and base.rows:
            row["baseline_null_share"] = round(base.null_share, 4)
            row["baseline_error_share"] = round(base.error_share, 4)
        table.append(row)
        if not compared or base is None or not base.rows or column.rows < thresholds.min_rows:
            continue
        for what, now, before, limit in (
            ("empty cells", column.null_share, base.null_share, thresholds.max_null_share_change),
            ("errors", column.error_share, base.error_share, thresholds.max_error_share_change),
        ):
            if abs(now - before) > limit:
                findings.append(
                    f"'{column.field}' {what} {format_percent(now)} of rows against {format_percent(before)} "
                    f"in recent uploads"
                )
    metadata: dict[str, Any] = {
        "extra_columns": inputs.extra_columns,
        "missing_columns": inputs.missing_columns,
        "baseline_uploads": inputs.baseline_uploads,
        "shares_compared": compared,
        "max_null_share_change": thresholds.max_null_share_change,
        "max_error_share_change": thresholds.max_error_share_change,
        "columns": table,
        "findings": findings,
    }
    if findings:
        return CheckOutcome(False, "The upload differs from the form type's recent uploads: " + "; ".join(findings) + ".",
                            metadata)  # fmt: skip
    if compared:
        description = f"No column drifted from the last {inputs.baseline_uploads} completed upload(s)."
    else:
        description = (
            f"No extra or missing columns; only {inputs.baseline_uploads} earlier completed upload(s), too few "
            f"(under {thresholds.min_history_uploads}) to compare column shares."
        )
    return CheckOutcome(True, description, metadata)


_MISSING_FIELD = re.compile(r"for field '([^']+)'")


def drift_inputs(
    connection: duckdb.DuckDBPyConnection, upload_id: str, form_type: str, history_uploads: int
) -> DriftInputs:
    """Read the upload's header messages and column summary, and the baseline: the column
    summaries of the form type's `history_uploads` most recent other completed uploads."""
    header = connection.execute(
        "SELECT rule, value, message FROM ingest.messages WHERE upload_id = ? AND row_number IS NULL "
        "AND rule IN ('extra_column', 'missing_column') ORDER BY rule, message",
        [upload_id],
    ).fetchall()
    extra = [(value or "").strip() for rule, value, _ in header if rule == "extra_column"]
    missing = []
    for rule, _, message in header:
        if rule == "missing_column":
            match = _MISSING_FIELD.search(message)
            missing.append(match.group(1) if match else message)
    columns = [
        ColumnFigures(*row)
        for row in connection.execute(
            "SELECT field, coalesce(rows, 0), coalesce(nulls, 0), coalesce(errors, 0) "
            "FROM ingest.column_summary WHERE upload_id = ?",
            [upload_id],
        ).fetchall()
    ]
    recent = """
        SELECT upload_id FROM ingest.uploads
        WHERE form_type = $form_type AND status = 'completed' AND upload_id <> $upload_id
        ORDER BY finished_at DESC NULLS LAST, upload_id LIMIT $limit
    """
    params = {"form_type": form_type, "upload_id": upload_id, "limit": max(0, int(history_uploads))}
    baseline_uploads = connection.execute(f"SELECT count(*) FROM ({recent})", params).fetchone()[0]
    baseline = [
        ColumnFigures(*row)
        for row in connection.execute(
            f"""
            SELECT field, sum(coalesce(rows, 0))::BIGINT, sum(coalesce(nulls, 0))::BIGINT,
                   sum(coalesce(errors, 0))::BIGINT
            FROM ingest.column_summary WHERE upload_id IN ({recent}) GROUP BY field
            """,
            params,
        ).fetchall()
    ]
    return DriftInputs(columns, baseline, baseline_uploads, extra, missing)
