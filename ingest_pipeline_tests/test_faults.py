"""Fault injection through the real command line: kill -9 at every stage, dead runs, outside readers,
the same upload twice at once. After each fault the home must be as good as new: the upload ends
failed with a sentence, nothing waits on the dead run, and a re-run gives the tables of a clean run.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import psutil
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, build_sensor_context

from ingest_pipeline.core import faults
from ingest_pipeline.core.filespec import load_form_type
from ingest_pipeline.core.generate import generate_upload

PROJECT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "ingest_pipeline.cli"]
ROWS, CHUNK_ROWS = 2400, 800  # three chunks, so that scan steps run side by side
MARKER_WAIT_SECONDS = 180


def cli(home: Path, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "INGEST_HOME": str(home), "INGEST_PROGRESS": "0", **(env or {})}
    environment.pop("DAGSTER_HOME", None)
    return subprocess.run([*CLI, *args, "--home", str(home)], capture_output=True, text=True, env=environment,
                          timeout=timeout, check=False)  # fmt: skip


def run_args(file: Path, executor: str, company: str = "acme") -> list[str]:
    return ["run", str(file), "--company", company, "--form-type", "employee_roster", "--chunk-rows", str(CHUNK_ROWS),
            "--executor", executor]  # fmt: skip


def start_paused(home: Path, file: Path, point: str, executor: str, action: str = "pause") -> tuple[subprocess.Popen, int]:
    """Start `run` with a fault point armed; returns the process and the pid that reached the point."""
    marker = home.parent / f"marker-{point}"
    marker.unlink(missing_ok=True)
    environment = {**os.environ, "INGEST_HOME": str(home), "INGEST_PROGRESS": "0", faults.POINT_ENV: point,
                   faults.MARKER_ENV: str(marker), faults.ACTION_ENV: action}  # fmt: skip
    environment.pop("DAGSTER_HOME", None)
    process = subprocess.Popen([*CLI, *run_args(file, executor), "--home", str(home)], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + MARKER_WAIT_SECONDS
    while not (marker.exists() and marker.read_text().strip()):
        if process.poll() is not None:
            pytest.fail(f"the run ended before reaching {point}: {process.stderr.read()}")
        assert time.monotonic() < deadline, f"{point} was not reached"
        time.sleep(0.2)
    return process, int(marker.read_text().split()[0])


def kill_command(process: subprocess.Popen) -> None:
    """kill -9 of the command's own process only, as an OOM killer would: its step processes live on."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stdout.close()
    process.stderr.close()


def contract_tables(home: Path) -> dict[str, list[tuple]]:
    """Every table's rows, without what differs from run to run (timings, run ids)."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        def rows(sql: str) -> list[tuple]:
            return sorted(connection.execute(sql).fetchall(), key=repr)

        return {
            "uploads": rows("SELECT upload_id, company_id, form_type, filespec_version, sha256, bytes, status, rows_total, "
                            "rows_accepted, rows_rejected, error, stage, chunks_total FROM ingest.uploads"),
            "messages": rows("SELECT * FROM ingest.messages"),
            "rejects": rows("SELECT * FROM ingest.rejects"),
            "column_summary": rows("SELECT * FROM ingest.column_summary"),
            "stage_metrics": rows("SELECT upload_id, stage, chunk, rows FROM ingest.stage_metrics"),
            "results": rows("SELECT * FROM results.employee_roster"),
        }  # fmt: skip


def upload_row(home: Path) -> tuple:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute("SELECT upload_id, status, error FROM ingest.uploads ORDER BY received_at DESC").fetchone()


@pytest.fixture(scope="module")
def roster(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("roster")
    spec = load_form_type("employee_roster", PROJECT / "filespecs")
    out = folder / "roster.csv"
    generate_upload(spec, ROWS, out, error_rate=0.02, seed=11, company_id="acme", home=folder / "home",
                    filespecs_dir=PROJECT / "filespecs")  # fmt: skip
    return out


@pytest.fixture(scope="module")
def other_roster(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("other")
    spec = load_form_type("employee_roster", PROJECT / "filespecs")
    out = folder / "other.csv"
    generate_upload(spec, 300, out, error_rate=0.0, seed=12, company_id="acme", home=folder / "home",
                    filespecs_dir=PROJECT / "filespecs")  # fmt: skip
    return out


@pytest.fixture(scope="module")
def clean_tables(roster, tmp_path_factory) -> dict[str, list[tuple]]:
    home = tmp_path_factory.mktemp("clean") / "home"
    done = cli(home, *run_args(roster, "in_process"))
    assert done.returncode == 0, done.stderr
    return contract_tables(home)


def assert_gone(pid: int) -> None:
    try:
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"process {pid} of the dead run is still alive"
    except psutil.NoSuchProcess:
        pass


@pytest.mark.parametrize(
    "point, executor",
    [
        (faults.PREPARE, "in_process"),
        (faults.SCAN, "multiprocess"),
        (faults.COLUMNS, "in_process"),
        (faults.MERGE, "multiprocess"),
        (faults.PUBLISH, "multiprocess"),
    ],
)
def test_kill_9_at_each_stage_then_rerun_gives_the_clean_tables(point, executor, roster, other_roster, clean_tables, tmp_path):
    home = tmp_path / "home"
    process, paused_pid = start_paused(home, roster, point, executor)
    kill_command(process)

    # The next command finds the dead run: its orphaned step is killed, the run ended, the upload failed.
    status = cli(home, "status")
    assert status.returncode == 0, status.stderr
    assert "1 dead run(s) ended" in status.stderr
    upload_id, state, error = upload_row(home)
    assert state == "failed"
    assert "stopped unexpectedly" in error and "ingest-pipeline run" in error
    assert_gone(paused_pid)
    instance_runs(home, lambda runs: [r.dagster_run.status for r in runs] == [DagsterRunStatus.FAILURE])

    if point in (faults.MERGE, faults.PUBLISH):
        # Nothing else waits on the dead run: the `duckdb_writer` slot it held was freed.
        other = cli(home, *run_args(other_roster, executor))
        assert other.returncode == 0, other.stderr
    # The upload runs again to exactly the tables of a clean run.
    again = cli(home, *run_args(roster, "in_process"))
    assert again.returncode == 0, again.stderr
    tables = contract_tables(home)
    assert {name: [row for row in rows if row[0] == upload_id] for name, rows in tables.items()} == clean_tables


def instance_runs(home: Path, check) -> None:
    """Assert `check` of the home's ingest runs (newest first)."""
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_run_records(RunsFilter(job_name="ingest_upload"))
        assert check(runs), [(r.dagster_run.run_id, r.dagster_run.status) for r in runs]


