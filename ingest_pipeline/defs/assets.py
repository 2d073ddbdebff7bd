"""The ingestion assets, all partitioned by upload: prepare → scan (per chunk) → columns → merge → publish.

Each asset body reads its resources, calls `ingest_pipeline.core`, and returns metadata; large
data moves between stages as files in the upload's work folder, never through an IO manager.
"""

import contextlib
import shutil
from collections.abc import Callable, Iterator

from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    Config,
    DynamicOut,
    DynamicOutput,
    Failure,
    In,
    MaterializeResult,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
    get_dagster_logger,
    graph_asset,
    op,
)
from pydantic import Field

from ingest_pipeline.core.chunk_status import start_chunk
from ingest_pipeline.core.completion import notify_upload_finished
from ingest_pipeline.core.errors import IngestError, WorkFilesRemovedError
from ingest_pipeline.core.filespec import load_form_type, load_other_form_types
from ingest_pipeline.core.judge import ChunkJudge
from ingest_pipeline.core.merge import (
    fail_upload_after_findings,
    profile_columns,
    publish_results,
    record_stage_metrics,
    write_findings,
)
from ingest_pipeline.core.metrics import (
    StageMetrics,
    figures,
    measure,
    read_all_metrics,
    scan_figures,
    stage_seconds,
    write_metrics,
)
from ingest_pipeline.core.prepare import UploadWorkspace, prepare_chunks
from ingest_pipeline.core.progress import estimate_remaining_seconds
from ingest_pipeline.core.quality import conservation_figures, enforce_quality_gate, judge_conservation
from ingest_pipeline.core.reference import snapshot_reference_data
from ingest_pipeline.core.scan import load_reference_snapshot, scan_chunk
from ingest_pipeline.core.storage import open_source
from ingest_pipeline.core.uploads import PROCESSING, get_upload, mark_failed, now, update_upload
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.defs.check_results import check_result
from ingest_pipeline.defs.distributed import (
    DEPLOYMENT,
    WAREHOUSE_TAGS,
    pull_scan_outputs,
    push_chunk_status,
    push_prepared,
    step_workspace,
)
from ingest_pipeline.defs.partitions import PARTITION_TAG, uploads_partitions
from ingest_pipeline.defs.resources import LandingStorageResource
from ingest_pipeline.defs.settings import IngestSettings
from ingest_pipeline.defs.step_pool import POOLED_TAG
from ingest_pipeline.defs.upload_views import report_upload_views

DUCKDB_WRITER_POOL = "duckdb_writer"
INGEST_GROUP = "ingest"
INGEST_JOB_NAME = "ingest_upload"
VALIDATE_JOB_NAME = "validate_upload"
# How the run's upload ended, at the top of the run's page: `completed`, or `failed: <the sentence>`.
OUTCOME_TAG = "ingest/outcome"


def tracks_lifecycle(context: AssetExecutionContext | OpExecutionContext) -> bool:
    """Whether this run moves the upload through its lifecycle in ingest.uploads.

    A validate-only run prepares, scans and judges columns but publishes nothing, so it leaves the
    upload's status, stage and error as they were (its findings are in the run's metadata).
    """
    return context.job_name != VALIDATE_JOB_NAME


@contextlib.contextmanager
def upload_stage(
    warehouse: Warehouse, upload_id: str, stage: str, chunk: int | None = None, track_lifecycle: bool = True,
    context: AssetExecutionContext | OpExecutionContext | None = None,
) -> Iterator[StageMetrics]:
    """Measure a stage; on any error, end the upload `failed` with one sentence saying why.

    Errors a user can cause (IngestError) become a Dagster Failure with that sentence and no
    traceback; anything else is a bug and keeps its traceback. With `context`, the run is tagged
    with the sentence and the uploads view shows the failed upload.
    """
    if context is not None:
        _forget_inherited_outcome(context)
    try:
        with measure(upload_id, stage, chunk) as metrics:
            yield metrics
    except WorkFilesRemovedError as error:  # nothing was done: the upload stays as it ended
        raise Failure(description=str(error), allow_retries=False) from None
    except IngestError as error:
        if track_lifecycle:
            _end_failed(warehouse, upload_id, f"{stage}: {error}", context)
        raise Failure(description=str(error), allow_retries=False) from None
    except Failure:
        raise
    except Exception as error:
        if track_lifecycle:
            _end_failed(warehouse, upload_id, f"{stage} failed unexpectedly ({type(error).__name__}: {error}).", context)
        raise


