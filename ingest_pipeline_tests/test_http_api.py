"""The HTTP API against the real thing: `ingest-pipeline serve` in its own process on loopback, a
real HTTP client (http.client, raw sockets), and the real Dagster daemon whose sensor picks up
what the API lands."""

import csv
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest

from ingest_pipeline.core.storage import LocalLandingStorage
from ingest_pipeline.core.uploads import compute_upload_id
from ingest_pipeline_tests.distributed_services import free_port
from ingest_pipeline_tests.test_daemon_faults import wait_for

PROJECT = Path(__file__).resolve().parents[1]
DAEMON = Path(sys.executable).with_name("dagster-daemon")
MAX_UPLOAD_BYTES = 32 * 1024 * 1024  # the test server's limit


def command(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ingest_pipeline.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


class Server:
    """A running `ingest-pipeline serve`."""

    def __init__(self, home: Path, log: Path, extra_env: dict | None = None):
        self.home, self.log, self.port = home, log, free_port()
        environment = {**os.environ, "INGEST_API_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES), **(extra_env or {})}
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ingest_pipeline.cli", "serve", "--home", str(home), "--port", str(self.port)],
                env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited:\n{log.read_text()}"
            try:
                if self.request("GET", "/openapi.json")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"the server did not answer within 60 s:\n{log.read_text()}")

    def request(self, method: str, path: str, key: str | None = None, body=None, headers: dict | None = None):
        """(status, headers, body bytes)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            sent = dict(headers or {})
            if key is not None:
                sent["Authorization"] = f"Bearer {key}"
            connection.request(method, path, body=body, headers=sent, encode_chunked=body is not None and not isinstance(body, bytes))
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, key: str | None = None, body=None, headers=None) -> tuple[int, dict]:
        status, got, data = self.request(method, path, key, body, headers)
        return status, json.loads(data)

    def peak_rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def create_key(home: Path, company: str) -> str:
    result = command("api-key", "create", "--company", company, "--home", str(home))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A server over a fresh home, with a key for acme and one for globex."""
    root = tmp_path_factory.mktemp("http-api")
    home = root / "home"
    keys = {"acme": create_key(home, "acme"), "globex": create_key(home, "globex")}
    server = Server(home, root / "server.log")
    server.keys = keys
    server.root = root
    yield server
    server.stop()


def roster(path: Path, rows: int, seed: int, error_rate: float = 0.01) -> Path:
    result = command("generate", "--form-type", "employee_roster", "--rows", str(rows), "--error-rate", str(error_rate),
                     "--seed", str(seed), "--out", str(path), "--home", str(path.parent / "gen"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return path


def landed(home: Path) -> list[str]:
    """What the sensor would see in the landing folder."""
    return [blob.path for blob in LocalLandingStorage(home / "landing").list_blobs()]


def temporary_files(home: Path) -> list[str]:
    return [name for _, _, names in os.walk(home / "landing") for name in names if name.endswith(".part")]


def upload(api: Server, company: str, body, form_type: str = "employee_roster", filename: str = "roster.csv"):
    return api.json("POST", f"/v1/uploads?form_type={form_type}&filename={filename}", api.keys[company], body)


def test_problems_are_one_sentence_documents(api):
    before = landed(api.home)
    status, problem = upload(api, "acme", b"a,b\n", form_type="nope")
    assert status == 400 and problem["type"] == "/problems/unknown-form-type" and "employee_roster" in problem["detail"]
    assert set(problem) == {"type", "title", "status", "detail"} and problem["status"] == 400
    status, problem = upload(api, "acme", b"")
    assert (status, problem["type"]) == (400, "/problems/empty-upload")
    # Too large by its Content-Length: refused before the body is sent (Expect: 100-continue).
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as raw:
        raw.sendall(f"POST /v1/uploads?form_type=employee_roster HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
                    f"Authorization: Bearer {api.keys['acme']}\r\nContent-Length: {MAX_UPLOAD_BYTES + 1}\r\n\r\n".encode())  # fmt: skip
        answer = b""
        while chunk := raw.recv(65536):  # the server closes the connection after its answer
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413 ") and str(MAX_UPLOAD_BYTES) in answer and "100 Continue" not in answer
    # Chunked, with no length said: counted as it comes, refused once over the limit. The server
    # then closes the connection, so a client still sending may see a reset instead of the answer.
    try:
        status, problem = upload(api, "acme", iter([b"x" * 1024 * 1024] * 34))
        assert status == 413 and problem["type"] == "/problems/upload-too-large"
    except (ConnectionResetError, BrokenPipeError):
        pass
    status, headers, body = api.request("GET", "/v1/uploads")
    assert status == 401 and headers["content-type"] == "application/problem+json" and "www-authenticate" in headers
    assert api.json("GET", "/v1/uploads", "ik_0000_not-a-key")[0] == 401
    status, problem = api.json("GET", "/v1/uploads?status=lost", api.keys["acme"])
    assert status == 400 and "lost" in problem["detail"]
    assert api.json("GET", "/v1/uploads?cursor=abc", api.keys["acme"])[0] == 400
    assert api.request("GET", "/docs")[0] == 200
    assert landed(api.home) == before, "nothing refused was landed"
    assert not temporary_files(api.home), "no temporary file was left"


def test_a_client_that_disconnects_mid_upload_leaves_nothing_the_sensor_would_ingest(api):
    before = landed(api.home)
    with socket.create_connection(("127.0.0.1", api.port)) as raw:
        raw.sendall(f"POST /v1/uploads?form_type=employee_roster&filename=cut.csv HTTP/1.1\r\nHost: test\r\n"
                    f"Authorization: Bearer {api.keys['acme']}\r\nContent-Length: 30000000\r\n\r\n".encode())  # fmt: skip
        raw.sendall(b"employee_id,first_name\n" + b"E1,x\n" * 2_400_000)  # 12 MB of 30: past the first 8 MiB block
        deadline = time.monotonic() + 10
        while not temporary_files(api.home) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert temporary_files(api.home), "the body was being written to a temporary file"
    deadline = time.monotonic() + 10
    while temporary_files(api.home) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not temporary_files(api.home), "the temporary file was removed"
    assert landed(api.home) == before


def test_the_same_bytes_twice_are_one_upload_and_one_file_and_another_company_cannot_see_it(api, tmp_path):
    body = roster(tmp_path / "small.csv", rows=20, seed=11).read_bytes()
    status, first = upload(api, "acme", body)
    assert status == 202 and first["status"] == "received" and first["status_url"] == f"/v1/uploads/{first['upload_id']}"
    assert first["upload_id"] == compute_upload_id("acme", "employee_roster", hashlib.sha256(body).hexdigest())
    status, again = upload(api, "acme", body, filename="renamed.csv")
    assert status == 200 and again["upload_id"] == first["upload_id"] and again["duplicate"]
    assert len([p for p in landed(api.home) if p.startswith("acme/")]) == 1

    status, seen = api.json("GET", first["status_url"], api.keys["acme"])
    assert status == 200 and seen["upload_id"] == first["upload_id"] and seen["status"] in ("received", "queued", "processing", "completed")
    status, theirs = api.json("GET", first["status_url"], api.keys["globex"])
    status_unknown, unknown = api.json("GET", "/v1/uploads/0123456789abcdef", api.keys["globex"])
    assert status == status_unknown == 404
    assert theirs["detail"].replace(first["upload_id"], "ID") == unknown["detail"].replace("0123456789abcdef", "ID")
    for sub in ("messages", "rejects", "summary", "report.xlsx"):
        assert api.request("GET", f"{first['status_url']}/{sub}", api.keys["globex"])[0] == 404
    assert api.json("GET", "/v1/uploads", api.keys["globex"])[1]["uploads"] == []
    assert first["upload_id"] in [u["upload_id"] for u in api.json("GET", "/v1/uploads", api.keys["acme"])[1]["uploads"]]


@pytest.mark.daemon
def test_an_upload_over_http_runs_through_the_sensor_to_completed_with_its_messages_and_report(api, tmp_path):
    file = roster(tmp_path / "roster.csv", rows=3000, seed=7, error_rate=0.02)
    answer_key = csv.DictReader(io.StringIO((tmp_path / "roster.csv.expected.csv").read_text()))
    expected = sorted((row["row_number"], row["field"], row["rule"]) for row in answer_key)
    key = api.keys["acme"]
    with open(file, "rb") as body:  # streamed from the file, chunked
        status, created = api.json("POST", "/v1/uploads?form_type=employee_roster&filename=roster.csv", key, iter(lambda: body.read(65536), b""))
    assert status == 202
    url = created["status_url"]

    (api.home / "dagster").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT / "dagster.yaml", api.home / "dagster" / "dagster.yaml")
    environment = {**os.environ, "INGEST_HOME": str(api.home), "DAGSTER_HOME": str(api.home / "dagster"),
                   "INGEST_SENSOR_INTERVAL_SECONDS": "1", "INGEST_SENSOR_SETTLE": "min_age",
                   "INGEST_SENSOR_MIN_AGE_SECONDS": "1"}  # fmt: skip
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen([str(DAEMON), "run", "-w", str(PROJECT / "workspace.yaml")], cwd=api.home / "dagster",
                                  env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    seen_states = set()

    def finished():
        status, view = api.json("GET", url, key)
        assert status == 200, view
        seen_states.add(view["status"])
        return view if view["status"] in ("completed", "failed") else None

    try:
        view = wait_for(finished, 180, "the upload did not finish", daemon, log)
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait(timeout=60)
    assert view["status"] == "completed", view["error"]
    assert view["rows_total"] == 3000 and view["rows_accepted"] + view["rows_rejected"] == 3000
    assert view["progress"]["chunks_done"] == view["progress"]["chunks_total"] == 1 and view["progress"]["fraction"] == 1
    (chunk,) = view["chunks"]
    assert chunk | {"started_at": None, "finished_at": None} == {
        "chunk": 1, "first_row": 1, "rows": 3000, "status": "completed", "rejected_rows": view["rows_rejected"],
        "started_at": None, "finished_at": None, "error": None}  # fmt: skip
    assert "received" in seen_states or "queued" in seen_states

    # Every message, paged by row, is the answer key's; and the CSV says the same.
    got, cursor = [], None
    while True:
        status, page = api.json("GET", f"{url}/messages?limit=50" + (f"&cursor={cursor}" if cursor else ""), key)
        assert status == 200
        got += page["messages"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted((str(m["row_number"]), m["field"] or "", m["rule"]) for m in got) == expected
    status, headers, data = api.request("GET", f"{url}/messages", key, headers={"Accept": "text/csv"})
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(data.decode())))) == len(got)
    status, only = api.json("GET", f"{url}/messages?rule=required&severity=error", key)
    assert only["messages"] and all(m["rule"] == "required" for m in only["messages"])
    status, rejects = api.json("GET", f"{url}/rejects?limit=10000", key)
    assert len(rejects["rejects"]) == view["rows_rejected"] and rejects["next_cursor"] is None
    status, summary = api.json("GET", f"{url}/summary", key)
    assert "employee_id" in [c["field"] for c in summary["columns"]]

    status, headers, workbook = api.request("GET", f"{url}/report.xlsx", key)
    assert status == 200 and headers["content-type"].startswith("application/vnd.openxmlformats")
    sheets = openpyxl.load_workbook(io.BytesIO(workbook), read_only=True).sheetnames
    assert len(sheets) >= 3

    status, listing = api.json("GET", "/v1/uploads?form_type=employee_roster&status=completed&limit=1", key)
    assert [u["upload_id"] for u in listing["uploads"]] == [created["upload_id"]]
    assert api.json("GET", "/v1/uploads?since=2999-01-01", key)[1]["uploads"] == []
    assert api.json("GET", url, api.keys["globex"])[0] == 404


@pytest.mark.slow
def test_a_multi_gigabyte_upload_streams_through_in_bounded_memory(tmp_path):
    """Records the server's peak RSS (VmHWM) while a 3 GiB body streams in; the file lands whole."""
    home = tmp_path / "home"
    key = create_key(home, "acme")
    server = Server(home, tmp_path / "server.log", {"INGEST_API_MAX_UPLOAD_BYTES": str(8 * 1024**3)})
    try:
        baseline = server.peak_rss_bytes()
        piece = b"E0000001,Ann,Lee\n" * (1024 * 1024 // 17)
        pieces = 3 * 1024**3 // len(piece)
        digest = hashlib.sha256()
        for _ in range(pieces):
            digest.update(piece)
        started = time.monotonic()
        status, created = server.json("POST", "/v1/uploads?form_type=employee_roster", key, iter([piece] * pieces))
        seconds = time.monotonic() - started
        peak = server.peak_rss_bytes()
    finally:
        server.stop()
    size = len(piece) * pieces
    print(f"\n{size / 2**30:.2f} GiB in {seconds:.1f} s ({size / 2**20 / seconds:.0f} MiB/s); server peak RSS "
          f"{peak / 2**20:.0f} MiB (at start {baseline / 2**20:.0f} MiB)")  # fmt: skip
    assert status == 202 and created["bytes"] == size and created["sha256"] == digest.hexdigest()
    (path,) = landed(home)
    assert (home / "landing" / path).stat().st_size == size
    assert peak - baseline < 200 * 2**20


@pytest.mark.azurite
def test_with_azure_storage_an_upload_is_one_committed_block_blob_with_its_metadata(azurite, tmp_path):
    container = azurite.container_client()
    home = tmp_path / "home"
    key = create_key(home, "acme")
    server = Server(home, tmp_path / "server.log", {
        "INGEST_STORAGE": "azure", "AZURE_STORAGE_ACCOUNT_URL": azurite.account_url, "AZURE_STORAGE_KEY": azurite.account_key,
        "INGEST_AZURE_CONTAINER": container.container_name, "INGEST_AZURE_PREFIX": "incoming"})  # fmt: skip
    try:
        body = roster(tmp_path / "small.csv", rows=20, seed=3).read_bytes()
        status, created = server.json("POST", "/v1/uploads?form_type=employee_roster&filename=r.csv", key, body)
        assert status == 202, created
        assert server.json("POST", "/v1/uploads?form_type=employee_roster", key, body)[1]["duplicate"]
    finally:
        server.stop()
    (blob,) = list(container.list_blobs(include=["metadata"]))
    assert blob.name.startswith("incoming/acme/employee_roster/") and blob.name.endswith("-r.csv")
    assert blob.metadata == {"company_id": "acme", "form_type": "employee_roster", "upload_id": created["upload_id"]}
    assert container.download_blob(blob.name).readall() == body
