"""Asset checks of each upload (one result per upload partition, with its figures as metadata).

- `error_rate` on upload_findings, BLOCKING: above the form type's `quality.max_error_rate`, the
  upload ends `failed` with the reason, and the run skips accepted_rows, so none of its rows are
  published (the merge already removed any from an earlier run); its messages, rejects and
  summary stay. accepted_rows also enforces the gate itself, for runs that leave the check out.
- `drift` on upload_findings, WARN: extra or missing columns, or a column's share of empty cells
  or errors far from the form type's recent completed uploads. Its thresholds are run config.
- `conservation` on accepted_rows: every record is exactly one of published or rejected.
"""

import warnings
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    Config,
    MetadataValue,
    asset_check,
)
from pydantic import Field

from ingest_pipeline.core.quality import (
    CheckOutcome,
    DriftThresholds,
    conservation_figures,
    drift_inputs,
    enforce_quality_gate,
    judge_conservation,
    judge_drift,
)
from ingest_pipeline.core.uploads import get_upload
from ingest_pipeline.defs.assets import accepted_rows, upload_findings, upload_stage
from ingest_pipeline.defs.partitions import uploads_partitions
from ingest_pipeline.defs.settings import IngestSettings

# Partitioned asset checks (one result per upload) are a preview feature in this Dagster version;
# they are what makes each upload's results visible on its own, so the notice is not repeated.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")

_DEFAULT_DRIFT = DriftThresholds()


def _result(outcome: CheckOutcome, severity: AssetCheckSeverity) -> AssetCheckResult:
    return AssetCheckResult(
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata={key: _metadata_value(key, value) for key, value in outcome.metadata.items()},
    )


def _metadata_value(key: str, value: Any) -> Any:
    if value is None:
        return MetadataValue.null()
    if key == "columns" and isinstance(value, list):
        return MetadataValue.md(_markdown_table(value))
    if isinstance(value, list | dict):
        return MetadataValue.json(value)
    return value


def _markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no columns)"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


@asset_check(asset=upload_findings, blocking=True, partitions_def=uploads_partitions)
def error_rate(context: AssetCheckExecutionContext, ingest_settings: IngestSettings) -> AssetCheckResult:
    """Rejected rows at most the form type's quality.max_error_rate; above it, nothing is published and the upload fails."""
    upload_id = context.partition_key
    warehouse, workspace = ingest_settings.warehouse(), ingest_settings.workspace(upload_id)
    with upload_stage(warehouse, upload_id, "gate"):
        limit = workspace.load_filespec().quality.max_error_rate
        verdict = enforce_quality_gate(warehouse, upload_id, limit, context.run.run_id)
    if not verdict.passed:
        context.log.error(f"{upload_id} failed its quality gate: {verdict.reason}")
    return _result(verdict.outcome(), AssetCheckSeverity.ERROR)


class DriftConfig(Config):
    history_uploads: int = Field(default=_DEFAULT_DRIFT.history_uploads,
                                 description="Recent completed uploads of the form type that make the baseline.")  # fmt: skip
    min_history_uploads: int = Field(default=_DEFAULT_DRIFT.min_history_uploads,
                                     description="Fewer earlier uploads than this: column shares are not compared.")  # fmt: skip
    min_rows: int = Field(default=_DEFAULT_DRIFT.min_rows,
                          description="Uploads with fewer rows are too small to compare column shares.")  # fmt: skip
    max_null_share_change: float = Field(default=_DEFAULT_DRIFT.max_null_share_change,
                                         description="Largest change of a column's share of empty cells (0.2 = 20 points).")  # fmt: skip
    max_error_share_change: float = Field(default=_DEFAULT_DRIFT.max_error_share_change,
                                          description="Largest change of a column's errors per row (0.1 = 10 points).")  # fmt: skip

    def thresholds(self) -> DriftThresholds:
        return DriftThresholds(self.history_uploads, self.min_history_uploads, self.min_rows,
                               self.max_null_share_change, self.max_error_share_change)  # fmt: skip


@asset_check(asset=upload_findings, partitions_def=uploads_partitions)
def drift(
    context: AssetCheckExecutionContext, config: DriftConfig, ingest_settings: IngestSettings
) -> AssetCheckResult:
    """No extra or missing columns, and no column's share of empty cells or errors far from recent uploads (a warning)."""
    upload_id = context.partition_key
    warehouse = ingest_settings.warehouse()
    upload = get_upload(warehouse, upload_id)
    thresholds = config.thresholds()
    with warehouse.connect(write=False) as connection:
        inputs = drift_inputs(connection, upload_id, upload["form_type"], thresholds.history_uploads)
    outcome = judge_drift(inputs, thresholds)
    if not outcome.passed:
        context.log.warning(f"{upload_id}: {outcome.description}")
    return _result(outcome, AssetCheckSeverity.WARN)


@asset_check(asset=accepted_rows, partitions_def=uploads_partitions)
def conservation(context: AssetCheckExecutionContext, ingest_settings: IngestSettings) -> AssetCheckResult:
    """rows_total = rows_accepted + rows_rejected, and results and ingest.rejects hold exactly those rows."""
    upload_id = context.partition_key
    warehouse = ingest_settings.warehouse()
    upload = get_upload(warehouse, upload_id)
    with warehouse.connect(write=False) as connection:
        figures = conservation_figures(connection, upload_id, upload["form_type"])
    return _result(judge_conservation(figures, published=True), AssetCheckSeverity.ERROR)


ingest_checks = [error_rate, drift, conservation]