def _end_failed(warehouse: Warehouse, upload_id: str, error: str, context=None) -> None:
    """Mark the upload failed, unless the warehouse itself is what failed: then the stage's own error
    stands, and `dead_run_sensor` (or the next command) fails the upload once the run has ended."""
    try:
        mark_failed(warehouse, upload_id, error)
    except Exception as cause:  # noqa: BLE001 - never hide the stage's error behind this one
        get_dagster_logger().warning(f"could not mark upload {upload_id} failed now ({cause}); it will be reconciled")
        return
    notify_upload_finished(warehouse, upload_id)
    if context is not None:
        _upload_ended(context, warehouse, upload_id, error)


def _upload_ended(context, warehouse: Warehouse, upload_id: str, error: str | None = None) -> None:
    """The upload has its final status: it tags the run (a failed one's with the sentence, shown at
    the top of the run's page), and the uploads views are brought up to date. Neither may fail the stage."""
    try:
        context.instance.add_run_tags(context.run_id, {OUTCOME_TAG: f"failed: {error}" if error else "completed"})
        report_upload_views(context, warehouse, upload_id)
    except Exception as cause:  # noqa: BLE001 - a view is never worth failing an upload for
        context.log.warning(f"{upload_id}: the uploads view was not updated ({type(cause).__name__}: {cause})")


def _forget_inherited_outcome(context) -> None:
    """A re-executed run inherits its parent's tags, the outcome among them: until its upload ends,
    it says it is re-running instead (a tag check in memory; a write only in such runs)."""
    run = context.run
    if run.parent_run_id and run.tags.get(OUTCOME_TAG, "re-running") != "re-running":
        context.instance.add_run_tags(context.run_id, {OUTCOME_TAG: "re-running"})


def _tag_run_with_upload(context: AssetExecutionContext, upload: dict) -> None:
    """Every run names its upload's company, form type, file and received time, whoever launched it:
    runs from the launchpad or a backfill carry only the partition (the upload id) otherwise."""
    wanted = {"ingest/company_id": upload["company_id"], "ingest/form_type": upload["form_type"],
              "ingest/source": upload["source"], "ingest/received_at": str(upload["received_at"])}  # fmt: skip
    missing = {key: value for key, value in wanted.items() if context.run.tags.get(key) != value}
    if missing:
        context.instance.add_run_tags(context.run_id, missing)


def _other_live_run(context: AssetExecutionContext) -> str | None:
    """Another unfinished run already working on this upload (a second launch of the same upload)."""
    from dagster import DagsterRunStatus, RunsFilter

    from ingest_pipeline.defs.run_health import end_dead_runs, is_ingest_run

    def others():
        running = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
        filters = RunsFilter(tags={PARTITION_TAG: context.partition_key}, statuses=running)
        # The UI's asset backfills and "Materialize" run the assets as an asset job (is_ingest_run).
        return [r.dagster_run.run_id for r in context.instance.get_run_records(filters, limit=10)
                if r.dagster_run.run_id != context.run_id
                and (r.dagster_run.job_name == VALIDATE_JOB_NAME or is_ingest_run(r.dagster_run))]  # fmt: skip

    if not others():
        return None
    end_dead_runs(context.instance)  # a crashed run that nobody ended yet does not count
    found = others()
    return found[0] if found else None


class PrepareConfig(Config):
    chunk_rows: int | None = Field(
        default=None, description="Records per chunk; by default about 64 MiB of records. Results never depend on it."
    )


