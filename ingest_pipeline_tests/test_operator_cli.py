"""The operator's commands through the real command line and Dagster instance: `status` (JSON,
filters, no Dagster import), `retry`, `cancel` of a long run in another process, `partitions`,
`backfill --dry-run`, and run logs without ANSI codes."""

import datetime as dt
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from ingest_pipeline.cli import main
from ingest_pipeline.core import faults
from ingest_pipeline.core.filespec import load_form_type
from ingest_pipeline.core.generate import generate_upload
from ingest_pipeline.core.uploads import COMPLETED, FAILED, get_upload, register_upload, update_upload
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline_tests.test_faults import CLI, cli

PROJECT = Path(__file__).resolve().parents[1]
ROSTER = load_form_type("employee_roster", PROJECT / "filespecs")
ROWS_BIG = 30_000


def roster_file(tmp_path: Path, rows: int, name: str = "roster.csv", seed: int = 3, error_rate: float = 0.01) -> Path:
    out = tmp_path / name
    generate_upload(ROSTER, rows, out, error_rate=error_rate, seed=seed, company_id="acme", home=tmp_path / "gen",
                    filespecs_dir=PROJECT / "filespecs")  # fmt: skip
    return out


def run(home: Path, file: Path, *extra: str, company: str = "acme") -> subprocess.CompletedProcess:
    return cli(home, "run", str(file), "--company", company, "--form-type", "employee_roster", *extra)


def upload_of(home: Path, upload_id: str) -> dict:
    return get_upload(Warehouse(home / "warehouse.duckdb"), upload_id)


