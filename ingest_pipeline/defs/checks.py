"""Asset checks of each upload; each result names its upload (`upload_id` in its metadata).

- `error_rate` on upload_findings (ERROR): the share of rejected rows against the form type's
  `quality.max_error_rate`. The publish stage (accepted_rows) holds the gate itself: above the limit
  it publishes nothing, ends the upload `failed` with the check's sentence and fails its step with
  that sentence; the upload's messages, rejects and summary stay.
- `drift` on upload_findings, WARN: extra or missing columns, or a column's share of empty cells
  or errors far from the form type's recent completed uploads. Its thresholds are run config.
- `conservation` on accepted_rows (evaluated by that step, defs/assets.py): every record is exactly
  one of published or rejected; for an upload that was not published, none is in `results`.

The checks are not partitioned: the UI then shows each check's latest result (the latest upload's)
alike in the checks list, the check's panel and the asset graph, where a partitioned check shows
its panel's latest result beside a "Failed" summing up every upload ever gated, and keeps the
asset red for good after one bad upload. Each upload's own results are its check evaluations (the
run's log, the check's execution history) and the `uploads` view (defs/upload_views.py).
"""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, Config, Failure, asset_check
from pydantic import Field

from ingest_pipeline.core.quality import DriftThresholds, drift_inputs, gate_verdict, judge_drift
from ingest_pipeline.core.uploads import get_upload
from ingest_pipeline.defs.assets import upload_findings, upload_stage
from ingest_pipeline.defs.check_results import check_result
from ingest_pipeline.defs.distributed import WAREHOUSE_TAGS
from ingest_pipeline.defs.settings import IngestSettings

_DEFAULT_DRIFT = DriftThresholds()


def upload_of(context: AssetCheckExecutionContext) -> str:
    """The upload a check runs for: its run's partition."""
    if not context.has_partition_key:
        raise Failure(description="a check of an upload runs in that upload's run: materialize the asset for one "
                      "upload (partition) with its checks", allow_retries=False)  # fmt: skip
    return context.partition_key


@asset_check(asset=upload_findings, op_tags=WAREHOUSE_TAGS)
def error_rate(context: AssetCheckExecutionContext, ingest_settings: IngestSettings) -> AssetCheckResult:
    """Rejected rows at most the form type's quality.max_error_rate; above it, nothing is published and the upload fails."""
    upload_id = upload_of(context)
    warehouse, workspace = ingest_settings.warehouse(), ingest_settings.workspace(upload_id)
    with upload_stage(warehouse, upload_id, "gate", track_lifecycle=False):
        limit = workspace.load_filespec().quality.max_error_rate
        verdict = gate_verdict(warehouse, upload_id, limit)  # judged only: accepted_rows acts on it
    if not verdict.passed:
        context.log.error(f"{upload_id}: {verdict.reason}")
    return check_result(verdict.outcome(), AssetCheckSeverity.ERROR, upload_id)


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


@asset_check(asset=upload_findings, op_tags=WAREHOUSE_TAGS)
def drift(
    context: AssetCheckExecutionContext, config: DriftConfig, ingest_settings: IngestSettings
) -> AssetCheckResult:
    """No extra or missing columns, and no column's share of empty cells or errors far from recent uploads (a warning)."""
    upload_id = upload_of(context)
    warehouse = ingest_settings.warehouse()
    upload = get_upload(warehouse, upload_id)
    thresholds = config.thresholds()
    with warehouse.connect(write=False) as connection:
        inputs = drift_inputs(connection, upload_id, upload["form_type"], thresholds.history_uploads)
    outcome = judge_drift(inputs, thresholds)
    if not outcome.passed:
        context.log.warning(f"{upload_id}: {outcome.description}")
    return check_result(outcome, AssetCheckSeverity.WARN, upload_id)


ingest_checks = [error_rate, drift]
