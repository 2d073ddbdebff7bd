"""`ingest-pipeline ui --host`, `backfill --launch` run by the real daemon, `cancel` of a run the daemon
launched (terminated through its code server), and `retry` of that run from the command line."""

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from ingest_pipeline.core import faults
from ingest_pipeline.core.uploads import COMPLETED, FAILED, compute_upload_id, hash_stream, register_upload
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline_tests.distributed_services import stop
from ingest_pipeline_tests.test_faults import CLI, cli
from ingest_pipeline_tests.test_operator_cli import roster_file, status_rows

HOST = "127.0.0.2"  # a loopback address other than the default, to see --host reach the webserver


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


@pytest.mark.daemon
def test_a_backfill_launched_for_the_daemon_can_be_cancelled_and_retried(tmp_path):
    home = tmp_path / "home"
    file = roster_file(tmp_path, 2400)
    with open(file, "rb") as stream:  # registered as the sensor registers a landed file
        sha256, size = hash_stream(stream)
    upload_id = compute_upload_id("acme", "employee_roster", sha256)
    register_upload(Warehouse(home / "warehouse.duckdb"), upload_id=upload_id, company_id="acme", form_type="employee_roster",
                    source=str(file), sha256=sha256, size=size, filespec_version=1, status=FAILED, error="earlier")  # fmt: skip

    port = free_port(HOST)
    base = f"http://{HOST}:{port}"
    marker = tmp_path / "marker"  # the backfill's run stops at the scan until it is cancelled
    environment = {**os.environ, "INGEST_HOME": str(home), faults.POINT_ENV: faults.SCAN,
                   faults.MARKER_ENV: str(marker), faults.ACTION_ENV: "pause"}  # fmt: skip
    environment.pop("DAGSTER_HOME", None)
    # Launched before the daemon starts: it finds the backfill at its first look (then every 30 s).
    launched = cli(home, "backfill", "--form-type", "employee_roster", "--launch", env={"INGEST_UI_URL": base})
    assert launched.returncode == 0, launched.stderr
    assert "launched backfill " in launched.stdout and "of 1 upload(s) of form type 'employee_roster'" in launched.stdout
    url = launched.stdout.strip().splitlines()[-1]
    backfill_id = url.rsplit("/", 1)[-1]
    assert url == f"{base}/runs/b/{backfill_id}"  # dagster-webserver's route for a backfill's page
    log = tmp_path / "ui.log"
    with open(log, "wb") as out:
        ui = subprocess.Popen([*CLI, "ui", "--home", str(home), "--host", HOST, "--port", str(port)], env=environment,
                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not answers(f"{base}/server_info"):
            assert ui.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert not answers(f"http://127.0.0.1:{port}/server_info")  # it listens where it was told, only there

        seen = graphql(base, f'{{ partitionBackfillOrError(backfillId: "{backfill_id}") {{ __typename '
                             "... on PartitionBackfill { id partitionNames } } }")  # fmt: skip
        assert seen["partitionBackfillOrError"] == {"__typename": "PartitionBackfill", "id": backfill_id,
                                                    "partitionNames": [upload_id]}  # fmt: skip

        while not (marker.exists() and marker.read_text().strip()):  # the daemon's run is in the scan
            assert ui.poll() is None and time.monotonic() < deadline + 120, log.read_text()[-3000:]
            time.sleep(0.5)
        cancelled = cli(home, "cancel", upload_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert "terminated through its code server; now canceled" in cancelled.stdout, cancelled.stdout
        with DagsterInstance.from_config(str(home / "dagster")) as instance:
            run = instance.get_run_by_id(cancelled.stdout.split()[1].rstrip(":"))
            assert run.status == DagsterRunStatus.CANCELED and run.tags["dagster/backfill"] == backfill_id
    finally:
        stop(ui, seconds=60)
    (upload,) = status_rows(home)
    assert upload["status"] == FAILED and upload["error"].startswith("Cancelled by the operator during scan"), upload
    assert "SupersessionWarning" not in log.read_text()

    retried = cli(home, "retry", upload_id)  # the daemon's run, re-executed from failure on the command line
    assert retried.returncode == 0, retried.stderr
    assert f"re-executing run {run.run_id} of upload {upload_id} from failure" in retried.stdout
    (upload,) = status_rows(home)
    assert upload["status"] == COMPLETED and upload["rows_total"] == 2400
