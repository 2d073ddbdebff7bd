"""The completion webhook end to end: uploads through `ingest-pipeline run` POST to a real server on 127.0.0.1."""

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import DagsterInstance, build_sensor_context

from ingest_pipeline.cli import main
from ingest_pipeline.core.completion import notify_upload_finished
from ingest_pipeline.core.outbox import enqueue
from ingest_pipeline.core.uploads import get_upload, now, register_upload, update_upload
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.core.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    build_payload,
    verify_signature,
)
from ingest_pipeline.defs.maintenance import webhook_outbox_sensor
from ingest_pipeline.defs.settings import PROJECT_ROOT, IngestSettings
from ingest_pipeline_tests.distributed_services import free_port

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

    def __init__(self, hang_seconds: float = 0.0, port: int = 0):
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

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
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
    """Read the warehouse under its lock, as the pipeline does (a daemon may be writing to it)."""
    with Warehouse(home / "warehouse.duckdb").connect(write=False) as connection:
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


def tick_outbox_sensor(home: Path) -> str:
    """One evaluation of webhook_outbox_sensor, as the daemon makes it; returns its skip reason."""
    resources = {"ingest_settings": IngestSettings(home=str(home))}
    with build_sensor_context(instance=DagsterInstance.ephemeral(), resources=resources) as context:
        return webhook_outbox_sensor(context).skip_message


def outbox(home: Path) -> list[tuple]:
    return query(home, "SELECT delivery_id, status, attempts, next_attempt_at, last_error FROM ingest.webhook_outbox")


def test_a_receiver_down_during_the_run_gets_the_upload_from_the_sensor_once_it_is_up(
    home, tmp_path, monkeypatch, capsys
):
    port = free_port()
    monkeypatch.setenv("INGEST_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
    monkeypatch.setenv("INGEST_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("INGEST_WEBHOOK_RETRY_SECONDS", "0.5")
    started = time.monotonic()
    assert run(home, write_roster(tmp_path / "roster.csv", rows=30, bad=1)) == 0
    elapsed = time.monotonic() - started
    assert query(home, "SELECT status FROM ingest.uploads") == [("completed",)]
    assert elapsed < 30  # one refused connection is all a dead receiver costs the run
    ((delivery_id, status, attempts, next_attempt_at, error),) = outbox(home)
    assert (status, attempts) == ("pending", 1) and "could not reach" in error
    capsys.readouterr()
    assert main(["webhooks", "--home", str(home)]) == 0  # the operator sees it waiting
    (listed,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(delivery_id)]
    assert "upload.completed  pending  1" in listed and "could not reach http://127.0.0.1" in listed

    time.sleep(max(0.0, (outbox(home)[0][3] - now()).total_seconds()) + 0.05)  # the retry is due
    tick_outbox_sensor(home)  # still down: a second failed attempt, rescheduled
    assert outbox(home)[0][1:3] == ("pending", 2)
    receiver = Receiver(port=port)  # the receiver comes back, on its address
    try:
        time.sleep(max(0.0, (outbox(home)[0][3] - now()).total_seconds()) + 0.05)
        assert "1 delivered" in tick_outbox_sensor(home)
        assert tick_outbox_sensor(home) == "webhook deliveries: 0 delivered, 0 failed, 0 waiting"
    finally:
        receiver.close()

    (post,) = receiver.received  # delivered once, with the delivery id and body of the first attempt
    assert post.headers[DELIVERY_HEADER] == delivery_id
    assert verify_signature(post.body, SECRET, post.headers[SIGNATURE_HEADER])
    body = json.loads(post.body)
    assert (body["event"], body["status"], body["rows_total"], body["rows_rejected"]) == ("upload.completed", "completed", 30, 1)
    assert post.body.decode() == query(home, "SELECT payload FROM ingest.webhook_outbox")[0][0]
    assert outbox(home)[0][1:3] == ("delivered", 3)
    logged = query(home, "SELECT attempt, status_code, delivery_id FROM ingest.webhook_deliveries ORDER BY attempt")
    assert logged == [(1, None, delivery_id), (2, None, delivery_id), (3, 200, delivery_id)]


def test_a_delivery_is_given_up_after_the_configured_time(home, tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("INGEST_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
    monkeypatch.setenv("INGEST_WEBHOOK_GIVE_UP_SECONDS", "1")
    assert run(home, write_roster(tmp_path / "roster.csv", rows=30, bad=1)) == 0
    time.sleep(max(0.0, (outbox(home)[0][3] - now()).total_seconds()) + 0.05)  # due at the give-up time
    receiver = Receiver(port=port)  # up again, but too late
    try:
        assert "1 given up" in tick_outbox_sensor(home)
    finally:
        receiver.close()
    assert receiver.received == []
    ((_, status, attempts, _, error),) = outbox(home)
    assert (status, attempts) == ("given_up", 1)
    assert error.startswith("not delivered within 1 second (INGEST_WEBHOOK_GIVE_UP_SECONDS=1); the last attempt: could not reach")


def test_two_senders_at_once_deliver_each_delivery_once(home, tmp_path, monkeypatch):
    slow = Receiver(hang_seconds=0.2)  # slow answers keep both senders busy at the same time
    try:
        warehouse = Warehouse(home / "warehouse.duckdb")
        for index in range(6):
            register_upload(warehouse, upload_id=f"u{index}", company_id="acme", form_type="employee_roster",
                            source="x.csv", sha256=None, size=None, filespec_version=1)  # fmt: skip
            update_upload(warehouse, f"u{index}", status="completed", finished_at=now())
            enqueue(warehouse, build_payload(get_upload(warehouse, f"u{index}"), None))
        environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "INGEST_WEBHOOK_URL": slow.url}
        command = [sys.executable, "-m", "ingest_pipeline.cli", "webhooks", "--deliver", "--home", str(home)]
        senders = [subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [sender.communicate(timeout=120)[0] for sender in senders]
    finally:
        slow.close()
    assert [sender.returncode for sender in senders] == [0, 0]
    delivered = [post.headers[DELIVERY_HEADER] for post in slow.received]
    assert sorted(delivered) == sorted(row[0] for row in outbox(home))  # each one, once
    assert {row[1:3] for row in outbox(home)} == {("delivered", 1)}
    assert sum(int(re.search(r"(\d+) delivered", out).group(1)) for out in outputs) == 6


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


@pytest.mark.slow  # ~20 s: the daemon loads the code location; the sensor's logic is tested above without it
def test_the_dagster_daemon_delivers_what_a_finished_command_could_not(home, tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("INGEST_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
    monkeypatch.setenv("INGEST_WEBHOOK_RETRY_SECONDS", "1")
    assert run(home, write_roster(tmp_path / "roster.csv", rows=30, bad=1)) == 0  # the receiver is down: not sent
    ((delivery_id, status, *_),) = outbox(home)
    assert status == "pending"

    receiver = Receiver(port=port)
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "INGEST_WEBHOOK_SENSOR_INTERVAL_SECONDS": "1"}
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        env=environment, cwd=home / "dagster", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert receiver.arrived.wait(120), "the daemon's webhook_outbox_sensor did not deliver within 120 s"
        deadline = time.monotonic() + 30
        while outbox(home)[0][1] != "delivered" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        receiver.close()
    assert [post.headers[DELIVERY_HEADER] for post in receiver.received] == [delivery_id]
    assert outbox(home)[0][1] == "delivered"

