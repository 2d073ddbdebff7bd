"""The webhook outbox: each finished upload's delivery, kept in the warehouse until it arrives.

When an upload finishes, `enqueue` writes its delivery to `ingest.webhook_outbox` as `pending`,
with the body exactly as it is sent. Whoever gets to it first then sends it: the stage's one
quick try (`core.completion`), the `webhook_outbox_sensor` in the Dagster daemon, or
`ingest-pipeline webhooks --deliver`. Each first *claims* the row in a transaction (only a
pending row that nobody holds can be claimed), so two processes never send it at once; a claim
lasts one POST's timeout plus a margin, so a sender killed mid-POST holds the row no longer than
that. After the POST, the attempt (`ingest.webhook_deliveries`) and the row's new state are written
in one transaction: `delivered`; or `pending` with the next attempt `INGEST_WEBHOOK_RETRY_SECONDS`
(default 30) later, the wait doubling after each failure up to an hour (longer if the receiver's
Retry-After asks); or, once `INGEST_WEBHOOK_GIVE_UP_SECONDS` (default 86400: a day) have passed
since the upload finished, `given_up`.

Every failed attempt is retried, a 4xx or 3xx answer included: those come from a receiver or an
address being set up wrong, and once fixed it receives what it missed. Body and delivery id never
change between attempts; each sender signs with its own `INGEST_WEBHOOK_SECRET` and posts to its
own `INGEST_WEBHOOK_URL`, read when it sends (no address is stored: addresses often hold tokens).

A sender killed after the receiver got its POST but before the outcome was written leaves the row
pending, so it is sent again with the same `X-Ingest-Delivery`, by which the receiver drops the
repeat: delivery is at least once, which is the best any sender can promise across a crash.
"""

import dataclasses
import datetime as dt
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import duckdb

from ingest_pipeline.core.errors import ConfigurationError
from ingest_pipeline.core.uploads import now
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.core.webhook import (
    DeliveryAttempt,
    WebhookSettings,
    deliver_body,
    encode_body,
    insert_attempts,
)

logger = logging.getLogger(__name__)

PENDING, DELIVERED, GIVEN_UP = "pending", "delivered", "given_up"

RETRY_ENV = "INGEST_WEBHOOK_RETRY_SECONDS"
GIVE_UP_ENV = "INGEST_WEBHOOK_GIVE_UP_SECONDS"
DEFAULT_RETRY_SECONDS = 30.0
DEFAULT_GIVE_UP_SECONDS = 24 * 3600.0
MAX_RETRY_INTERVAL_SECONDS = 3600.0  # however long a receiver stays down, it is tried at least hourly
# A claim outlives its POST's timeout by this much, for the write of the outcome after it.
CLAIM_MARGIN_SECONDS = 60.0
# Delivery ids of finished-upload events: the same event always gets the same id (see `enqueue`).
DELIVERY_NAMESPACE = uuid.UUID("5f0c3c52-8f0e-4d7e-9a41-3b1f6f1c2a77")

COLUMNS = (
    "delivery_id, upload_id, event, payload, created_at, attempts, next_attempt_at, status, last_error, "
    "last_attempt_at, claim_token, claimed_until"
)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When a pending delivery is tried again, and when it is given up."""

    retry_seconds: float = DEFAULT_RETRY_SECONDS
    give_up_seconds: float = DEFAULT_GIVE_UP_SECONDS
    max_retry_interval_seconds: float = MAX_RETRY_INTERVAL_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "RetryPolicy":
        """`INGEST_WEBHOOK_RETRY_SECONDS` (default 30) and `INGEST_WEBHOOK_GIVE_UP_SECONDS` (default 86400).

        Raises:
            ConfigurationError: One of them is not a number of seconds above 0.
        """
        environ = os.environ if environ is None else environ
        return cls(
            retry_seconds=_seconds(environ, RETRY_ENV, DEFAULT_RETRY_SECONDS),
            give_up_seconds=_seconds(environ, GIVE_UP_ENV, DEFAULT_GIVE_UP_SECONDS),
        )

    def retry_delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed POST: the retry time, doubling, capped.

        A receiver's Retry-After lengthens the wait (up to the cap), never shortens it.
        """
        delay = min(self.retry_seconds * 2 ** max(0, attempts - 1), self.max_retry_interval_seconds)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_interval_seconds))
        return delay

    def deadline(self, created_at: dt.datetime) -> dt.datetime:
        """When a delivery created at `created_at` and not delivered by then is given up."""
        return created_at + dt.timedelta(seconds=self.give_up_seconds)