@asset(
    partitions_def=uploads_partitions,
    group_name=INGEST_GROUP,
    kinds={"python", "polars"},
    tags={"stage": "prepare"},
    op_tags=WAREHOUSE_TAGS,
)
def upload_chunks(
    context: AssetExecutionContext, config: PrepareConfig, ingest_settings: IngestSettings, landing: LandingStorageResource
) -> MaterializeResult:
    """The upload split into chunks of whole records, with its header checked and reference data snapshotted."""
    upload_id = context.partition_key
    warehouse = ingest_settings.warehouse()
    upload = get_upload(warehouse, upload_id)
    if upload is None:
        raise Failure(description=f"upload {upload_id} is not registered in {warehouse.path}; add it with the sensor or `ingest-pipeline run`")
    workspace = ingest_settings.workspace(upload_id)
    tracked = tracks_lifecycle(context)
    _tag_run_with_upload(context, upload)
    other_run = _other_live_run(context)
    if other_run is not None:
        # Its work folder is in use: starting over here would delete the files under the other run.
        raise Failure(
            description=f"upload {upload_id} is already being processed by run {other_run}; this run stops "
            "without touching it (its result will be the upload's)", allow_retries=False,
        )  # fmt: skip
    with upload_stage(warehouse, upload_id, "prepare", track_lifecycle=tracked, context=context) as metrics:
        if tracked:
            update_upload(warehouse, upload_id, status=PROCESSING, stage="prepare", started_at=now(), finished_at=None,
                          error=None, run_id=context.run_id, chunks_done=0, chunks_total=None)  # fmt: skip
        spec = load_form_type(upload["form_type"], ingest_settings.filespecs_path)
        if workspace.root.exists():
            shutil.rmtree(workspace.root)  # a rerun starts clean: no stale chunk or scan files
        reference_rows = snapshot_reference_data(
            spec, upload["company_id"], ingest_settings.home_path, ingest_settings.filespecs_path, workspace.reference
        )
        # A source in the landing folder is opened as the sensor listed it: no link followed.
        landing_root = ingest_settings.home_path / "landing"
        with open_source(upload["source"], landing.azure_container_client_factory, landing_root) as stream:
            manifest = prepare_chunks(
                stream, spec, workspace, upload_id=upload_id, company_id=upload["company_id"], source=upload["source"],
                chunk_rows=config.chunk_rows, expected_sha256=upload["sha256"],
                other_specs=load_other_form_types(spec.form_type, ingest_settings.filespecs_path),
            )  # fmt: skip
        metrics.rows = manifest.rows_total
    write_metrics(metrics, workspace.metrics)
    push_prepared(workspace)  # distributed: the work files to the container, for the chunk steps
    if tracked:
        update_upload(warehouse, upload_id, stage="scan", chunks_total=len(manifest.chunks), filespec_version=spec.version)
    context.log.info(f"{upload_id}: {manifest.rows_total} records in {len(manifest.chunks)} chunk(s); {manifest.sniff}")
    if manifest.failure:
        context.log.warning(f"{upload_id} cannot be processed: {manifest.failure}")
    eta_metadata = _eta_metadata(context, warehouse, spec.form_type, "scan", manifest.rows_total)
    return MaterializeResult(
        metadata={
            **eta_metadata,
            "rows_total": manifest.rows_total,
            "chunks": len(manifest.chunks),
            "chunk_rows": manifest.chunk_rows,
            "bytes": manifest.bytes,
            "form_type": spec.form_type,
            "company_id": upload["company_id"],
            "filespec_version": spec.version,
            "looks_like_form_type": manifest.sniff,
            "header_problems": MetadataValue.json(manifest.upload_messages),
            "reference_rows": MetadataValue.json(reference_rows),
            **metrics.as_metadata(),
        }
    )


@op(ins={"upload_chunks": In(Nothing)}, out=DynamicOut(int), tags={"stage": "scan", POOLED_TAG: "scan", **WAREHOUSE_TAGS})
def plan_chunk_scans(context: OpExecutionContext, ingest_settings: IngestSettings):
    """One dynamic step per chunk, so that a failed chunk can be re-executed alone."""
    manifest = ingest_settings.workspace(context.partition_key).load_manifest()
    # An upload with no chunks still gets one (empty) step, so the downstream stages run.
    for chunk_index in [c.index for c in manifest.chunks] or [0]:
        yield DynamicOutput(chunk_index, mapping_key=f"chunk_{chunk_index:05d}")


@op(tags={"stage": "scan", POOLED_TAG: "scan"})
def scan_upload_chunk(context: OpExecutionContext, ingest_settings: IngestSettings, chunk_index: int) -> int:
    """Judge every cell of one chunk; writes the chunk's rows and messages as Parquet."""
    upload_id = context.partition_key
    if chunk_index == 0:
        return 0
    warehouse = ingest_settings.warehouse()
    if DEPLOYMENT.distributed:
        # On any worker: its own folder, filled from the work container and pushed back. This machine
        # has no warehouse: a failure here fails the run, and the run's end fails the upload.
        with step_workspace(upload_id, chunk_index) as workspace:
            return _scan_upload_chunk(context, warehouse, workspace, chunk_index, tracked=False,
                                      on_start=lambda: push_chunk_status(workspace, chunk_index))  # fmt: skip
    return _scan_upload_chunk(context, warehouse, ingest_settings.workspace(upload_id), chunk_index,
                              tracked=tracks_lifecycle(context))  # fmt: skip


