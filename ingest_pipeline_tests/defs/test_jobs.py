"""Which executor an upload's run gets: one process below a size that depends on the cores."""

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
