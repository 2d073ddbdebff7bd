"""When an upload finishes (completed, failed, or stopped by its quality gate): the webhook.

The stages call `notify_upload_finished` right after they set the final status. With
`INGEST_WEBHOOK_URL` set, it writes the upload's delivery to the outbox (`core.outbox`) first, so
that it survives this process, then makes one quick attempt in a background thread that the stage
waits for at most `INGEST_WEBHOOK_WAIT_SECONDS` (default 2). A receiver that answers, or that is
down (connection refused), is done and recorded well within that, so the run is never held up
noticeably, and nothing here ever raises. Whatever that attempt does not deliver (a receiver down,
slow, or answering an error; a process that ends mid-POST) stays pending in the outbox and is
retried by the `webhook_outbox_sensor` (or `ingest-pipeline webhooks --deliver`).

The body's `run_url` links to the run in the Dagster UI: `INGEST_UI_URL` (default
`http://127.0.0.1:3000`, what `ingest-pipeline ui` serves) + `/runs/<run_id>`.
"""

import logging
import os
import threading

from ingest_pipeline.core.outbox import RetryPolicy, attempt_delivery, enqueue
from ingest_pipeline.core.uploads import COMPLETED, FAILED, get_upload
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.core.webhook import WebhookSettings, build_payload

logger = logging.getLogger(__name__)

UI_URL_ENV = "INGEST_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
WAIT_ENV = "INGEST_WEBHOOK_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 2.0


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
    """Put the upload's summary in the webhook outbox if `INGEST_WEBHOOK_URL` is set, and try it once.

    Waits for the attempt at most `INGEST_WEBHOOK_WAIT_SECONDS`; never raises.

    Args:
        warehouse: Holds the upload's row and the outbox, and records the attempt.
        upload_id: The upload that has just finished.
        run_id: The Dagster run that finished it; by default the run recorded on the upload.

    Returns:
        Whether a delivery was written to the outbox.
    """
    try:
        settings = WebhookSettings.from_env()
        if settings is None:
            return False
        upload = get_upload(warehouse, upload_id)
        if upload is None or upload["status"] not in (COMPLETED, FAILED):
            return False
        delivery_id = enqueue(warehouse, build_payload(upload, run_url(run_id or upload.get("run_id"))))
    except Exception:  # the webhook must never fail an ingestion
        logger.exception("webhook for upload %s could not be written to the outbox", upload_id)
        return False

    def first_attempt() -> None:
        try:
            attempt_delivery(warehouse, delivery_id, settings, RetryPolicy.from_env())
        except Exception:  # nothing may escape a thread; the delivery stays pending for the sensor
            logger.exception("webhook for upload %s: the first attempt failed", upload_id)

    # A daemon thread: the process may end before a slow receiver answers; the claim then lapses
    # and the sensor sends the delivery again.
    thread = threading.Thread(target=first_attempt, name=f"ingest-webhook-{upload_id}", daemon=True)
    thread.start()
    thread.join(_wait_seconds())
    if thread.is_alive():
        logger.warning(
            "webhook for upload %s still being sent after %.1fs; carrying on (the outbox keeps it until delivered)",
            upload_id, _wait_seconds(),
        )  # fmt: skip
    return True