def _scan_upload_chunk(context: OpExecutionContext, warehouse: Warehouse, workspace: UploadWorkspace,
                       chunk_index: int, tracked: bool, on_start: Callable[[], None] | None = None) -> int:  # fmt: skip
    upload_id = context.partition_key
    chunk_status = start_chunk(workspace, chunk_index)  # the chunk's status for the HTTP API
    if on_start is not None:  # distributed: the status is pushed to the work container at once
        on_start()
    with upload_stage(warehouse, upload_id, "scan", chunk_index, track_lifecycle=tracked, context=context) as metrics:
        manifest = workspace.load_manifest()
        spec = workspace.load_filespec()
        chunk = manifest.chunks[chunk_index - 1]
        result = scan_chunk(spec, manifest, chunk, workspace, ChunkJudge(spec, load_reference_snapshot(spec, workspace)))
        metrics.rows = result.records
        chunk_status.done(result.rejected)
    # No warehouse write here: chunk steps only write files, so another upload's long merge never
    # holds them up. Progress counts these metrics files (core.progress.scanned_chunks).
    write_metrics(metrics, workspace.metrics)
    context.log.info(
        f"chunk {chunk_index}/{len(manifest.chunks)}: rows {chunk.first_row}-{chunk.first_row + chunk.records - 1} "
        f"({result.records} rows), {result.records - result.rejected} accepted, {result.rejected} rejected, "
        f"{result.messages} messages, {metrics.seconds:.2f}s"
    )
    return result.records


@op(tags={"stage": "scan", POOLED_TAG: "scan", **WAREHOUSE_TAGS})
def summarize_chunk_scans(context: OpExecutionContext, ingest_settings: IngestSettings, records_per_chunk: list[int]) -> int:
    """Fan-in of the chunk steps: the records scanned across all chunks, and where the scan's time went."""
    total = sum(records_per_chunk)
    # The chunk steps' own measurements, from their files in the work folder (no warehouse open).
    workspace = ingest_settings.workspace(context.partition_key)
    pull_scan_outputs(workspace)  # distributed: what the chunk steps wrote, from the container
    chunks = [m for m in read_all_metrics(workspace.metrics) if m.stage == "scan"] if workspace.metrics.is_dir() else []
    scan = scan_figures(chunks)
    context.log.info(
        f"{len(records_per_chunk)} chunk step(s) scanned {total} records in {scan['seconds']:.2f}s "
        f"({scan['rows_per_second']} rows/s); the chunks took {scan.get('chunk_seconds_total', 0):.2f}s in all"
    )
    context.add_output_metadata({**scan, "rows": total, "chunk_figures": _chunk_table(chunks)})
    return total


def _chunk_table(chunks: list[StageMetrics]) -> MetadataValue:
    """Each chunk's figures, slowest first (at most 100), to see where the scan's time went."""
    schema = TableSchema(columns=[TableColumn("chunk", "int"), TableColumn("rows", "int"),
                                  TableColumn("seconds", "float"), TableColumn("cpu_seconds", "float"),
                                  TableColumn("peak_rss_mb", "float"), TableColumn("rows_per_second", "int")])  # fmt: skip
    slowest = sorted(chunks, key=lambda m: -m.seconds)[:100]
    records = [TableRecord({"chunk": m.chunk or 0, **{k: v for k, v in m.as_metadata().items() if k != "rows"},
                            "rows": m.rows}) for m in slowest]  # fmt: skip
    return MetadataValue.table(records, schema)


@graph_asset(
    partitions_def=uploads_partitions,
    group_name=INGEST_GROUP,
    ins={"upload_chunks": AssetIn(dagster_type=Nothing)},
    kinds={"pandera", "polars"},
    tags={"stage": "scan"},
)
def chunk_scans(upload_chunks):
    """Every chunk's cells judged against the filespec's pandera schema, as Parquet rows and messages."""
    return summarize_chunk_scans(plan_chunk_scans(upload_chunks).map(scan_upload_chunk).collect())