def _seconds(environ: Mapping[str, str], variable: str, default: float) -> float:
    text = environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(f"{variable} is {text!r}; it must be a number of seconds above 0.")
    return value


@dataclasses.dataclass(frozen=True)
class OutboxDelivery:
    """One row of `ingest.webhook_outbox`: a finished upload's webhook delivery and where it stands.

    Attributes:
        delivery_id: The `X-Ingest-Delivery` header, the same on every attempt.
        upload_id: The upload the delivery is about.
        event: `upload.completed` or `upload.failed`.
        payload: The JSON body, exactly as it is sent.
        created_at: When the upload finished and the delivery was written (UTC).
        attempts: POSTs made so far.
        next_attempt_at: When a pending delivery is due next.
        status: `pending`, `delivered` or `given_up`.
        last_error: Why the latest attempt failed (or why it was given up); None once delivered.
        last_attempt_at: When the latest POST started.
        claim_token: Who holds the delivery while sending it, until `claimed_until`.
        claimed_until: When a sender's claim lapses (a killed sender leaves it to lapse).
    """

    delivery_id: str
    upload_id: str
    event: str
    payload: str
    created_at: dt.datetime
    attempts: int
    next_attempt_at: dt.datetime
    status: str
    last_error: str | None
    last_attempt_at: dt.datetime | None
    claim_token: str | None
    claimed_until: dt.datetime | None

    def claimable(self, at: dt.datetime) -> bool:
        return self.status == PENDING and (self.claimed_until is None or self.claimed_until <= at)


def delivery_id_for(payload: Mapping[str, Any]) -> str:
    """The delivery id of a finished-upload event: derived from the upload, event and finish time.

    Telling of the same finish twice (two code paths, a retried step) thus enqueues one delivery;
    a rerun that finishes again is a new event with a new id.
    """
    finished_at = payload.get("finished_at")
    if not finished_at:
        return str(uuid.uuid4())
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{payload['upload_id']}\n{payload['event']}\n{finished_at}"))


def enqueue(warehouse: Warehouse, payload: Mapping[str, Any], at: dt.datetime | None = None) -> str:
    """Write the delivery of `payload` (from `webhook.build_payload`) as pending and due now.

    Returns:
        Its delivery id. The same event enqueued again keeps its first row as it stands.
    """
    delivery_id = delivery_id_for(payload)
    at = at or now()
    with warehouse.transaction() as connection:
        connection.execute(
            "INSERT INTO ingest.webhook_outbox (delivery_id, upload_id, event, payload, created_at, attempts, "
            "next_attempt_at, status) VALUES (?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (delivery_id) DO NOTHING",
            [delivery_id, str(payload["upload_id"]), str(payload["event"]), encode_body(payload).decode("utf-8"),
             at, at, PENDING],
        )  # fmt: skip
    return delivery_id


def claim_seconds(settings: WebhookSettings) -> float:
    """How long a claim lasts: one POST's timeout and the margin for writing its outcome."""
    return settings.timeout_seconds + CLAIM_MARGIN_SECONDS


def claim(
    warehouse: Warehouse, delivery_id: str, lease_seconds: float, at: dt.datetime | None = None, due_only: bool = True
) -> OutboxDelivery | None:
    """Take the delivery for sending, if it is pending, nobody holds it and (with `due_only`) it is due.

    Returns:
        The claimed row (its `claim_token` is this claim's), or None when it cannot be claimed.
    """
    at = at or now()
    token = str(uuid.uuid4())
    due = "AND next_attempt_at <= ?" if due_only else ""
    with warehouse.transaction() as connection:
        row = connection.execute(
            f"UPDATE ingest.webhook_outbox SET claim_token = ?, claimed_until = ? "
            f"WHERE delivery_id = ? AND status = ? AND (claimed_until IS NULL OR claimed_until <= ?) {due} "
            f"RETURNING {COLUMNS}",
            [token, at + dt.timedelta(seconds=lease_seconds), delivery_id, PENDING, at, *([at] if due_only else [])],
        ).fetchone()
    return OutboxDelivery(*row) if row else None


