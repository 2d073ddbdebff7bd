"""A run started by `ingest-pipeline run` whose chunk step dies is re-executed from failure the way
the Dagster UI does it (its GraphQL mutation, against the code location `ingest-pipeline ui` serves,
launched by the real daemon): only the failed chunk and what follows run again, and the tables end as
a clean run leaves them."""

import os
import subprocess
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster_graphql.client.query import LAUNCH_PIPELINE_REEXECUTION_MUTATION
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from ingest_pipeline.core import faults
from ingest_pipeline.core.filespec import load_form_type
from ingest_pipeline.core.generate import generate_upload
from ingest_pipeline_tests.distributed_services import stop
from ingest_pipeline_tests.test_daemon_faults import DAEMON
from ingest_pipeline_tests.test_faults import ROWS, cli, contract_tables, run_args

PROJECT = Path(__file__).resolve().parents[1]


@pytest.mark.daemon
def test_the_ui_re_executes_a_command_line_run_from_its_failed_chunk(tmp_path, monkeypatch):
    spec = load_form_type("employee_roster", PROJECT / "filespecs")
    roster = tmp_path / "roster.csv"
    generate_upload(spec, ROWS, roster, error_rate=0.02, seed=11, company_id="acme", home=tmp_path / "gen",
                    filespecs_dir=PROJECT / "filespecs")  # fmt: skip
    clean = tmp_path / "clean"
    assert cli(clean, *run_args(roster, "in_process")).returncode == 0

    home = tmp_path / "home"
    marker = tmp_path / "marker"
    killed = cli(home, *run_args(roster, "multiprocess"), env={
        faults.POINT_ENV: faults.SCAN, faults.MARKER_ENV: str(marker), faults.ACTION_ENV: "kill"})  # fmt: skip
    assert killed.returncode == 1, killed.stderr  # a chunk step died: the run failed, and said so

    monkeypatch.setenv("INGEST_HOME", str(home))  # for the code server the GraphQL context starts
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    log = tmp_path / "daemon.log"
    with DagsterInstance.get() as instance, open(log, "wb") as out:
        (failed,) = instance.get_runs()
        assert failed.status == DagsterRunStatus.FAILURE
        daemon = subprocess.Popen([str(DAEMON), "run", "-w", str(PROJECT / "workspace.yaml")], cwd=home / "dagster",
                                  env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            with define_out_of_process_context(str(PROJECT / "workspace.yaml"), None, instance) as context:
                launched = execute_dagster_graphql(context, LAUNCH_PIPELINE_REEXECUTION_MUTATION, {
                    "reexecutionParams": {"parentRunId": failed.run_id, "strategy": "FROM_FAILURE"}}).data  # fmt: skip
            assert launched["launchPipelineReexecution"]["__typename"] == "LaunchRunSuccess", launched
            run_id = launched["launchPipelineReexecution"]["run"]["runId"]
            deadline = time.monotonic() + 240
            while (run := instance.get_run_by_id(run_id)).status not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE):
                assert daemon.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            assert run.status == DagsterRunStatus.SUCCESS, log.read_text()[-3000:]
            executed = {stat.step_key for stat in instance.get_run_step_stats(run_id)}
        finally:
            stop(daemon)
    scans = {key for key in executed if key.startswith("chunk_scans.scan_upload_chunk")}
    assert len(scans) == 1, executed  # the chunk that died, not the two that had finished
    assert "upload_chunks" not in executed and "accepted_rows" in executed
    assert run.tags["dagster/partition"] == failed.tags["dagster/partition"]
    assert contract_tables(home) == contract_tables(clean)
