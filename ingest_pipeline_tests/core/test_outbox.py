"""The webhook outbox: claims, retry schedule, give-up, and delivery to a real HTTP server on 127.0.0.1."""

import datetime as dt
import json
import socket

import pytest

from ingest_pipeline.core.errors import ConfigurationError
from ingest_pipeline.core.outbox import (
    DELIVERED,
    GIVEN_UP,
    PENDING,
    RetryPolicy,
    claim,
    deliver_due,
    enqueue,
    give_up_overdue,
    list_deliveries,
    record_outcome,
    send,
)
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.core.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    WebhookSettings,
    build_payload,
    verify_signature,
)
from ingest_pipeline_tests.core.test_webhook import UPLOAD_ROW, Answer, ScriptedServer

T0 = dt.datetime(2024, 5, 6, 8, 0, 0)
POLICY = RetryPolicy(retry_seconds=30, give_up_seconds=3600)


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "warehouse.duckdb")


@pytest.fixture
def server():
    servers = []

    def start(*answers: Answer) -> ScriptedServer:
        servers.append(ScriptedServer(list(answers)).__enter__())
        return servers[-1]

    yield start
    for started in servers:
        started.__exit__()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/hook"  # nothing listens there once closed: refused


def payload(upload_id: str = "u-123", finished_at: dt.datetime = T0) -> dict:
    return build_payload({**UPLOAD_ROW, "upload_id": upload_id, "finished_at": finished_at}, "http://ui/runs/r1")


def row(warehouse: Warehouse, delivery_id: str):
    (delivery,) = [
        d for d in list_deliveries(warehouse, (PENDING, DELIVERED, GIVEN_UP)) if d.delivery_id == delivery_id
    ]
    return delivery


def test_one_finish_is_one_delivery_and_a_rerun_is_another(warehouse):
    first = enqueue(warehouse, payload(), at=T0)
    assert enqueue(warehouse, payload(), at=T0 + dt.timedelta(seconds=5)) == first  # told twice: one row
    rerun = enqueue(warehouse, payload(finished_at=T0 + dt.timedelta(hours=1)), at=T0)
    assert rerun != first
    assert {d.delivery_id for d in list_deliveries(warehouse)} == {first, rerun}
    stored = row(warehouse, first)
    assert (stored.status, stored.attempts, stored.next_attempt_at, stored.created_at) == (PENDING, 0, T0, T0)
    assert json.loads(stored.payload) == payload()


def test_a_delivery_is_claimed_by_one_sender_until_its_claim_lapses(warehouse):
    delivery_id = enqueue(warehouse, payload(), at=T0)
    mine = claim(warehouse, delivery_id, lease_seconds=70, at=T0)
    assert mine is not None and mine.claim_token
    assert claim(warehouse, delivery_id, lease_seconds=70, at=T0 + dt.timedelta(seconds=69)) is None
    # The first sender was killed mid-POST: once its claim lapses, another takes the delivery over ...
    theirs = claim(warehouse, delivery_id, lease_seconds=70, at=T0 + dt.timedelta(seconds=70))
    assert theirs is not None and theirs.claim_token != mine.claim_token


def test_an_outcome_written_after_losing_the_claim_does_not_undo_the_new_senders(warehouse, server):
    receiver = server(Answer(200), Answer(503))
    settings = WebhookSettings(url=receiver.url)
    delivery_id = enqueue(warehouse, payload(), at=T0)
    slow = claim(warehouse, delivery_id, lease_seconds=70, at=T0)
    fast = claim(warehouse, delivery_id, lease_seconds=70, at=T0 + dt.timedelta(seconds=71))
    assert record_outcome(warehouse, fast, send(fast, settings), POLICY, at=T0 + dt.timedelta(seconds=72)) == DELIVERED
    # The slow sender's late (failed) outcome is logged but leaves the delivery delivered.
    assert record_outcome(warehouse, slow, send(slow, settings), POLICY, at=T0 + dt.timedelta(seconds=73)) == DELIVERED
    assert row(warehouse, delivery_id).status == DELIVERED
    with warehouse.connect(write=False) as connection:
        logged = connection.execute(
            "SELECT status_code FROM ingest.webhook_deliveries ORDER BY attempted_at"
        ).fetchall()
    assert logged == [(200,), (503,)]


def test_failures_are_retried_later_and_later_then_given_up(warehouse):
    settings = WebhookSettings(url=closed_port_url(), timeout_seconds=1)
    delivery_id = enqueue(warehouse, payload(), at=T0)
    at, schedule = T0, []
    while True:
        delivery = claim(warehouse, delivery_id, lease_seconds=61, at=at)
        assert delivery is not None
        status = record_outcome(warehouse, delivery, send(delivery, settings), POLICY, at=at)
        if status != PENDING:
            break
        next_at = row(warehouse, delivery_id).next_attempt_at
        assert claim(warehouse, delivery_id, lease_seconds=61, at=next_at - dt.timedelta(seconds=1)) is None  # not due
        schedule.append((next_at - at).total_seconds())
        at = next_at
    # 30 s, doubling; the last wait is cut short by the give-up time (an hour after the finish).
    assert schedule == [30, 60, 120, 240, 480, 960, 3600 - 1890]
    given_up = row(warehouse, delivery_id)
    assert (given_up.status, given_up.attempts) == (GIVEN_UP, 8)
    assert given_up.last_error.startswith("not delivered within 1 hour (INGEST_WEBHOOK_GIVE_UP_SECONDS=3600)")
    assert "could not reach" in given_up.last_error
    with warehouse.connect(write=False) as connection:
        numbers = connection.execute("SELECT attempt FROM ingest.webhook_deliveries ORDER BY attempt").fetchall()
    assert numbers == [(n,) for n in range(1, 9)]


