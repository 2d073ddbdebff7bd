"""Where the command line and the HTTP API find a running upload's per-chunk progress files.

On one machine they are in the upload's work folder already. Distributed, the chunk steps write
them on other machines and push them to the work container, so the warehouse owner brings them
over before reading (`defs/distributed.pull_scan_metrics`, `pull_chunk_progress`). Imports nothing
heavy unless distributed: `ingest-pipeline status` stays free of Dagster on one machine.
"""

from collections.abc import Callable

from ingest_pipeline.core.deployment import deployment_from_env
from ingest_pipeline.core.prepare import UploadWorkspace

Refresh = Callable[[UploadWorkspace], None]


def progress_refresh() -> Refresh | None:
    """For `UploadProgressReader` (the run's progress bar, polled twice a second): the scan metrics
    files only, each downloaded once. None on one machine."""
    if not deployment_from_env().distributed:
        return None
    from ingest_pipeline.defs.distributed import pull_scan_metrics

    return pull_scan_metrics


def chunks_refresh() -> Refresh | None:
    """For `chunks_of_upload` (status UPLOAD_ID, the HTTP API's upload view): the chunks' status
    files too. None on one machine. Call it before reading progress, which then needs no refresh."""
    if not deployment_from_env().distributed:
        return None
    from ingest_pipeline.defs.distributed import pull_chunk_progress

    return pull_chunk_progress
