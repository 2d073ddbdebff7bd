"""The completion webhook, delivered to a real HTTP server on 127.0.0.1."""

import datetime as dt
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.core.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    WebhookSettings,
    build_payload,
    deliver,
    deliver_body,
    encode_body,
    record_attempts,
    redact_url,
    sign,
    verify_signature,
)

FINISHED_AT = dt.datetime(2024, 5, 6, 7, 8, 9)
UPLOAD_ROW = {
    "upload_id": "u-123",
    "company_id": "acme",
    "form_type": "employee_roster",
    "filespec_version": 2,
    "source": "landing/acme/employee_roster/roster.csv",
    "status": "completed",
    "rows_total": 10,
    "rows_accepted": 8,
    "rows_rejected": 2,
    "finished_at": FINISHED_AT,
    "error": None,
}


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    wait_for: threading.Event | None = None  # answer only once the test sets it


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """An HTTP server that answers POSTs with the scripted answers in turn (then 200s) and records them."""

    def __init__(self, answers: list[Answer]):
        self.answers = list(answers)
        self.received: list[ReceivedRequest] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.received.append(ReceivedRequest(self.path, dict(self.headers.items()), body))
                answer = server.answers.pop(0) if server.answers else Answer()
                time.sleep(answer.delay_seconds)
                if answer.wait_for is not None:
                    answer.wait_for.wait(timeout=10)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/ingest"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve() -> Iterator:
    servers: list[ScriptedServer] = []

    def start(*answers: Answer) -> ScriptedServer:
        server = ScriptedServer(list(answers)).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there any more: connection refused


class SleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_payload_describes_the_finished_upload():
    payload = build_payload(UPLOAD_ROW, "http://dagster/runs/r1")
    assert payload == {
        "event": "upload.completed",
        "upload_id": "u-123",
        "company_id": "acme",
        "form_type": "employee_roster",
        "filespec_version": 2,
        "status": "completed",
        "rows_total": 10,
        "rows_accepted": 8,
        "rows_rejected": 2,
        "error": None,
        "finished_at": "2024-05-06T07:08:09",
        "run_url": "http://dagster/runs/r1",
    }
    failed = build_payload({**UPLOAD_ROW, "status": "failed", "error": "the column 'x' is missing."}, None)
    assert failed["event"] == "upload.failed" and failed["error"] == "the column 'x' is missing."


def test_payload_of_an_unfinished_upload_is_a_bug():
    with pytest.raises(ValueError, match="processing"):
        build_payload({**UPLOAD_ROW, "status": "processing"}, None)


def test_body_is_the_json_payload_signed_with_the_secret(serve):
    server = serve(Answer(200))
    payload = build_payload(UPLOAD_ROW, None)

    attempts = deliver(server.url, payload, "s3cret", sleep=SleepRecorder())

    assert [(a.attempt, a.status_code, a.error) for a in attempts] == [(1, 200, None)]
    (request,) = server.received
    assert request.path == "/hooks/ingest"
    assert json.loads(request.body) == payload
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers[EVENT_HEADER] == "upload.completed"
    assert request.headers[DELIVERY_HEADER] == attempts[0].delivery_id
    assert request.headers[SIGNATURE_HEADER] == sign(request.body, "s3cret")
    assert request.headers[SIGNATURE_HEADER].startswith("sha256=")
    assert verify_signature(request.body, "s3cret", request.headers[SIGNATURE_HEADER])
    assert not verify_signature(request.body, "other", request.headers[SIGNATURE_HEADER])


def test_no_signature_without_a_secret(serve):
    server = serve(Answer(204))
    attempts = deliver(server.url, build_payload(UPLOAD_ROW, None), None)
    assert attempts[-1].succeeded
    assert SIGNATURE_HEADER not in server.received[0].headers


def test_server_errors_are_retried_with_growing_backoff(serve):
    server = serve(Answer(503), Answer(503), Answer(200))
    sleep = SleepRecorder()

    attempts = deliver(server.url, build_payload(UPLOAD_ROW, None), "k", backoff_seconds=0.5, sleep=sleep)

    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 503), (2, 503), (3, 200)]
    assert [a.error is None for a in attempts] == [False, False, True]
    assert "503" in attempts[0].error
    assert sleep.delays == [0.5, 1.0]
    # one delivery: its retries carry the same delivery id, so a receiver can drop duplicates
    assert len({r.headers[DELIVERY_HEADER] for r in server.received}) == 1


def test_retry_after_is_honoured_and_capped(serve):
    server = serve(Answer(429, {"Retry-After": "7"}), Answer(503, {"Retry-After": "86400"}), Answer(200))
    sleep = SleepRecorder()

    attempts = deliver(server.url, build_payload(UPLOAD_ROW, None), max_retry_after_seconds=30, sleep=sleep)

    assert [a.status_code for a in attempts] == [429, 503, 200]
    assert sleep.delays == [7.0, 30.0]