def in_process(capsys, home: Path, *args: str) -> tuple[int, str, str]:
    """The command in this process (quick: no interpreter to start); (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([*args, "--home", str(home)])
    out, err = capsys.readouterr()
    return code, out, err


def status_json(capsys, home: Path, *args: str) -> list | dict:
    code, out, err = in_process(capsys, home, "status", "--json", *args)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def finished_home(tmp_path_factory) -> tuple[Path, str]:
    """A home with one completed roster upload (run by the command line) and three registered beside it."""
    tmp = tmp_path_factory.mktemp("operator")
    home = tmp / "home"
    done = run(home, roster_file(tmp, 300), "--executor", "in_process", "--chunk-rows", "120")
    assert done.returncode == 0, done.stderr
    upload_id = done.stdout.split()[1].rstrip(":")
    warehouse = Warehouse(home / "warehouse.duckdb")
    for other, company, form_type, status in [("a1", "globex", "employee_roster", FAILED),
                                              ("a2", "globex", "payroll", COMPLETED),
                                              ("a3", "initech", "payroll", FAILED)]:  # fmt: skip
        register_upload(warehouse, upload_id=other, company_id=company, form_type=form_type, source=f"/nowhere/{other}",
                        sha256="0" * 64, size=10, filespec_version=1, status=status, error="x" if status == FAILED else None)  # fmt: skip
    update_upload(warehouse, "a3", received_at=dt.datetime(2020, 1, 1))
    return home, upload_id


def test_status_of_one_upload_lists_its_chunks(finished_home, capsys, command_environment):
    home, upload_id = finished_home
    shown = status_json(capsys, home, upload_id)
    chunks = shown["chunks"]
    assert [(c["chunk"], c["first_row"], c["rows"], c["status"]) for c in chunks] == [
        (1, 1, 120, COMPLETED), (2, 121, 120, COMPLETED), (3, 241, 60, COMPLETED)]  # fmt: skip
    # A chunk's rejected rows include those the merge rejects (unique across chunks).
    assert sum(c["rejected_rows"] for c in chunks) == shown["rows_rejected"]
    table = in_process(capsys, home, "status", upload_id)[1].splitlines()
    at = table.index(next(line for line in table if line.startswith("chunk")))
    assert table[at].split() == ["chunk", "first", "row", "rows", "status", "rejected"]
    assert [line.split()[:4] for line in table[at + 1 :]] == [["1", "1", "120", "completed"], ["2", "121", "120", "completed"],
                                                              ["3", "241", "60", "completed"]]  # fmt: skip


def test_status_as_json_with_filters_and_without_dagster(finished_home, capsys, command_environment):
    home, upload_id = finished_home
    everything = status_json(capsys, home)
    assert {u["upload_id"] for u in everything} == {upload_id, "a1", "a2", "a3"}
    ours = next(u for u in everything if u["upload_id"] == upload_id)
    assert ours["status"] == COMPLETED and ours["rows_total"] == 300 and ours["rows_done"] == 300
    assert ours["rows_per_second"] > 0 and ours["eta_seconds"] is None
    assert ours["rows_accepted"] + ours["rows_rejected"] == ours["rows_total"]
    assert isinstance(ours["received_at"], str) and ours["chunks_done"] == ours["chunks_total"]

    assert {u["upload_id"] for u in status_json(capsys, home, "--company", "globex")} == {"a1", "a2"}
    assert {u["upload_id"] for u in status_json(capsys, home, "--form-type", "payroll")} == {"a2", "a3"}
    assert {u["upload_id"] for u in status_json(capsys, home, "--status", "failed", "--company", "globex")} == {"a1"}
    assert {u["upload_id"] for u in status_json(capsys, home, "--since", "2021-06-01")} == {upload_id, "a1", "a2"}
    assert status_json(capsys, home, "--company", "nobody") == []
    assert status_json(capsys, home, upload_id)["rows_done"] == 300

    table = in_process(capsys, home, "status")[1].splitlines()
    header = table[0].split("  ")
    assert [h.strip() for h in header if h.strip()][8:11] == ["rejected", "rows done", "rows/s"]

    for bad, words in [(["--status", "done"], "invalid choice: 'done'"), (["--since", "last week"], "is not a date"),
                       (["--company", "a b"], "company id 'a b'"), (["--form-type", "Pay Roll"], "is not a form type name"),
                       ([upload_id, "--company", "acme"], "do not go with UPLOAD_ID")]:  # fmt: skip
        code, _, err = in_process(capsys, home, "status", *bad)
        assert code == 2 and words in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err

    # The read-only listing never loads Dagster (seconds of imports).
    probe = ("import sys; from ingest_pipeline.cli import main; code = main(['status', '--json', '--home', sys.argv[1]]); "
             "print('dagster loaded' if 'dagster' in sys.modules else 'no dagster', code, file=sys.stderr)")  # fmt: skip
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", probe, str(home)], capture_output=True, text=True, check=False,
                          env={**os.environ, "INGEST_HOME": str(home)})  # fmt: skip
    print(f"status --json took {time.monotonic() - started:.2f} s")
    assert done.stderr.strip().splitlines()[-1] == "no dagster 0", done.stderr


def test_partitions_lists_and_prunes_keys_that_are_no_upload(finished_home, capsys, command_environment):
    home, upload_id = finished_home
    command_environment.setenv("DAGSTER_HOME", str(home / "dagster"))
    with DagsterInstance.get() as instance:  # what the UI's "Add partition" does
        instance.add_dynamic_partitions("uploads", ["typo-by-hand", "a1", "busy-key"])
        from ingest_pipeline.definitions import defs
        from ingest_pipeline.defs.operator_actions import ui_job_origin

        # A run queued for a stray key: that key is kept.
        run = instance.create_run_for_job(job_def=defs.resolve_job_def("ingest_upload"), status=DagsterRunStatus.QUEUED,
                                          tags={"dagster/partition": "busy-key"}, remote_job_origin=ui_job_origin("ingest_upload"))  # fmt: skip
    code, out, err = in_process(capsys, home, "partitions")
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.startswith("typo-by-hand  0 run(s)  not a registered upload") for line in lines), lines
    assert any(line.startswith("busy-key  1 run(s)  kept: 1 run(s) of it are queued or running") for line in lines)
    assert not any(line.startswith((upload_id, "a1")) for line in lines)  # registered uploads are never listed

    code, out, _ = in_process(capsys, home, "partitions", "--prune")
    assert code == 0 and "pruned 1 of 2 partition(s)" in out, out
    with DagsterInstance.get() as instance:
        keys = set(instance.get_dynamic_partitions("uploads"))
        assert "typo-by-hand" not in keys and {"busy-key", "a1", upload_id} <= keys
        instance.report_run_canceled(instance.get_run_by_id(run.run_id))
        instance.delete_run(run.run_id)
        instance.delete_dynamic_partition("uploads", "busy-key")
    assert in_process(capsys, home, "partitions")[1].strip() == "every partition of `uploads` is a registered upload"


def test_backfill_dry_run_prints_the_keys_as_the_ui_writes_a_selection(finished_home, capsys, command_environment):
    home, upload_id = finished_home
    code, out, err = in_process(capsys, home, "backfill", "--form-type", "employee_roster", "--dry-run")
    assert code == 0, err
    # dagster-webserver's partitionsToText / spanTextToSelectionsOrError: keys joined by ", ", oldest first.
    assert out.splitlines()[-1] == f"{upload_id}, a1"
    code, _, err = in_process(capsys, home, "backfill", "--form-type", "employee_roster", "--dry-run", "--launch")
    assert code == 2 and "not allowed with argument" in err


def test_a_long_run_cancelled_from_another_process_ends_failed_and_retry_finishes_it(tmp_path):
    home = tmp_path / "home"
    big = roster_file(tmp_path, ROWS_BIG, "big.csv", seed=8)
    # Six chunk steps, two at a time on two cores; the first to finish judging pauses at the scan's
    # fault point until it is interrupted, so the cancel lands during the scan however fast it is.
    marker = tmp_path / "scan-reached"
    environment = {**os.environ, "INGEST_HOME": str(home), "INGEST_PROGRESS": "0", faults.POINT_ENV: faults.SCAN,
                   faults.MARKER_ENV: str(marker), faults.ACTION_ENV: "pause"}  # fmt: skip
    environment.pop("DAGSTER_HOME", None)
    running = subprocess.Popen([*CLI, "run", str(big), "--company", "acme", "--form-type", "employee_roster",
                                "--chunk-rows", str(ROWS_BIG // 6), "--executor", "multiprocess", "--home", str(home)],
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        upload = None
        while upload is None or upload["stage"] != "scan" or not (marker.exists() and marker.read_text().strip()):
            assert running.poll() is None, running.communicate()
            assert time.monotonic() < deadline, "the run did not reach the scan"
            time.sleep(0.3)
            try:
                uploads = status_rows(home)
            except Exception:  # the warehouse not created yet
                continue
            upload = uploads[0] if uploads else None
        upload_id = upload["upload_id"]

        print(f"scan reached after {time.monotonic() - deadline + 120:.1f} s")
        started = time.monotonic()
        cancelled = cli(home, "cancel", upload_id)
        print(f"cancel took {time.monotonic() - started:.1f} s")
        assert cancelled.returncode == 0, cancelled.stderr
        assert "interrupted (process" in cancelled.stdout and "now canceled" in cancelled.stdout, cancelled.stdout
        out, err = running.communicate(timeout=60)
        print(f"the run ended {time.monotonic() - started:.1f} s after the cancel began")
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert running.returncode == 1 and "Cancelled by the operator during scan" in err, (out, err)
    after = upload_of(home, upload_id)
    assert after["status"] == FAILED and after["error"].startswith("Cancelled by the operator during scan; ")
    assert f"`ingest-pipeline retry {upload_id}`" in after["error"]
    # Nothing stays locked or running: the upload's lock is free, no step process lives on, no slot is held.
    with open(home / "locks" / f"upload-{upload_id}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        (cancelled_run,) = instance.get_runs(RunsFilter(tags={"dagster/partition": upload_id}))
        assert cancelled_run.status == DagsterRunStatus.CANCELED
        steps = {e.dagster_event.pid for e in instance.all_logs(cancelled_run.run_id, of_type=DagsterEventType.STEP_START)}
        assert not instance.event_log_storage.get_concurrency_run_ids()
    assert not [pid for pid in steps if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]

    started = time.monotonic()
    retried = cli(home, "retry", upload_id)
    print(f"retry took {time.monotonic() - started:.1f} s")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.startswith(f"re-executing run {cancelled_run.run_id} of upload {upload_id} from failure")
    assert f"upload {upload_id}: completed" in retried.stdout
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        retry_run = instance.get_runs(RunsFilter(tags={"dagster/partition": upload_id}), limit=1)[0]
        executed = {e.step_key for e in instance.all_logs(retry_run.run_id, of_type=DagsterEventType.STEP_START)}
        done_before = {e.step_key for e in instance.all_logs(cancelled_run.run_id, of_type=DagsterEventType.STEP_SUCCESS)}
    assert retry_run.parent_run_id == cancelled_run.run_id and retry_run.remote_job_origin is not None
    assert "upload_chunks" not in executed and "accepted_rows" in executed
    assert not executed & done_before  # only what had not finished ran again
    final = upload_of(home, upload_id)
    assert final["rows_total"] == ROWS_BIG == final["rows_accepted"] + final["rows_rejected"]
    expected = len((big.parent / f"{big.name}.expected.csv").read_text().splitlines()) - 1
    with Warehouse(home / "warehouse.duckdb").connect(write=False) as connection:
        assert connection.execute("SELECT count(*) FROM ingest.messages").fetchone()[0] == expected

    again = cli(home, "retry", upload_id)
    assert again.returncode == 2 and f"upload {upload_id} has no failed run to retry" in again.stderr
    nothing = cli(home, "cancel", upload_id)
    assert nothing.returncode == 2 and "has no queued or running run to cancel (it is completed)" in nothing.stderr


def status_rows(home: Path) -> list[dict]:
    from ingest_pipeline.core.uploads import list_uploads

    return list_uploads(Warehouse(home / "warehouse.duckdb"))


def test_the_uis_terminate_stops_a_command_line_run_and_retry_runs_it_whole_once_its_work_folder_is_gone(tmp_path):
    """The webserver's Terminate calls the instance's run coordinator; a command-line run has no code
    server for it to reach, so the run's own process must notice and stop."""
    from ingest_pipeline_tests.test_faults import start_paused

    home = tmp_path / "home"
    file = roster_file(tmp_path, 2400)
    process, _ = start_paused(home, file, faults.SCAN, "multiprocess")
    try:
        with DagsterInstance.from_config(str(home / "dagster")) as instance:
            (run,) = instance.get_runs()
            assert run.status == DagsterRunStatus.STARTED
            # What dagster-graphql's terminate_pipeline_execution does for the UI's Terminate button.
            instance.run_coordinator.cancel_run(run.run_id)
            out, err = process.communicate(timeout=90)
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1 and "Cancelled by the operator during scan" in err, (out, err)
    (upload,) = status_rows(home)
    assert upload["status"] == FAILED and upload["error"].startswith("Cancelled by the operator during scan")
    assert cli(home, "retry", "0123456789abcdef").returncode == 2

    upload_id = upload["upload_id"]
    shutil.rmtree(home / "work" / upload_id)  # as the retention sensor removes it
    # On a terminal (stdout too), as an operator runs it: Dagster colours its lines when stdout is one.
    command = " ".join([*CLI, "retry", upload_id, "--home", str(home)])
    environment = {**os.environ, "INGEST_HOME": str(home), "INGEST_PROGRESS": "0"}
    environment.pop("DAGSTER_HOME", None)
    on_terminal = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True,
                                 env=environment, check=False, timeout=300)  # fmt: skip
    assert on_terminal.returncode == 0, on_terminal.stdout
    assert f"the work folder of upload {upload_id} was removed, so the whole upload runs again from {file}" in on_terminal.stdout
    assert f"upload {upload_id}: completed" in on_terminal.stdout
    log = (home / "logs" / f"run-{upload_id}.log").read_text()
    assert "chunk 1/1: rows 1-2400" in log  # the step logs are there (a whole run: the default chunks) ...
    assert "\x1b[" not in log  # ... without colour codes