def test_the_wait_doubles_up_to_an_hour_and_a_retry_after_can_lengthen_it():
    policy = RetryPolicy(retry_seconds=30)
    assert [policy.retry_delay(n) for n in (1, 2, 3, 7, 8, 20)] == [30, 60, 120, 1920, 3600, 3600]
    assert policy.retry_delay(1, retry_after=600) == 600
    assert policy.retry_delay(3, retry_after=5) == 120  # never shortened
    assert policy.retry_delay(1, retry_after=86400) == 3600


def test_deliveries_out_of_time_are_given_up_without_an_attempt(warehouse):
    old = enqueue(warehouse, payload("u-old"), at=T0)
    fresh = enqueue(warehouse, payload("u-new"), at=T0 + dt.timedelta(minutes=30))
    held = enqueue(warehouse, payload("u-held"), at=T0)
    claim(warehouse, held, lease_seconds=600, at=T0 + dt.timedelta(minutes=55))  # being sent right now

    assert give_up_overdue(warehouse, POLICY, at=T0 + dt.timedelta(hours=1)) == [old]
    assert row(warehouse, old).status == GIVEN_UP and row(warehouse, old).attempts == 0
    assert "it was never attempted" in row(warehouse, old).last_error
    assert {row(warehouse, d).status for d in (fresh, held)} == {PENDING}


def test_a_pass_sends_each_due_delivery_once_with_its_stored_body_and_signature(warehouse, server):
    receiver = server(Answer(503), Answer(200), Answer(200))
    first = enqueue(warehouse, payload("u-1"))
    second = enqueue(warehouse, payload("u-2"))
    settings = WebhookSettings(url=receiver.url, secret="k")

    round_one = deliver_due(warehouse, settings, POLICY)
    assert [(a.delivery_id, status) for a, status in round_one.attempts] == [(first, PENDING), (second, DELIVERED)]
    assert deliver_due(warehouse, settings, POLICY).attempts == []  # the failed one is not due for 30 s
    round_three = deliver_due(warehouse, settings, POLICY, due_only=False)  # the operator's `--now`
    assert [(a.delivery_id, a.attempt, status) for a, status in round_three.attempts] == [(first, 2, DELIVERED)]

    assert [r.headers[DELIVERY_HEADER] for r in receiver.received] == [first, second, first]
    assert receiver.received[0].body == receiver.received[2].body == row(warehouse, first).payload.encode()
    assert all(verify_signature(r.body, "k", r.headers[SIGNATURE_HEADER]) for r in receiver.received)
    assert list_deliveries(warehouse) == []


def test_without_a_url_nothing_is_sent_and_the_deliveries_wait(warehouse):
    enqueue(warehouse, payload())
    result = deliver_due(warehouse, None, POLICY)
    assert (result.attempts, result.waiting) == ([], 1)
    assert [d.status for d in list_deliveries(warehouse)] == [PENDING]


def test_a_pass_stops_starting_deliveries_when_its_time_is_up(warehouse, server):
    receiver = server()
    for upload_id in ("u-1", "u-2", "u-3"):
        enqueue(warehouse, payload(upload_id))
    ticks = iter([0.0, 0.0, 0.0, 100.0])
    result = deliver_due(
        warehouse, WebhookSettings(url=receiver.url), POLICY, budget_seconds=30, clock=lambda: next(ticks)
    )
    assert (len(result.attempts), result.not_reached) == (2, 1)
    assert len(list_deliveries(warehouse)) == 1


def test_an_outbox_is_nothing_to_do_on_a_warehouse_without_one(tmp_path):
    assert list_deliveries(Warehouse(tmp_path / "none.duckdb")) == []
    assert not (tmp_path / "none.duckdb").exists()


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf", "nan"])
def test_retry_settings_must_be_seconds_above_zero(value):
    with pytest.raises(ConfigurationError, match=f"INGEST_WEBHOOK_GIVE_UP_SECONDS is '{value}'"):
        RetryPolicy.from_env({"INGEST_WEBHOOK_GIVE_UP_SECONDS": value})
    assert RetryPolicy.from_env({}) == RetryPolicy(retry_seconds=30, give_up_seconds=86400)
    assert RetryPolicy.from_env({"INGEST_WEBHOOK_RETRY_SECONDS": "0.5"}).retry_seconds == 0.5