def test_client_errors_are_final(serve):
    server = serve(Answer(400), Answer(200))
    sleep = SleepRecorder()

    attempts = deliver(server.url, build_payload(UPLOAD_ROW, None), sleep=sleep)

    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 400)]
    assert "400" in attempts[0].error
    assert sleep.delays == [] and len(server.received) == 1


def test_redirects_are_not_followed(serve):
    server = serve(Answer(302, {"Location": "http://elsewhere.example/hook?token=abc"}))

    attempts = deliver(server.url, build_payload(UPLOAD_ROW, None), sleep=SleepRecorder())

    assert [a.status_code for a in attempts] == [302]
    assert "redirected" in attempts[0].error and "elsewhere.example/hook" in attempts[0].error
    assert "token" not in attempts[0].error
    assert len(server.received) == 1


def test_unreachable_receiver_gives_failed_attempts_and_no_exception(closed_port_url):
    sleep = SleepRecorder()

    attempts = deliver(closed_port_url, build_payload(UPLOAD_ROW, None), max_attempts=3, backoff_seconds=2, sleep=sleep)

    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert all(a.status_code is None and a.error and "could not reach" in a.error for a in attempts)
    assert sleep.delays == [2, 4]


def test_a_slow_receiver_times_out_and_is_retried(serve):
    server = serve(Answer(200, delay_seconds=1.0), Answer(200))

    attempts = deliver(server.url, build_payload(UPLOAD_ROW, None), timeout_seconds=0.2, sleep=SleepRecorder())

    assert [a.status_code for a in attempts] == [None, 200]
    assert "did not answer within 0.2 seconds" in attempts[0].error


def test_a_malformed_url_is_a_final_failure():
    attempts = deliver("ftp//nowhere", build_payload(UPLOAD_ROW, None), sleep=SleepRecorder())
    assert len(attempts) == 1 and attempts[0].status_code is None and attempts[0].error


def test_credentials_in_the_url_are_not_recorded():
    assert redact_url("https://user:pw@hooks.example.com:8443/a/b?token=x#f") == "https://hooks.example.com:8443/a/b"


def test_attempts_are_recorded_in_the_warehouse(tmp_path, serve):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    server = serve(Answer(500), Answer(200))

    attempts = deliver(server.url, build_payload(UPLOAD_ROW, None), "k", backoff_seconds=0, sleep=SleepRecorder())
    record_attempts(warehouse, attempts)

    with warehouse.connect(write=False) as connection:
        rows = connection.execute(
            "SELECT upload_id, attempt, url, status_code, error IS NULL, seconds >= 0, attempted_at, delivery_id, event "
            "FROM ingest.webhook_deliveries ORDER BY attempt"
        ).fetchall()
    assert [row[:6] for row in rows] == [
        ("u-123", 1, server.url, 500, False, True),
        ("u-123", 2, server.url, 200, True, True),
    ]
    assert [row[6] for row in rows] == [a.attempted_at for a in attempts]
    assert {row[7] for row in rows} == {attempts[0].delivery_id}
    assert {row[8] for row in rows} == {"upload.completed"}


def test_recording_nothing_does_not_touch_the_warehouse(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    record_attempts(warehouse, [])
    assert not warehouse.path.exists()


def test_a_later_call_for_the_same_delivery_sends_the_same_bytes_and_goes_on_counting(serve):
    server = serve(Answer(503, {"Retry-After": "12"}), Answer(200))
    body = encode_body(build_payload(UPLOAD_ROW, None))
    common = {"delivery_id": "d-1", "event": "upload.completed", "upload_id": "u-123", "max_attempts": 1}

    (first,) = deliver_body(server.url, body, "k", **common)
    (second,) = deliver_body(server.url, body, "k", first_attempt=2, **common)

    assert (first.attempt, first.status_code, first.retry_after) == (1, 503, 12.0)
    assert (second.attempt, second.status_code, second.error) == (2, 200, None)
    assert [r.body for r in server.received] == [body, body]
    assert {r.headers[DELIVERY_HEADER] for r in server.received} == {"d-1"}
    assert all(verify_signature(body, "k", r.headers[SIGNATURE_HEADER]) for r in server.received)


def test_settings_come_from_the_environment():
    assert WebhookSettings.from_env({}) is None
    assert WebhookSettings.from_env({"INGEST_WEBHOOK_URL": "  "}) is None
    settings = WebhookSettings.from_env({"INGEST_WEBHOOK_URL": "https://h/x", "INGEST_WEBHOOK_SECRET": "k"})
    assert (settings.url, settings.secret) == ("https://h/x", "k")
