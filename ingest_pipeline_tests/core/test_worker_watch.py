"""The verdicts on a distributed run's step tasks (core/worker_watch.py): pure logic, a fake clock."""

import pytest

from ingest_pipeline.core.deployment import deployment_from_env
from ingest_pipeline.core.errors import StorageError
from ingest_pipeline.core.uploads import worker_lost_error
from ingest_pipeline.core.worker_watch import WorkerWatch, check_interval, worker_lost_seconds
from ingest_pipeline_tests.core.test_deployment import DISTRIBUTED

STEP = "scan_upload_chunk[chunk_2]"


def test_a_started_task_is_lost_once_its_worker_is_silent_longer_than_the_bound_while_others_answer():
    watch = WorkerWatch(lost_after=30)
    watch.observe({"any@vm2": ["dagster"], "owner@vm1": ["dagster", "warehouse"]}, at=100)
    assert watch.verdict(STEP, "dagster", "any@vm2", since=101) is None
    for at in range(110, 131, 10):  # vm2 is gone; vm1 keeps answering
        watch.observe({"owner@vm1": ["dagster", "warehouse"]}, at=at)
        assert watch.verdict(STEP, "dagster", "any@vm2", since=101) is None, at
    watch.observe({"owner@vm1": ["dagster", "warehouse"]}, at=140)
    assert watch.verdict(STEP, "dagster", "any@vm2", since=101) == (
        "Celery worker any@vm2 stopped answering while it ran step scan_upload_chunk[chunk_2] "
        "(no reply for 39 s; its machine or its worker process is gone)."
    )
    assert watch.verdict(STEP, "dagster", "owner@vm1", since=101) is None  # vm1's steps run on


def test_a_worker_answering_again_is_not_lost_and_nobody_is_judged_on_what_came_before_the_task():
    watch = WorkerWatch(lost_after=30)
    watch.observe({"owner@vm1": ["warehouse"]}, at=0)
    watch.observe({"owner@vm1": ["warehouse"]}, at=100)  # any@vm2 never answered, but only just took the task
    assert watch.verdict(STEP, "dagster", "any@vm2", since=95) is None
    watch.observe({"any@vm2": ["dagster"]}, at=120)
    watch.observe({"any@vm2": ["dagster"]}, at=149)
    assert watch.verdict(STEP, "dagster", "any@vm2", since=95) is None


def test_a_broker_that_cannot_be_reached_makes_nobody_lost():
    watch = WorkerWatch(lost_after=30)
    watch.observe({"any@vm2": ["dagster"]}, at=0)
    for at in range(10, 200, 10):
        watch.observe(None, at=at)
    assert watch.verdict(STEP, "dagster", "any@vm2", since=1) is None
    watch.observe({}, at=200)  # the broadcast went out and nobody answered
    assert watch.verdict(STEP, "dagster", "any@vm2", since=1) is not None


def test_a_waiting_task_is_lost_only_when_no_worker_takes_its_queue():
    watch = WorkerWatch(lost_after=30)
    for at in range(0, 100, 10):  # the warehouse owner is busy for minutes: its queue is served
        watch.observe({"owner@vm1": ["dagster", "warehouse"]}, at=at)
    assert watch.verdict("merge_upload", "warehouse", None, since=5) is None
    for at in range(100, 141, 10):  # the owner is gone; a scan worker answers, not for that queue
        watch.observe({"any@vm2": ["dagster"]}, at=at)
    assert watch.verdict("scan_upload_chunk[chunk_1]", "dagster", None, since=5) is None
    assert watch.verdict("merge_upload", "warehouse", None, since=5) == (
        "No Celery worker taking queue 'warehouse' answered for 50 s while step merge_upload waited for one; "
        "start a worker with `-Q warehouse` (docs/storage-and-scaling.md)."
    )


def test_the_upload_error_says_how_to_resume():
    lost = "Celery worker any@vm2 stopped answering while it ran step s (no reply for 61 s; its machine or its worker process is gone)."
    assert worker_lost_error("u1", lost) == (
        "Celery worker any@vm2 stopped answering while it ran step s (no reply for 61 s; its machine or its worker "
        "process is gone); `ingest-pipeline retry u1` resumes it where it stopped."
    )


def test_the_bound_is_a_setting_with_a_default_and_a_sentence_when_bad():
    assert worker_lost_seconds(None) == worker_lost_seconds(" ") == 60
    assert worker_lost_seconds("8") == 8
    assert check_interval(60) == 10 and check_interval(6) == 1 and check_interval(600) == 10
    deployment = deployment_from_env({**DISTRIBUTED, "INGEST_WORKER_LOST_SECONDS": "45"})
    assert deployment.celery_executor_config()["worker_lost_seconds"] == 45
    assert deployment.celery_executor_config()["config_source"]["worker_disable_prefetch"] is True
    for bad in ("0", "-5", "soon", "nan", "inf"):
        with pytest.raises(StorageError) as raised:
            deployment_from_env({**DISTRIBUTED, "INGEST_WORKER_LOST_SECONDS": bad})
        assert str(raised.value) == f"INGEST_WORKER_LOST_SECONDS is {bad!r}; give a number of seconds above 0 (default 60)."
