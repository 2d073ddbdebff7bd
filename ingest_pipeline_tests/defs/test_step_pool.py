"""The multiprocess executor's step pool (defs/step_pool.py), through the real command line: chunk
scans share a few long-lived step processes, every other step still gets its own, the tables are
those of a run in one process, and no step process outlives its run, even one killed with -9."""

import os
import time
from pathlib import Path

import psutil
from dagster import DagsterEventType, DagsterInstance

from ingest_pipeline.core import faults
from ingest_pipeline_tests.test_faults import (
    CHUNK_ROWS,
    ROWS,
    cli,
    contract_tables,
    kill_command,
    roster,  # noqa: F401  (the module's 2,400-row roster fixture)
    run_args,
    start_paused,
)

SCAN_STAGE = "chunk_scans."  # its plan, chunk scans and summary
SCAN_STEP = "chunk_scans.scan_upload_chunk"


def step_processes(home: Path) -> dict[str, int]:
    """The pid each step of the home's only run was executed in (its STEP_WORKER_STARTED event)."""
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        [record] = instance.get_run_records()
        events = instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.STEP_WORKER_STARTED)
        return {e.step_key: int(e.dagster_event.engine_event_data.metadata["pid"].value) for e in events}


def wait_gone(pids: set[int], seconds: float = 15.0) -> set[int]:
    """The pids still alive (zombies excluded) after waiting up to `seconds` for them to end."""
    deadline = time.monotonic() + seconds
    while True:
        alive = {pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def test_chunk_scans_share_pool_processes_and_give_the_tables_of_one_process(roster, tmp_path):  # noqa: F811
    one_process = tmp_path / "in_process"
    assert cli(one_process, *run_args(roster, "in_process")).returncode == 0

    home = tmp_path / "home"
    done = cli(home, *run_args(roster, "multiprocess"))
    assert done.returncode == 0, done.stderr
    assert contract_tables(home) == contract_tables(one_process)
    # The fork server was started by the command before the run: its step processes' log lines
    # still go to the run's log, not to the terminal.
    assert " - dagster - " not in done.stdout + done.stderr, done.stderr
    [log] = (home / "logs").glob("run-*.log")
    assert f"{SCAN_STEP}[chunk_00003]" in log.read_text()

    pids = step_processes(home)
    scans = {key: pid for key, pid in pids.items() if key.startswith(SCAN_STAGE)}
    others = {key: pid for key, pid in pids.items() if not key.startswith(SCAN_STAGE)}
    assert len(scans) == ROWS // CHUNK_ROWS + 2  # the plan, a step per chunk, the summary
    # At most one pool process per step the executor runs at once (one per core by default) ...
    assert len(set(scans.values())) <= min(os.cpu_count() or 1, len(scans) - 1), scans
    # ... and every other step in a process of its own, none of them a pool process.
    assert len(set(others.values())) == len(others) and not set(others.values()) & set(scans.values()), pids
    assert not wait_gone(set(pids.values()), seconds=5), "a step process outlived its run"


def test_pool_processes_end_when_their_run_process_is_killed(roster, tmp_path):  # noqa: F811
    """kill -9 of the command while a chunk scan is paused in a pool process: the idle pool process
    ends by itself, and the next command ends the dead run and the paused step."""
    home = tmp_path / "home"
    process, paused_pid = start_paused(home, roster, faults.SCAN, "multiprocess")
    kill_command(process)
    pool = {pid for key, pid in step_processes(home).items() if key.startswith(SCAN_STEP)}
    assert paused_pid in pool
    assert len(pool) >= min(os.cpu_count() or 1, 2), pool  # another pool process, idle or scanning
    assert wait_gone(pool - {paused_pid}) == set(), "an idle pool process outlived its run"
    status = cli(home, "status")
    assert "1 dead run(s) ended" in status.stderr, status.stderr
    assert wait_gone({paused_pid}) == set()