def test_cancel_drops_a_queued_run_from_the_queue(finished_home, capsys, command_environment):
    home, _ = finished_home
    command_environment.setenv("DAGSTER_HOME", str(home / "dagster"))
    from ingest_pipeline.definitions import defs
    from ingest_pipeline.defs.operator_actions import ui_job_origin

    with DagsterInstance.get() as instance:  # as the sensor or the UI queues a run for the daemon
        run = instance.create_run_for_job(job_def=defs.resolve_job_def("ingest_upload"), status=DagsterRunStatus.QUEUED,
                                          tags={"dagster/partition": "a1"}, remote_job_origin=ui_job_origin("ingest_upload"))  # fmt: skip
    code, out, err = in_process(capsys, home, "cancel", "a1")
    assert code == 0, err
    assert f"run {run.run_id}: removed from the queue; now canceled" in out
    assert upload_of(home, "a1")["error"] == (
        "Cancelled by the operator; `ingest-pipeline retry a1` resumes it where it stopped, "
        "`ingest-pipeline run` on the file starts it again.")  # fmt: skip
    code, _, err = in_process(capsys, home, "cancel", "nope")
    assert code == 2 and "no upload 'nope'" in err


def test_daemon_with_an_incomplete_distributed_setting_says_what_is_missing_and_starts_nothing(tmp_path, command_environment):
    """`ingest-pipeline daemon` checks the deployment before it execs dagster-daemon: one sentence, exit 1."""
    home = tmp_path / "home"
    done = cli(home, "daemon", env={"INGEST_DEPLOYMENT": "distributed", "INGEST_CELERY_BROKER": "redis://127.0.0.1:1/0"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == ("ingest-pipeline: INGEST_DEPLOYMENT=distributed needs INGEST_POSTGRES_URL, "
                                   "AZURE_STORAGE_ACCOUNT_URL set (docs/storage-and-scaling.md).")  # fmt: skip
    assert "Dagster daemon on instance" not in done.stdout
