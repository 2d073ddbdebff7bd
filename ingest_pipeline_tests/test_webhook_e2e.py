"""The completion webhook end to end: uploads through `ingest-pipeline run` POST to a real server on 127.0.0.1."""

import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance

from ingest_pipeline.cli import main
from ingest_pipeline.core.completion import notify_upload_finished
from ingest_pipeline.core.uploads import register_upload, update_upload
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.core.webhook import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify_signature

SECRET = "s3cret-for-tests"
UI_URL = "http://dagster.example.test:3000/"
ROSTER_HEADER = (
    "employee_id,first_name,last_name,email,phone,state,zip,role,department,hire_date,salary,hours_per_week,"
    "manager_id,status,notes"
)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook receiver on a free loopback port that records every POST and answers 200 (or hangs)."""

    def __init__(self, hang_seconds: float = 0.0):
        self.received: list[Received] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(Received(dict(self.headers.items()), body))
                receiver.arrived.set()
                time.sleep(hang_seconds)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/ingest"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def home(tmp_path, command_environment) -> Path:
    command_environment.setenv("INGEST_UI_URL", UI_URL)
    command_environment.delenv("INGEST_WEBHOOK_SECRET", raising=False)
    return tmp_path / "home"


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def write_roster(path: Path, rows: int, bad: int) -> Path:
    lines = [
        f"E{i:08d},Ann,Lee,u{i}@example.com,+1-555-0100,{'XX' if i > rows - bad else 'CA'},94110,analyst,Finance,"
        f"2020-02-29,51000.50,40,E00000001,active,"
        for i in range(1, rows + 1)
    ]
    path.write_text("\n".join([ROSTER_HEADER, *lines]) + "\n")
    return path


def run(home: Path, upload: Path) -> int:
    return main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home),
                 "--executor", "in_process"])  # fmt: skip


def query(home: Path, sql: str, params=None):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute(sql, params or []).fetchall()


def latest_run_id(home: Path) -> str:
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        return next(r.run_id for r in instance.get_runs() if r.job_name == "ingest_upload")


def test_a_completed_upload_posts_its_signed_summary(home, tmp_path, monkeypatch, receiver):
    monkeypatch.setenv("INGEST_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("INGEST_WEBHOOK_SECRET", SECRET)
    assert run(home, write_roster(tmp_path / "roster.csv", rows=30, bad=1)) == 0

    assert len(receiver.received) == 1  # delivered while the run went, not after it
    post = receiver.received[0]
    assert verify_signature(post.body, SECRET, post.headers[SIGNATURE_HEADER])
    assert not verify_signature(post.body, "another secret", post.headers[SIGNATURE_HEADER])
    assert post.headers[EVENT_HEADER] == "upload.completed"
    body = json.loads(post.body)
    (upload_id,) = query(home, "SELECT upload_id FROM ingest.uploads")[0]
    assert {k: body[k] for k in ("event", "upload_id", "company_id", "form_type", "status", "error")} == {
        "event": "upload.completed", "upload_id": upload_id, "company_id": "acme", "form_type": "employee_roster",
        "status": "completed", "error": None,
    }  # fmt: skip
    assert (body["rows_total"], body["rows_accepted"], body["rows_rejected"]) == (30, 29, 1)
    assert body["run_url"] == f"http://dagster.example.test:3000/runs/{latest_run_id(home)}"
    assert body["finished_at"]
    attempts = query(home, "SELECT attempt, status_code, error, event, delivery_id FROM ingest.webhook_deliveries")
    assert attempts == [(1, 200, None, "upload.completed", post.headers[DELIVERY_HEADER])]


def test_an_upload_stopped_by_its_quality_gate_posts_the_failure(home, tmp_path, monkeypatch, receiver):
    monkeypatch.setenv("INGEST_WEBHOOK_URL", receiver.url)
    assert run(home, write_roster(tmp_path / "roster.csv", rows=40, bad=5)) == 1
    assert len(receiver.received) == 1
    post = receiver.received[0]
    assert SIGNATURE_HEADER not in post.headers  # no secret, no signature
    body = json.loads(post.body)
    assert body["event"] == "upload.failed" and body["status"] == "failed"
    assert body["error"] == "12.5% of rows rejected, above the form type's limit of 5%."
    assert (body["rows_total"], body["rows_rejected"]) == (40, 5)


def test_an_upload_that_fails_a_stage_posts_the_failure(home, tmp_path, monkeypatch, receiver):
    monkeypatch.setenv("INGEST_WEBHOOK_URL", receiver.url)
    upload = tmp_path / "roster.csv"
    upload.write_text("employee_id,first_name\nE00000001,Ann\n")  # most columns missing: the upload fails
    assert run(home, upload) == 1
    bodies = [json.loads(p.body) for p in receiver.received]
    assert [b["event"] for b in bodies] == ["upload.failed"]
    assert "has no column" in bodies[0]["error"]


def test_a_receiver_that_is_down_does_not_fail_or_hold_up_the_run(home, tmp_path, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("INGEST_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")  # nothing listens: refused
    started = time.monotonic()
    assert run(home, write_roster(tmp_path / "roster.csv", rows=30, bad=1)) == 0
    elapsed = time.monotonic() - started
    assert query(home, "SELECT status FROM ingest.uploads") == [("completed",)]
    attempts = query(
        home, "SELECT attempt, status_code, error IS NOT NULL FROM ingest.webhook_deliveries ORDER BY attempt"
    )
    assert attempts == [(1, None, True), (2, None, True), (3, None, True)]  # retried, then given up, all recorded
    assert elapsed < 30  # the retries' backoff (under a second) is all a dead receiver costs


def test_a_receiver_that_hangs_holds_a_stage_at_most_the_wait(tmp_path, monkeypatch):
    hanging = Receiver(hang_seconds=3.0)
    try:
        monkeypatch.setenv("INGEST_WEBHOOK_URL", hanging.url)
        monkeypatch.setenv("INGEST_WEBHOOK_WAIT_SECONDS", "0.3")
        monkeypatch.delenv("INGEST_UI_URL", raising=False)
        warehouse = Warehouse(tmp_path / "warehouse.duckdb")
        register_upload(warehouse, upload_id="u1", company_id="acme", form_type="employee_roster", source="x.csv",
                        sha256=None, size=None, filespec_version=1)  # fmt: skip
        update_upload(warehouse, "u1", status="completed", run_id="r1")
        started = time.monotonic()
        assert notify_upload_finished(warehouse, "u1") is True
        assert time.monotonic() - started < 2.0
        assert hanging.arrived.wait(5)
        assert json.loads(hanging.received[0].body)["run_url"] == "http://127.0.0.1:3000/runs/r1"
    finally:
        for thread in threading.enumerate():
            if thread.name == "ingest-webhook-u1":
                thread.join(timeout=10)  # let the delivery finish rather than outlive the test
        hanging.close()


def test_no_url_no_webhook(tmp_path, monkeypatch):
    monkeypatch.delenv("INGEST_WEBHOOK_URL", raising=False)
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    register_upload(warehouse, upload_id="u1", company_id="acme", form_type="employee_roster", source="x.csv",
                    sha256=None, size=None, filespec_version=1, status="failed", error="broken.")  # fmt: skip
    assert notify_upload_finished(warehouse, "u1") is False
