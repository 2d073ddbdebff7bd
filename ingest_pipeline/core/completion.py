"""When an upload finishes (completed, failed, or stopped by its quality gate): the webhook.

The stages call `notify_upload_finished` right after they set the final status. Delivery runs in
a background thread (`core.webhook.send_in_background`) that the stage waits for at most
`INGEST_WEBHOOK_WAIT_SECONDS` (default 2): a receiver that answers, or that is down (connection
refused: three quick attempts, 0.25 s and 0.5 s apart), is done and recorded in
`ingest.webhook_deliveries` well within that, so the run is never held up noticeably, and nothing
here ever raises.

Caveat: a receiver that accepts the connection but answers slowly outlives the wait. The thread
then carries on while its process lives: to its end in the command line's in-process runs, but a
multiprocess step's worker exits when its step ends, which cuts the delivery (and the record of
its attempts) short. Raise `INGEST_WEBHOOK_WAIT_SECONDS` if receivers are slow.

The body's `run_url` links to the run in the Dagster UI: `INGEST_UI_URL` (default
`http://127.0.0.1:3000`, what `ingest-pipeline ui` serves) + `/runs/<run_id>`.
"""

import logging
import os

from ingest_pipeline.core.uploads import COMPLETED, FAILED, get_upload
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.core.webhook import WebhookSettings, send_in_background

logger = logging.getLogger(__name__)

UI_URL_ENV = "INGEST_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
WAIT_ENV = "INGEST_WEBHOOK_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 2.0
# Within a stage, retries are quick so that a receiver that is down is given up on (and the
# attempts recorded) within the wait; a timeout still lets a slow receiver answer.
STAGE_DELIVERY_OPTIONS = {"max_attempts": 3, "backoff_seconds": 0.25, "timeout_seconds": 10.0}


def run_url(run_id: str | None) -> str | None:
    """The run's page in the Dagster UI (`INGEST_UI_URL`), or None without a run id."""
    if not run_id:
        return None
    base = os.environ.get(UI_URL_ENV, "").strip() or DEFAULT_UI_URL
    return f"{base.rstrip('/')}/runs/{run_id}"


def _wait_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_SECONDS)))
    except ValueError:
        return DEFAULT_WAIT_SECONDS


def notify_upload_finished(warehouse: Warehouse, upload_id: str, run_id: str | None = None) -> bool:
    """POST the upload's summary to `INGEST_WEBHOOK_URL` if set and the upload has finished.

    Waits for the delivery at most `INGEST_WEBHOOK_WAIT_SECONDS`; never raises.

    Args:
        warehouse: Holds the upload's row, and records the attempts.
        upload_id: The upload that has just finished.
        run_id: The Dagster run that finished it; by default the run recorded on the upload.

    Returns:
        Whether a delivery was started.
    """
    try:
        settings = WebhookSettings.from_env()
        if settings is None:
            return False
        upload = get_upload(warehouse, upload_id)
        if upload is None or upload["status"] not in (COMPLETED, FAILED):
            return False
        thread = send_in_background(
            warehouse, upload, run_url(run_id or upload.get("run_id")), settings.url, settings.secret,
            **STAGE_DELIVERY_OPTIONS,
        )  # fmt: skip
        thread.join(_wait_seconds())
        if thread.is_alive():
            logger.warning(
                "webhook for upload %s still being delivered after %.1fs; carrying on without waiting",
                upload_id, _wait_seconds(),
            )  # fmt: skip
        return True
    except Exception:  # the webhook must never fail an ingestion
        logger.exception("webhook for upload %s could not be sent", upload_id)
        return False
