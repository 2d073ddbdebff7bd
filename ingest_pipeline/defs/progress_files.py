"""Where the command line and the HTTP API find a running upload's per-chunk progress files.

On one machine they are in the upload's work folder already. Distributed, the chunk steps write
them on other machines and push them to the work container, so the warehouse owner brings them
over before reading (`defs/distributed.pull_progress`). Imports nothing heavy unless distributed:
`ingest-pipeline status` stays free of Dagster on one machine.
"""

from collections.abc import Callable

from ingest_pipeline.core.deployment import deployment_from_env
from ingest_pipeline.core.prepare import UploadWorkspace


def progress_refresh() -> Callable[[UploadWorkspace], None] | None:
    """The refresh for `chunks_of_upload` and `progress_of_uploads`: None on one machine."""
    if not deployment_from_env().distributed:
        return None
    from ingest_pipeline.defs.distributed import pull_progress

    return pull_progress
