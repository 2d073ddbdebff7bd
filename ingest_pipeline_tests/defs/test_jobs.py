"""Which executor an upload's run gets (one process below a size that depends on the cores), and
what its step processes fork with."""

import json
import os
import subprocess
import sys
from pathlib import Path

from ingest_pipeline.core import step_processes
from ingest_pipeline.core.prepare import TARGET_CHUNK_BYTES
from ingest_pipeline.defs import jobs


def test_two_cores_run_uploads_up_to_a_gibibyte_in_one_process(monkeypatch):
    monkeypatch.delenv("INGEST_IN_PROCESS_MAX_BYTES", raising=False)
    monkeypatch.setattr(step_processes.os, "cpu_count", lambda: 2)
    assert jobs.runs_in_process(500 * 2**20) and not jobs.runs_in_process(2**30)
    monkeypatch.setattr(step_processes.os, "cpu_count", lambda: 8)
    assert jobs.runs_in_process(TARGET_CHUNK_BYTES - 1) and not jobs.runs_in_process(TARGET_CHUNK_BYTES)
    assert not jobs.runs_in_process(None)  # size unknown: one process per step


def test_the_size_limit_is_configurable(monkeypatch):
    monkeypatch.setattr(step_processes.os, "cpu_count", lambda: 2)
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


# Run in a fresh interpreter after step_preload, as the forkserver would: what a step would
# otherwise import on first use is loaded, no thread was started (forked children inherit none),
# and opening a new Dagster instance (three SQLite storages, each checking its schema revision)
# reads no Alembic revision script again.
_STEP_PRELOAD_PROBE = """
import sys, threading, json
import ingest_pipeline.defs.step_preload as preload
from alembic.script import base
reads = []
original = base.ScriptDirectory._load_revisions
def counted(self):
    reads.append(1)
    yield from original(self)
base.ScriptDirectory._load_revisions = counted
from dagster import DagsterInstance
with DagsterInstance.from_config(sys.argv[1]) as instance:
    instance.get_runs()
print(json.dumps({"missing": [m for m in preload.LAZILY_IMPORTED if m not in sys.modules],
                  "threads": threading.active_count(), "revision_reads": len(reads)}))
"""


def test_step_preload_loads_what_steps_import_late_and_reads_alembic_scripts_once(tmp_path):
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((Path(__file__).parents[2] / "dagster.yaml").read_text())
    done = subprocess.run([sys.executable, "-c", _STEP_PRELOAD_PROBE, str(dagster_home)], env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
                          capture_output=True, text=True, check=True)  # fmt: skip
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe == {"missing": [], "threads": 1, "revision_reads": 0}
    assert (dagster_home / "history" / "runs.db").exists()  # the instance's storages were really created
