"""Which executor an upload's run gets: one process below a size that depends on the cores."""

import os
import subprocess
import sys

from ingest_pipeline.core.prepare import TARGET_CHUNK_BYTES
from ingest_pipeline.defs import jobs


def test_two_cores_run_uploads_up_to_a_gibibyte_in_one_process(monkeypatch):
    monkeypatch.delenv("INGEST_IN_PROCESS_MAX_BYTES", raising=False)
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 2)
    assert jobs.runs_in_process(500 * 2**20) and not jobs.runs_in_process(2**30)
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 8)
    assert jobs.runs_in_process(TARGET_CHUNK_BYTES - 1) and not jobs.runs_in_process(TARGET_CHUNK_BYTES)
    assert not jobs.runs_in_process(None)  # size unknown: one process per step


def test_the_size_limit_is_configurable(monkeypatch):
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 2)
    monkeypatch.setenv("INGEST_IN_PROCESS_MAX_BYTES", "1000")
    assert jobs.runs_in_process(999) and not jobs.runs_in_process(1000)
    assert jobs.execution_config(jobs.runs_in_process(999)) == jobs.IN_PROCESS_EXECUTION


def _polars_threads_after_step_preload(env: dict) -> int:
    code = "import ingest_pipeline.defs.step_preload, polars; print(polars.thread_pool_size())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_step_processes_give_polars_one_thread_unless_told_otherwise():
    """The multiprocess executor's step processes fork from a server that imported step_preload:
    as many run at once as there are cores, so each one's polars gets one thread."""
    env = {k: v for k, v in os.environ.items() if k != "POLARS_MAX_THREADS"}
    assert _polars_threads_after_step_preload(env) == 1
    assert _polars_threads_after_step_preload({**env, "POLARS_MAX_THREADS": "2"}) == 2