def test_dead_run_sensor_ends_a_dead_run_and_fails_its_upload(roster, tmp_path):
    """What the daemon does for runs nobody looks at: the sensor alone reconciles them."""
    from ingest_pipeline.defs.run_health import dead_run_sensor
    from ingest_pipeline.defs.settings import IngestSettings

    home = tmp_path / "home"
    process, paused_pid = start_paused(home, roster, faults.SCAN, "multiprocess")
    kill_command(process)
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert [r.dagster_run.status for r in instance.get_run_records()] == [DagsterRunStatus.STARTED]
        context = build_sensor_context(instance=instance, resources={"ingest_settings": IngestSettings(home=str(home))})
        result = dead_run_sensor(context)
        assert "1 dead run(s) ended" in str(result.skip_message)
        assert [r.dagster_run.status for r in instance.get_run_records()] == [DagsterRunStatus.FAILURE]
        assert not instance.event_log_storage.get_concurrency_run_ids()
    assert upload_row(home)[1] == "failed"
    assert_gone(paused_pid)
    # Nothing left to do on the next tick.
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        context = build_sensor_context(instance=instance, resources={"ingest_settings": IngestSettings(home=str(home))})
        assert "0 dead run(s) ended" in str(dead_run_sensor(context).skip_message)


def test_a_killed_step_process_fails_the_upload_with_a_sentence_and_a_rerun_completes(roster, clean_tables, tmp_path):
    """An OOM kill of one chunk's step: the run fails, the command says so and exits 1, nothing is stuck."""
    home = tmp_path / "home"
    process, _ = start_paused(home, roster, faults.SCAN, "multiprocess", action="kill")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    upload_id, state, error = upload_row(home)
    assert state == "failed" and error
    again = cli(home, *run_args(roster, "multiprocess"))
    assert again.returncode == 0, again.stderr
    assert contract_tables(home) == clean_tables


def test_the_same_upload_twice_at_once_gives_one_correct_set_of_tables(roster, clean_tables, tmp_path):
    home = tmp_path / "home"
    environment = {**os.environ, "INGEST_HOME": str(home), "INGEST_PROGRESS": "0"}
    environment.pop("DAGSTER_HOME", None)
    both = [subprocess.Popen([*CLI, *run_args(roster, "multiprocess"), "--home", str(home)], env=environment,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    outcomes = [process.communicate(timeout=300) for process in both]
    assert [process.returncode for process in both] == [0, 0], outcomes
    assert any("ingested by the other process" in out or "waiting for it" in err for out, err in outcomes), outcomes
    assert contract_tables(home) == clean_tables


def test_an_outside_reader_polling_the_warehouse_never_fails_a_run(tmp_path):
    """A reader as the README shows it (`duckdb.connect(..., read_only=True)`), polling all the time
    while 10 uploads run two at a time: every run completes; writers wait for the reader's moments."""
    home = tmp_path / "home"
    spec = load_form_type("employee_roster", PROJECT / "filespecs")
    files = []
    for seed in range(10):
        out = tmp_path / f"upload-{seed}.csv"
        generate_upload(spec, 200, out, error_rate=0.01, seed=100 + seed, company_id="acme", home=tmp_path / "gen",
                        filespecs_dir=PROJECT / "filespecs")  # fmt: skip
        files.append(out)
    assert cli(home, *run_args(files[0], "in_process")).returncode == 0  # the warehouse exists for the reader
    stop, reads, refusals = threading.Event(), [0], [0]

    def read_all_the_time() -> None:
        while not stop.is_set():
            try:
                with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
                    connection.execute("SELECT status, count(*) FROM ingest.uploads GROUP BY ALL").fetchall()
                    time.sleep(0.05)  # holds the file a moment, as a dashboard's query would
                reads[0] += 1
            except duckdb.IOException:
                refusals[0] += 1  # a writer has it: the reader's turn comes next time
            time.sleep(0.05)

    reader = threading.Thread(target=read_all_the_time, daemon=True)
    reader.start()
    try:
        results: list[subprocess.CompletedProcess] = []

        def run_some(batch: list[Path]) -> None:
            results.extend(cli(home, *run_args(file, "in_process")) for file in batch)

        workers = [threading.Thread(target=run_some, args=(files[i::2],)) for i in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        stop.set()
        reader.join()
    assert [r.returncode for r in results] == [0] * 10, [r.stderr[-500:] for r in results if r.returncode]
    assert reads[0] > 20
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM ingest.uploads WHERE status = 'completed'").fetchone()[0] == 10
