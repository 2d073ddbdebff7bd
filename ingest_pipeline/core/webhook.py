"""The completion webhook: a signed JSON summary POSTed when an upload completes or fails.

A receiver gets one delivery per finished upload (and one more each time the upload is re-run to
its end): POSTs of the body `build_payload` describes, with these headers:

- `Content-Type: application/json`
- `X-Ingest-Event`: `upload.completed` or `upload.failed` (the body's `event`).
- `X-Ingest-Delivery`: a uuid for this delivery, the same on each of its retries, so a receiver
  can drop a retry it has already processed (a retry follows a timeout even when the first POST
  did arrive).
- `X-Ingest-Signature: sha256=<hex>`, only when a secret is set: the HMAC-SHA256 of the raw
  request body (the bytes as received, before any JSON parsing) keyed with the secret's UTF-8
  bytes, as lower-case hex. A receiver recomputes it and compares in constant time, e.g.
  `hmac.compare_digest(sign(body, secret), header_value)` (or `verify_signature`).

This module sends: `deliver_body` never raises, retries connection errors, timeouts, 5xx and
429 with exponential backoff, and `record_attempts` logs every attempt in
`ingest.webhook_deliveries`. Redirects are not followed: urllib would turn a redirected POST into
a body-less GET, so a 3xx is reported as a failed delivery naming the new address. Keeping each
delivery until it arrives, across processes and restarts, is `core.outbox`'s job.

Settings come from the environment (`INGEST_WEBHOOK_URL`, `INGEST_WEBHOOK_SECRET`), read when a
delivery is made, never at import (`WebhookSettings.from_env`); no URL means no webhook.
"""

import dataclasses
import datetime as dt
import email.utils
import hashlib
import hmac
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import duckdb

from ingest_pipeline.core.warehouse import Warehouse

logger = logging.getLogger(__name__)

URL_ENV = "INGEST_WEBHOOK_URL"
SECRET_ENV = "INGEST_WEBHOOK_SECRET"

SIGNATURE_HEADER = "X-Ingest-Signature"
EVENT_HEADER = "X-Ingest-Event"
DELIVERY_HEADER = "X-Ingest-Delivery"

EVENT_BY_STATUS = {"completed": "upload.completed", "failed": "upload.failed"}

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF_SECONDS = 1.0
DEFAULT_TIMEOUT_SECONDS = 10.0
# A receiver's Retry-After is honoured up to this; beyond it a busy receiver would hold a
# delivery (and, when called synchronously, a run) for as long as it likes.
DEFAULT_MAX_RETRY_AFTER_SECONDS = 60.0

