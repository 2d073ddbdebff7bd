"""The uploads views: `uploads` (every form type) and `<form_type>_uploads` (one per filespec).

Each is an unpartitioned asset whose latest materialization lists the recent uploads as a table
(company, form type, file, received, status, rows, rejected %, error, and links to the run and the
report), so an operator tells uploads apart at a glance instead of reading partition ids. The
ingest run that ends an upload (completed or failed, at any stage) records a materialization of
both views in its own log: the views follow every upload without a daemon, a sensor or a run of
their own, at the cost of one short read-only look at the warehouse per upload. A form type's
view also carries that upload's figures (rows, rejected %, seconds, rows per second, each stage's
seconds) as numbers, so the asset's plots compare uploads of one form type over time. Materialize
the views from the UI to refresh them by hand.
"""

import re
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    multi_asset,
)

from ingest_pipeline.core.home import resolve_filespecs
from ingest_pipeline.core.upload_views import (
    UploadLine,
    recent_uploads,
    status_counts,
    upload_line,
    upload_stage_seconds,
)
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.defs.settings import IngestSettings

VIEWS_GROUP = "uploads"
ALL_UPLOADS = AssetKey("uploads")
LISTED_UPLOADS = 100  # lines of each view's table, newest first
_ASSET_NAME = re.compile(r"[A-Za-z0-9_]+")

UPLOADS_SCHEMA = TableSchema(
    columns=[
        TableColumn("received", "string", description="When the upload was registered (UTC)."),
        TableColumn("company", "string"),
        TableColumn("form_type", "string"),
        TableColumn("file", "string", description="The file's name (its full source is in the run's tags)."),
        TableColumn("status", "string", description="queued, processing (stage), completed or failed."),
        TableColumn("rows", "int"),
        TableColumn("rejected", "string", description="Share of rows rejected."),
        TableColumn("seconds", "float", description="From the start of prepare to the end."),
        TableColumn("error", "string", description="Why a failed upload failed, in one sentence."),
        TableColumn("upload_id", "string", description="The upload's partition key."),
        TableColumn("run", "string", description="The run's page in this UI."),
        TableColumn("report", "string", description="The client report's asset page in this UI."),
    ]
)


def form_type_view_key(form_type: str) -> AssetKey:
    return AssetKey(f"{form_type}_uploads")


def _form_types(filespecs: Path) -> list[str]:
    """The form types with a filespec when the code location loads (names fit for an asset key)."""
    return sorted(p.stem for p in filespecs.glob("*.yaml") if _ASSET_NAME.fullmatch(p.stem))


def _run_path(run_id: str | None) -> str:
    return f"/runs/{run_id}" if run_id else ""


def _report_path(upload_id: str) -> str:
    return f"/assets/client_report?partition={upload_id}"


def _cells(line: UploadLine) -> dict:
    seconds = line.seconds
    return {
        "received": line.received_at.strftime("%Y-%m-%d %H:%M:%S"),
        "company": line.company_id,
        "form_type": line.form_type,
        "file": line.file_name,
        "status": line.status_text,
        "rows": line.rows_total,
        "rejected": line.rejected_percent,
        "seconds": round(seconds, 1) if seconds is not None else None,
        "error": line.error or "",
        "upload_id": line.upload_id,
        "run": _run_path(line.run_id),
        "report": _report_path(line.upload_id),
    }


def _markdown(lines: list[UploadLine]) -> str:
    """The same lines with links that open the run and the report (table cells are plain text)."""
    if not lines:
        return "No uploads yet."

    def cell(text) -> str:
        return "" if text is None else str(text).replace("|", "\\|").replace("\n", " ")

    out = ["| received | company | form type | file | status | rows | rejected | error | links |",
           "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for line in lines:
        c = _cells(line)
        links = f"[run]({c['run']}) · [report]({c['report']})" if line.run_id else f"[report]({c['report']})"
        out.append("| " + " | ".join(cell(c[k]) for k in ("received", "company", "form_type", "file", "status", "rows",
                                                           "rejected", "error")) + f" | {links} |")  # fmt: skip
    return "\n".join(out)


def _view_metadata(connection, form_type: str | None) -> dict:
    lines = recent_uploads(connection, form_type, LISTED_UPLOADS)
    counts = status_counts(connection, form_type)
    return {
        "uploads": MetadataValue.table([TableRecord(_cells(line)) for line in lines], UPLOADS_SCHEMA),
        "uploads_with_links": MetadataValue.md(_markdown(lines)),
        **{f"{status}_uploads": count for status, count in counts.items()},
    }


def _upload_figures(connection, line: UploadLine) -> dict:
    """One upload's figures, plotted across the uploads of its form type."""
    seconds = line.seconds
    share = line.rejected_share
    return {
        "upload_id": line.upload_id,
        "company": line.company_id,
        "file": line.file_name,
        "status": line.status,
        "error": line.error or MetadataValue.null(),
        "rows": line.rows_total if line.rows_total is not None else MetadataValue.null(),
        "rows_accepted": line.rows_accepted if line.rows_accepted is not None else MetadataValue.null(),
        "rows_rejected": line.rows_rejected if line.rows_rejected is not None else MetadataValue.null(),
        "rejected_percent": round(share * 100, 3) if share is not None else MetadataValue.null(),
        "seconds": round(seconds, 3) if seconds is not None else MetadataValue.null(),
        "rows_per_second": round(line.rows_total / seconds) if seconds and line.rows_total else 0,
        **upload_stage_seconds(connection, line.upload_id),
        "run": MetadataValue.url(_run_path(line.run_id)) if line.run_id else MetadataValue.null(),
    }


def report_upload_views(context, warehouse: Warehouse, upload_id: str) -> None:
    """Record materializations of `uploads` and the upload's form type view in this run's log."""
    with warehouse.connect(write=False) as connection:
        line = upload_line(connection, upload_id)
        if line is None:
            return
        overall = _view_metadata(connection, None)
        own = {**_view_metadata(connection, line.form_type), **_upload_figures(connection, line)}  # the table first
    description = f"{line.company_id} {line.file_name}: {line.status}" + (f", {line.error}" if line.error else "")
    context.log_event(AssetMaterialization(ALL_UPLOADS, description=description, metadata=overall))
    if _ASSET_NAME.fullmatch(line.form_type):
        context.log_event(AssetMaterialization(form_type_view_key(line.form_type), description=description, metadata=own))


def _view_specs() -> list[AssetSpec]:
    specs = [AssetSpec(ALL_UPLOADS, group_name=VIEWS_GROUP, kinds={"duckdb"},
                       description="Every recent upload (newest first): company, form type, file, status, rows, "
                       "rejected %, error, and links to its run and report. Updated as each upload ends.")]  # fmt: skip
    for form_type in _form_types(resolve_filespecs()):
        specs.append(AssetSpec(form_type_view_key(form_type), group_name=VIEWS_GROUP, kinds={"duckdb"},
                               description=f"The recent {form_type} uploads, and each upload's figures as it ends "
                               "(plotted across this form type's uploads).",))  # fmt: skip
    return specs


@multi_asset(specs=_view_specs(), can_subset=True)
def upload_views(context: AssetExecutionContext, ingest_settings: IngestSettings):
    """Refresh the views by hand (the ingest runs update them as uploads end)."""
    with ingest_settings.warehouse().connect(write=False) as connection:
        for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
            form_type = None if key == ALL_UPLOADS else key.path[-1].removesuffix("_uploads")
            # No upload's figures here: each upload is plotted once, from the run that ended it.
            yield MaterializeResult(asset_key=key, metadata=_view_metadata(connection, form_type))
