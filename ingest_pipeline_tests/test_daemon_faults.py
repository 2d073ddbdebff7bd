"""The real Dagster daemon: a sensor-launched run whose process dies is ended by `dead_run_sensor`,
its upload fails with a sentence, and the same file landing again runs to completion."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ingest_pipeline.core import faults
from ingest_pipeline.core.filespec import load_form_type
from ingest_pipeline.core.generate import generate_upload
from ingest_pipeline_tests.distributed_services import stop

PROJECT = Path(__file__).resolve().parents[1]
DAEMON = Path(sys.executable).with_name("dagster-daemon")


def upload_state(home: Path) -> tuple | None:
    """The newest upload's (status, error), read as an outside reader would."""
    if not (home / "warehouse.duckdb").exists():
        return None
    try:
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
            return connection.execute("SELECT status, error FROM ingest.uploads ORDER BY received_at DESC").fetchone()
    except duckdb.Error:
        return None  # a writer has it this moment, or the tables are not there yet


def wait_for(condition, seconds: float, what: str, daemon: subprocess.Popen, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        assert daemon.poll() is None, f"the daemon exited:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    pytest.fail(f"{what} within {seconds:.0f}s; daemon log:\n{log.read_text()[-3000:]}")


@pytest.mark.daemon
def test_a_sensor_run_whose_process_is_killed_ends_failed_and_runs_again_when_it_lands_again(tmp_path):
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copyfile(PROJECT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    marker = tmp_path / "marker"
    environment = {
        **os.environ, "INGEST_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
        "INGEST_SENSOR_INTERVAL_SECONDS": "1", "INGEST_RECONCILE_INTERVAL_SECONDS": "2",
        "INGEST_SENSOR_SETTLE": "min_age", "INGEST_SENSOR_MIN_AGE_SECONDS": "1",
        faults.POINT_ENV: faults.SCAN, faults.MARKER_ENV: str(marker),
    }  # fmt: skip
    spec = load_form_type("employee_roster", PROJECT / "filespecs")
    roster = tmp_path / "roster.csv"
    generate_upload(spec, 500, roster, error_rate=0.01, seed=5, company_id="acme", home=tmp_path / "gen",
                    filespecs_dir=PROJECT / "filespecs")  # fmt: skip
    landing = home / "landing" / "acme" / "employee_roster"
    landing.mkdir(parents=True)
    shutil.copyfile(roster, landing / ".roster.csv.part")
    os.replace(landing / ".roster.csv.part", landing / "roster.csv")

    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen([str(DAEMON), "run", "-w", str(PROJECT / "workspace.yaml")], cwd=home / "dagster",
                                  env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: marker.exists() and marker.read_text().strip(), 240, "the sensor's run did not reach the scan", daemon, log)
        os.kill(int(marker.read_text().split()[0]), signal.SIGKILL)  # the run's process (in process: a small file)

        status, error = wait_for(lambda: (s := upload_state(home)) and s[0] == "failed" and s, 90,
                                 "the dead run's upload was not failed", daemon, log)  # fmt: skip
        assert "stopped unexpectedly" in error and "landing folder again" in error

        shutil.copyfile(roster, landing / ".again.csv.part")  # the client sends the file again
        os.replace(landing / ".again.csv.part", landing / "roster-again.csv")
        wait_for(lambda: (s := upload_state(home)) and s[0] == "completed", 180,
                 "the upload landing again did not complete", daemon, log)  # fmt: skip
    finally:
        stop(daemon)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM results.employee_roster").fetchone()[0] > 0