@dataclasses.dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of a webhook delivery and how it ended.

    Attributes:
        upload_id: The upload the delivery is about.
        attempt: 1 for the first POST of the delivery, 2 for its first retry, and so on.
        attempted_at: When the POST started (UTC, without time zone, as the warehouse stores it).
        url: The webhook address with any user name, password and query string removed, since
            those often hold credentials.
        status_code: The HTTP status of the answer, or None when there was no answer.
        error: Why the attempt did not succeed, in one sentence, or None when it did.
        seconds: How long the attempt took.
        delivery_id: The delivery's uuid (the `X-Ingest-Delivery` header).
        event: `upload.completed` or `upload.failed`.
        retry_after: The wait in seconds the answer's Retry-After asked for, if it was retryable.
    """

    upload_id: str
    attempt: int
    attempted_at: dt.datetime
    url: str
    status_code: int | None
    error: str | None
    seconds: float
    delivery_id: str = ""
    event: str = ""
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    """Where and how to deliver; `from_env` gives None when no webhook is configured."""

    url: str
    secret: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "WebhookSettings | None":
        """Settings from `INGEST_WEBHOOK_URL` and `INGEST_WEBHOOK_SECRET`; None without a URL."""
        environ = os.environ if environ is None else environ
        url = environ.get(URL_ENV, "").strip()
        if not url:
            return None
        return cls(url=url, secret=environ.get(SECRET_ENV) or None)


def build_payload(upload: Mapping[str, Any], run_url: str | None) -> dict[str, Any]:
    """The JSON body sent for a finished upload.

    Args:
        upload: The upload's row of `ingest.uploads` as a mapping of column to value.
        run_url: A link to the run that processed the upload (e.g. the Dagster UI), if known.

    Returns:
        `event`, `upload_id`, `company_id`, `form_type`, `filespec_version`, `status`,
        `rows_total`, `rows_accepted`, `rows_rejected`, `error`, `finished_at` (ISO 8601) and
        `run_url`; values the upload does not have are null.

    Raises:
        ValueError: The upload has not finished (its status is neither completed nor failed),
            which only a bug in the caller can cause.
    """
    status = upload.get("status")
    if status not in EVENT_BY_STATUS:
        raise ValueError(
            f"upload {upload.get('upload_id')!r} has status {status!r}; only finished uploads are notified"
        )
    finished_at = upload.get("finished_at")
    return {
        "event": EVENT_BY_STATUS[status],
        "upload_id": upload["upload_id"],
        "company_id": upload.get("company_id"),
        "form_type": upload.get("form_type"),
        "filespec_version": upload.get("filespec_version"),
        "status": status,
        "rows_total": upload.get("rows_total"),
        "rows_accepted": upload.get("rows_accepted"),
        "rows_rejected": upload.get("rows_rejected"),
        "error": upload.get("error"),
        "finished_at": finished_at.isoformat() if isinstance(finished_at, dt.date) else finished_at,
        "run_url": run_url,
    }


def sign(body: bytes, secret: str) -> str:
    """The `X-Ingest-Signature` header value for `body`: `sha256=` and the HMAC-SHA256 in hex."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: str, header_value: str | None) -> bool:
    """Whether `header_value` is the signature of `body` with `secret` (for receivers and tests)."""
    return header_value is not None and hmac.compare_digest(sign(body, secret), header_value)


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The request body for `payload`: its JSON, keys sorted, as UTF-8 bytes."""
    return json.dumps(payload, default=str, sort_keys=True).encode("utf-8")


def deliver(
    url: str,
    payload: Mapping[str, Any],
    secret: str | None = None,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    max_retry_after_seconds: float = DEFAULT_MAX_RETRY_AFTER_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> list[DeliveryAttempt]:
    """POST `payload` as JSON to `url` until it is accepted, a final answer comes, or attempts run out.

    A new delivery (a fresh `X-Ingest-Delivery` id) of `encode_body(payload)`; see `deliver_body`.
    """
    return deliver_body(
        url, encode_body(payload), secret, delivery_id=str(uuid.uuid4()), event=str(payload.get("event", "")),
        upload_id=str(payload.get("upload_id", "")), max_attempts=max_attempts, backoff_seconds=backoff_seconds,
        timeout_seconds=timeout_seconds, max_retry_after_seconds=max_retry_after_seconds, sleep=sleep,
    )  # fmt: skip


def deliver_body(
    url: str,
    body: bytes,
    secret: str | None = None,
    *,
    delivery_id: str,
    event: str,
    upload_id: str,
    first_attempt: int = 1,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    max_retry_after_seconds: float = DEFAULT_MAX_RETRY_AFTER_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> list[DeliveryAttempt]:
    """POST `body` to `url` until it is accepted, a final answer comes, or attempts run out.

    Connection errors, timeouts, 5xx and 429 are retried after `backoff_seconds * 2**n` (n = 0 for
    the first retry), or after the answer's Retry-After (capped at `max_retry_after_seconds`)
    when it gives one. A 2xx is success; any other answer (3xx, 4xx other than 429) is final.

    Args:
        url: The receiver's address (http or https).
        body: The JSON body, byte for byte (`encode_body`); it is what the signature covers.
        secret: Signs the body (`X-Ingest-Signature`) when given.
        delivery_id: The `X-Ingest-Delivery` header: the same on every retry of one delivery.
        event: The `X-Ingest-Event` header (`upload.completed` or `upload.failed`).
        upload_id: The upload the delivery is about (for the attempts' record).
        first_attempt: The number of this call's first POST within its delivery (later calls
            for the same delivery go on counting).
        max_attempts: POSTs at most, the first included.
        backoff_seconds: The wait before the first retry; each later wait doubles.
        timeout_seconds: How long one POST may wait for the connection and for the answer.
        max_retry_after_seconds: The longest wait a Retry-After header can ask for.
        sleep: Waits between attempts (tests pass a recorder instead of waiting).

    Returns:
        Every attempt made, in order; the last one tells how the delivery ended. Never raises.
    """
    headers = {"Content-Type": "application/json", EVENT_HEADER: event, DELIVERY_HEADER: delivery_id}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    shown_url = redact_url(url)
    opener = urllib.request.build_opener(_RefuseRedirects())

    attempts: list[DeliveryAttempt] = []
    for attempt in range(1, max(1, max_attempts) + 1):
        attempted_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        started = time.monotonic()
        outcome = _post_once(opener, url, body, headers, timeout_seconds)
        attempts.append(
            DeliveryAttempt(
                upload_id=upload_id,
                attempt=first_attempt + attempt - 1,
                attempted_at=attempted_at,
                url=shown_url,
                status_code=outcome.status_code,
                error=outcome.error,
                seconds=round(time.monotonic() - started, 6),
                delivery_id=delivery_id,
                event=event,
                retry_after=outcome.retry_after,
            )
        )
        if outcome.error is None or not outcome.retryable or attempt >= max_attempts:
            break
        if outcome.retry_after is not None:
            delay = min(outcome.retry_after, max_retry_after_seconds)
        else:
            delay = backoff_seconds * 2 ** (attempt - 1)
        try:
            sleep(delay)
        except Exception:  # an injected sleep must not turn into a failed ingestion either
            logger.exception("webhook: waiting before retry %d failed", attempt + 1)
    return attempts


def record_attempts(warehouse: Warehouse, attempts: list[DeliveryAttempt]) -> None:
    """Append `attempts` to `ingest.webhook_deliveries`, in a transaction of their own.

    The table is a log of what was sent: a rerun that delivers again adds its own attempts.
    """
    if not attempts:
        return
    with warehouse.transaction() as connection:
        insert_attempts(connection, attempts)


def insert_attempts(connection: duckdb.DuckDBPyConnection, attempts: list[DeliveryAttempt]) -> None:
    """Append `attempts` to `ingest.webhook_deliveries` within the caller's transaction."""
    if not attempts:
        return
    connection.executemany(
        "INSERT INTO ingest.webhook_deliveries "
        "(upload_id, attempt, attempted_at, url, status_code, error, seconds, delivery_id, event) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [a.upload_id, a.attempt, a.attempted_at, a.url, a.status_code, a.error, a.seconds, a.delivery_id, a.event]
            for a in attempts
        ],
    )