def send(delivery: OutboxDelivery, settings: WebhookSettings) -> DeliveryAttempt:
    """One POST of a claimed delivery to the configured receiver; never raises."""
    (attempt,) = deliver_body(
        settings.url, delivery.payload.encode("utf-8"), settings.secret, delivery_id=delivery.delivery_id,
        event=delivery.event, upload_id=delivery.upload_id, first_attempt=delivery.attempts + 1, max_attempts=1,
        timeout_seconds=settings.timeout_seconds,
    )  # fmt: skip
    return attempt


def record_outcome(
    warehouse: Warehouse, delivery: OutboxDelivery, attempt: DeliveryAttempt, policy: RetryPolicy,
    at: dt.datetime | None = None,
) -> str:  # fmt: skip
    """Log the attempt and move the claimed delivery on, in one transaction.

    Returns:
        The delivery's new status; or its status unchanged when the claim was lost meanwhile
        (it lapsed and another sender took the delivery over, whose outcome then counts).
    """
    at = at or now()
    attempts = delivery.attempts + 1
    deadline = policy.deadline(delivery.created_at)
    if attempt.succeeded:
        status, next_at, error = DELIVERED, delivery.next_attempt_at, None
    elif at >= deadline:
        status, next_at, error = GIVEN_UP, delivery.next_attempt_at, _given_up_error(policy, attempt.error)
    else:
        next_at = min(at + dt.timedelta(seconds=policy.retry_delay(attempts, attempt.retry_after)), deadline)
        status, error = PENDING, attempt.error
    with warehouse.transaction() as connection:
        insert_attempts(connection, [attempt])
        updated = connection.execute(
            "UPDATE ingest.webhook_outbox SET status = ?, attempts = attempts + 1, next_attempt_at = ?, "
            "last_error = ?, last_attempt_at = ?, claim_token = NULL, claimed_until = NULL "
            "WHERE delivery_id = ? AND status = ? AND claim_token = ? RETURNING status",
            [status, next_at, error, attempt.attempted_at, delivery.delivery_id, PENDING, delivery.claim_token],
        ).fetchone()
        if updated is None:
            logger.warning("webhook delivery %s was taken over by another sender; its outcome stands",
                           delivery.delivery_id)  # fmt: skip
            (status,) = connection.execute(
                "SELECT status FROM ingest.webhook_outbox WHERE delivery_id = ?", [delivery.delivery_id]
            ).fetchone()
    return status


def _given_up_error(policy: RetryPolicy, last_error: str | None) -> str:
    seconds = policy.give_up_seconds
    amount, unit = (seconds / 3600, "hour") if seconds >= 3600 else (seconds, "second")
    within = f"{amount:g} {unit}{'' if amount == 1 else 's'}"
    last = f"; the last attempt: {last_error}" if last_error else "; it was never attempted"
    return f"not delivered within {within} ({GIVE_UP_ENV}={seconds:g}){last}"


def attempt_delivery(
    warehouse: Warehouse, delivery_id: str, settings: WebhookSettings, policy: RetryPolicy, due_only: bool = True
) -> tuple[DeliveryAttempt, str] | None:
    """Claim, send and record one delivery.

    Returns:
        The attempt and the delivery's new status, or None when it could not be claimed
        (delivered, given up, not due, or being sent by someone else).
    """
    delivery = claim(warehouse, delivery_id, claim_seconds(settings), due_only=due_only)
    if delivery is None:
        return None
    attempt = send(delivery, settings)
    return attempt, record_outcome(warehouse, delivery, attempt, policy)


def list_deliveries(
    warehouse: Warehouse, statuses: tuple[str, ...] = (PENDING,), limit: int | None = None, newest_first: bool = False
) -> list[OutboxDelivery]:
    """Deliveries with one of `statuses`, oldest (or newest) first; none when the warehouse has no outbox yet."""
    if not warehouse.path.exists():
        return []
    marks = ", ".join("?" for _ in statuses)
    try:
        with warehouse.connect(write=False) as connection:
            rows = connection.execute(
                f"SELECT {COLUMNS} FROM ingest.webhook_outbox WHERE status IN ({marks}) "
                f"ORDER BY created_at {'DESC' if newest_first else ''}, delivery_id"
                + (f" LIMIT {int(limit)}" if limit else ""),
                list(statuses),
            ).fetchall()
    except duckdb.CatalogException:  # a warehouse from before the outbox: nothing is pending
        return []
    return [OutboxDelivery(*row) for row in rows]