@asset(
    partitions_def=uploads_partitions,
    group_name=INGEST_GROUP,
    deps=[chunk_scans],
    kinds={"duckdb", "parquet"},
    tags={"stage": "columns"},
    op_tags=WAREHOUSE_TAGS,
)
def column_profiles(context: AssetExecutionContext, ingest_settings: IngestSettings) -> MaterializeResult:
    """Per-column judgement across the whole upload: uniqueness, null/distinct/min/max summary, and counts."""
    upload_id = context.partition_key
    warehouse = ingest_settings.warehouse()
    workspace = ingest_settings.workspace(upload_id)
    tracked = tracks_lifecycle(context)
    pull_scan_outputs(workspace)  # distributed: a re-execution may start here, after another run's scans
    with upload_stage(warehouse, upload_id, "columns", track_lifecycle=tracked, context=context) as metrics:
        manifest = workspace.load_manifest()
        if tracked:
            update_upload(warehouse, upload_id, stage="columns", chunks_done=len(manifest.chunks))
        spec = workspace.load_filespec()
        counts = profile_columns(spec, manifest, workspace, ingest_settings.warehouse_memory_limit)
        metrics.rows = counts.rows_total
    write_metrics(metrics, workspace.metrics)
    eta_metadata = _eta_metadata(context, warehouse, spec.form_type, "merge", counts.rows_total)
    return MaterializeResult(
        metadata={
            **eta_metadata,
            "rows_total": counts.rows_total,
            "rows_accepted": counts.rows_accepted,
            "rows_rejected": counts.rows_rejected,
            "error_rate": round(counts.error_rate, 6),
            "messages": counts.messages,
            **metrics.as_metadata(),
        }
    )


def _eta_metadata(context: AssetExecutionContext, warehouse: Warehouse, form_type: str, next_stage: str, rows: int) -> dict:
    """The estimated time the rest of the upload takes (from `next_stage` on), learned from earlier uploads."""
    try:
        seconds, basis = estimate_remaining_seconds(warehouse, form_type, next_stage, rows)
    except Exception as error:  # an estimate is never worth failing a stage for
        context.log.warning(f"no time estimate: {type(error).__name__}: {error}")
        return {}
    if seconds is not None:
        context.log.info(f"{context.partition_key}: about {seconds:.0f}s to go from {next_stage} on ({basis})")
    return {
        "estimated_seconds_remaining": round(seconds, 1) if seconds is not None else MetadataValue.null(),
        "estimate_basis": basis,
    }


def _load_stage_inputs(ingest_settings: IngestSettings, upload_id: str) -> tuple[Warehouse, UploadWorkspace]:
    return ingest_settings.warehouse(), ingest_settings.workspace(upload_id)


@asset(
    partitions_def=uploads_partitions,
    group_name=INGEST_GROUP,
    deps=[column_profiles],
    pool=DUCKDB_WRITER_POOL,
    kinds={"duckdb"},
    tags={"stage": "merge"},
    op_tags=WAREHOUSE_TAGS,
)
def upload_findings(context: AssetExecutionContext, ingest_settings: IngestSettings) -> MaterializeResult:
    """ingest.messages, ingest.rejects, ingest.column_summary, stage metrics and counts for the upload (replaced in one transaction)."""
    upload_id = context.partition_key
    warehouse, workspace = _load_stage_inputs(ingest_settings, upload_id)
    with upload_stage(warehouse, upload_id, "merge", context=context) as metrics:
        update_upload(warehouse, upload_id, stage="merge")
        manifest = workspace.load_manifest()
        spec = workspace.load_filespec()
        metrics.rows = manifest.rows_total
        counts = write_findings(warehouse, spec, manifest, workspace)
    record_stage_metrics(warehouse, metrics)
    if manifest.failure:
        # The findings are what such an upload gets: they are written, so this stage is done. Its
        # run fails at publishing (accepted_rows), with this sentence, and publishes nothing.
        fail_upload_after_findings(warehouse, upload_id, manifest.failure)
        notify_upload_finished(warehouse, upload_id, context.run_id)
        context.log.warning(f"{upload_id} cannot be published: {manifest.failure}")
    return MaterializeResult(
        metadata={
            "rows_total": counts.rows_total,
            "rows_accepted": counts.rows_accepted,
            "rows_rejected": counts.rows_rejected,
            "error_rate": round(counts.error_rate, 6),
            "errors": counts.errors,
            "warnings": counts.warnings,
            "upload_rule_failure": manifest.failure or MetadataValue.null(),
            **metrics.as_metadata(),
            # Where the upload's time went so far, stage by stage (measured by each stage itself).
            **stage_seconds([*read_all_metrics(workspace.metrics), metrics]),
            "messages_query": MetadataValue.md(
                f"`SELECT * FROM ingest.messages WHERE upload_id = '{upload_id}' ORDER BY row_number`"
            ),
        }
    )


