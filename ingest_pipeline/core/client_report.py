"""The client report of one upload, with what the warehouse alone does not know: the filespec it
was judged by and the header cells of its file (both from the upload's work folder).

Used by the `client_report` asset and `ingest-pipeline report`.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from ingest_pipeline.core.errors import IngestError
from ingest_pipeline.core.filespec import FileSpec, load_form_type
from ingest_pipeline.core.prepare import UploadWorkspace
from ingest_pipeline.core.uploads import get_upload
from ingest_pipeline.core.warehouse import Warehouse

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientReport:
    path: Path
    status: str
    spec_source: str  # "work folder", "filespecs" or "none"
    header_cells: int | None  # None when the header was not known


def report_path(home: Path, upload_id: str) -> Path:
    """Where the pipeline keeps an upload's report: `<home>/reports/<upload_id>.xlsx`."""
    return Path(home) / "reports" / f"{upload_id}.xlsx"


# Rows per sheet of a client report: enough to act on, bounded in time for huge uploads (the full
# messages and rejects stay in the warehouse; the report says how many it left out).
REPORT_MAX_ROWS = 100_000


def write_client_report(
    warehouse: Warehouse, upload_id: str, out: Path, *, home: Path, filespecs: Path
) -> ClientReport:
    """Write the report of `upload_id` to `out`.

    The filespec is the one the upload was judged by (its work folder's snapshot), else the form
    type's current one, else none (the report then shows rejected records as raw text). The
    header comes from the work folder's manifest when the prepare stage recorded it.

    Raises:
        IngestError: The warehouse has no upload `upload_id`.
    """
    upload = get_upload(warehouse, upload_id)
    if upload is None:
        raise IngestError(f"no upload {upload_id!r} in {warehouse.path}")
    workspace = UploadWorkspace.of(home, upload_id)
    spec, spec_source = _spec(workspace, upload["form_type"], filespecs)
    header = None
    try:
        header = workspace.load_manifest().header if workspace.manifest.exists() else None
    except Exception:  # an unreadable or older manifest only costs the report its labels
        logger.warning("upload %s: could not read the header from %s", upload_id, workspace.manifest, exc_info=True)
    from ingest_pipeline.core.report import write_upload_report  # openpyxl: loaded by reports only

    path = write_upload_report(warehouse, upload_id, spec, Path(out), header=header, max_rows_per_sheet=REPORT_MAX_ROWS)
    return ClientReport(path, upload["status"], spec_source, len(header) if header is not None else None)


def _spec(workspace: UploadWorkspace, form_type: str, filespecs: Path) -> tuple[FileSpec | None, str]:
    if workspace.filespec.exists():
        try:
            return workspace.load_filespec(), "work folder"
        except Exception:
            logger.warning("could not read %s; using the form type's current filespec", workspace.filespec)
    try:
        return load_form_type(form_type, filespecs), "filespecs"
    except IngestError:
        return None, "none"