def give_up_overdue(warehouse: Warehouse, policy: RetryPolicy, at: dt.datetime | None = None) -> list[str]:
    """Give up the pending deliveries whose time is up and that nobody is sending; returns their ids."""
    at = at or now()
    overdue = [d for d in list_deliveries(warehouse) if d.claimable(at) and at >= policy.deadline(d.created_at)]
    given_up = []
    for delivery in overdue:
        with warehouse.transaction() as connection:
            row = connection.execute(
                "UPDATE ingest.webhook_outbox SET status = ?, last_error = ? "
                "WHERE delivery_id = ? AND status = ? AND (claimed_until IS NULL OR claimed_until <= ?) "
                "RETURNING delivery_id",
                [GIVEN_UP, _given_up_error(policy, delivery.last_error), delivery.delivery_id, PENDING, at],
            ).fetchone()
        if row:
            logger.warning("webhook delivery %s (upload %s, %s) given up: %s", delivery.delivery_id, delivery.upload_id,
                           delivery.event, _given_up_error(policy, delivery.last_error))  # fmt: skip
            given_up.append(delivery.delivery_id)
    return given_up


@dataclasses.dataclass
class DeliveryRound:
    """What one pass over the outbox did (a sensor tick, `ingest-pipeline webhooks --deliver`)."""

    attempts: list[tuple[DeliveryAttempt, str]] = dataclasses.field(default_factory=list)  # each with its new status
    given_up: list[str] = dataclasses.field(default_factory=list)  # ids given up without an attempt
    not_reached: int = 0  # due deliveries left for the next pass (time budget spent)
    waiting: int = 0  # pending deliveries not due yet, or being sent by another process

    @property
    def delivered(self) -> int:
        return sum(status == DELIVERED for _, status in self.attempts)

    def summary(self) -> str:
        failed = len(self.attempts) - self.delivered
        parts = [f"{self.delivered} delivered", f"{failed} failed"]
        if self.given_up or any(status == GIVEN_UP for _, status in self.attempts):
            parts.append(f"{len(self.given_up) + sum(s == GIVEN_UP for _, s in self.attempts)} given up")
        if self.not_reached:
            parts.append(f"{self.not_reached} left for the next pass")
        parts.append(f"{self.waiting} waiting")
        return "webhook deliveries: " + ", ".join(parts)


def deliver_due(
    warehouse: Warehouse,
    settings: WebhookSettings | None,
    policy: RetryPolicy,
    budget_seconds: float | None = None,
    due_only: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> DeliveryRound:
    """Give up overdue deliveries, then send each due one once, oldest first.

    Args:
        warehouse: Holds the outbox.
        settings: Where to send; None (no `INGEST_WEBHOOK_URL`) only gives up overdue deliveries.
        policy: Retry and give-up times.
        budget_seconds: No delivery is started after this long (a sensor tick has a time limit).
        due_only: False also sends pending deliveries whose next attempt is not due yet.
        clock: Measures the budget.
    """
    started = clock()
    result = DeliveryRound(given_up=give_up_overdue(warehouse, policy))
    at = now()
    pending = list_deliveries(warehouse)
    due = [d for d in pending if d.claimable(at) and (not due_only or d.next_attempt_at <= at)]
    result.waiting = len(pending) - len(due)
    if settings is None:
        result.waiting += len(due)
        return result
    for index, delivery in enumerate(due):
        if budget_seconds is not None and clock() - started >= budget_seconds:
            result.not_reached = len(due) - index
            break
        outcome = attempt_delivery(warehouse, delivery.delivery_id, settings, policy, due_only=due_only)
        if outcome is None:
            result.waiting += 1  # another sender took it in the meantime
            continue
        attempt, status = outcome
        log = logger.info if status == DELIVERED else logger.warning
        log("webhook delivery %s (upload %s, %s), attempt %d: %s", delivery.delivery_id, delivery.upload_id,
            delivery.event, attempt.attempt, status if attempt.succeeded else f"{status}: {attempt.error}")  # fmt: skip
        result.attempts.append(outcome)
    return result