CONSERVATION_CHECK = AssetCheckSpec(
    "conservation",
    asset="accepted_rows",
    description="rows_total = rows_accepted + rows_rejected, and results and ingest.rejects hold exactly those rows "
    "(none in results for an upload that was not published).",
)


@asset(
    partitions_def=uploads_partitions,
    group_name=INGEST_GROUP,
    deps=[upload_findings],
    pool=DUCKDB_WRITER_POOL,
    kinds={"duckdb"},
    tags={"stage": "publish"},
    op_tags=WAREHOUSE_TAGS,
    check_specs=[CONSERVATION_CHECK],
)
def accepted_rows(context: AssetExecutionContext, ingest_settings: IngestSettings):
    """The upload's accepted rows, typed, in results.<form_type> (replaced by upload id); the upload ends completed.

    An upload above its form type's error limit, or one that failed an upload rule, is not
    published: this step then checks that none of its rows are in results and fails with the
    sentence saying why, so the run's page shows it and only this asset is marked failed for the
    upload (the stages before it did their work and are materialized).
    """
    upload_id = context.partition_key
    warehouse, workspace = _load_stage_inputs(ingest_settings, upload_id)
    published = 0
    with upload_stage(warehouse, upload_id, "publish", context=context) as metrics:
        spec = workspace.load_filespec()
        manifest = workspace.load_manifest()
        refusal = manifest.failure
        if refusal is None:
            # Held here, not by a blocking check: a blocking check's failure would skip this step
            # and leave the run's page with Dagster's own error instead of the sentence.
            gate = enforce_quality_gate(warehouse, upload_id, spec.quality.max_error_rate, context.run_id)
            refusal = None if gate.passed else gate.reason
        if refusal is None:
            update_upload(warehouse, upload_id, stage="publish")
            published = publish_results(warehouse, spec, manifest, workspace)
        metrics.rows = published
    record_stage_metrics(warehouse, metrics)
    if refusal is None:
        notify_upload_finished(warehouse, upload_id, context.run_id)
    upload = get_upload(warehouse, upload_id)
    with warehouse.connect(write=False) as connection:
        conservation = judge_conservation(conservation_figures(connection, upload_id, spec.form_type),
                                          published=refusal is None)  # fmt: skip
    conservation_result = check_result(conservation, AssetCheckSeverity.ERROR, upload_id)
    _upload_ended(context, warehouse, upload_id, refusal)
    if refusal is not None:
        context.log.error(f"{upload_id} failed: {refusal}")
        yield conservation_result
        raise Failure(
            description=refusal,
            metadata={"upload_id": upload_id, "rows_total": _number(upload["rows_total"]),
                      "rows_rejected": _number(upload["rows_rejected"]), "published": False},
            allow_retries=False,
        )  # fmt: skip
    context.log.info(
        f"{upload_id} completed: {upload['rows_total']} rows, {upload['rows_accepted']} accepted, "
        f"{upload['rows_rejected']} rejected"
    )
    yield MaterializeResult(
        metadata={
            "table": f"results.{spec.form_type}",
            "rows_published": published,
            "rows_total": upload["rows_total"],
            "rows_rejected": upload["rows_rejected"],
            **metrics.as_metadata(),
            **_end_to_end_metadata(upload),
        },
        check_results=[conservation_result],
    )


def _number(value: int | None):
    return MetadataValue.null() if value is None else value


def _end_to_end_metadata(upload: dict) -> dict:
    """The whole upload, from the start of prepare to now: seconds and rows per second."""
    if upload["started_at"] is None or upload["finished_at"] is None:
        return {}
    seconds = (upload["finished_at"] - upload["started_at"]).total_seconds()
    end_to_end = figures(seconds, 0.0, 0, upload["rows_total"] or 0)
    return {"upload_seconds": end_to_end["seconds"], "upload_rows_per_second": end_to_end["rows_per_second"]}


ingest_assets = [upload_chunks, chunk_scans, column_profiles, upload_findings, accepted_rows]