def redact_url(url: str) -> str:
    """`url` without user name, password, query string or fragment, which often hold credentials."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host if parts.port is None else f"{host}:{parts.port}"
    except ValueError:
        return "(not a valid URL)"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclasses.dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    error: str | None
    retryable: bool = False
    retry_after: float | None = None


def _post_once(
    opener: urllib.request.OpenerDirector, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> _Outcome:
    host = redact_url(url)
    try:
        if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
            raise ValueError("it must start with http:// or https://")
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with opener.open(request, timeout=timeout) as response:
            response.read(64 * 1024)  # drain a little so the server sees the request through
            return _Outcome(response.status, None)
    except urllib.error.HTTPError as answer:
        status = answer.code
        retry_after = _retry_after_seconds(answer.headers.get("Retry-After") if answer.headers else None)
        answer.close()
        if 300 <= status < 400:
            location = answer.headers.get("Location") if answer.headers else None
            where = f" to {redact_url(location)}" if location else ""
            return _Outcome(
                status, f"{host} redirected the POST{where} (HTTP {status}); set the webhook URL to the final address."
            )
        retryable = status == 429 or status >= 500
        return _Outcome(
            status, f"{host} answered HTTP {status} {answer.reason}.", retryable, retry_after if retryable else None
        )
    except (TimeoutError, urllib.error.URLError) as failure:
        reason = failure.reason if isinstance(failure, urllib.error.URLError) else failure
        if isinstance(reason, TimeoutError):
            return _Outcome(None, f"{host} did not answer within {timeout:g} seconds.", retryable=True)
        return _Outcome(None, f"could not reach {host}: {_describe(reason)}.", retryable=True)
    except (OSError, http.client.HTTPException) as failure:  # reset connections, malformed answers
        return _Outcome(None, f"the connection to {host} failed: {_describe(failure)}.", retryable=True)
    except ValueError as failure:  # a malformed URL: retrying cannot help
        return _Outcome(None, f"the webhook URL {host} cannot be used: {str(failure).rstrip('.')}.")
    except Exception as failure:  # deliver never raises; an unforeseen fault is final and reported
        logger.exception("webhook: unexpected failure posting to %s", host)
        return _Outcome(None, f"posting to {host} failed unexpectedly: {_describe(failure)}.")


def _describe(failure: object) -> str:
    """A short phrase for an exception: its OS message when it has one, else its type and text."""
    if isinstance(failure, OSError) and failure.strerror:
        return failure.strerror.rstrip(".").lower()
    text = str(failure).rstrip(".")
    if isinstance(failure, BaseException):
        return f"{type(failure).__name__}: {text}" if text else type(failure).__name__
    return text


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Turn every redirect into an HTTPError: urllib would re-send a POST as a GET without its body."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None
