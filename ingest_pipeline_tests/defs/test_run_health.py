"""The dead-run reconciliation's upload errors (defs/run_health.py), on a real instance and warehouse."""

from dagster import DagsterInstance, DagsterRunStatus, MetadataValue
from dagster._core.events import EngineEventData
from dagster._core.test_utils import create_run_for_test

from ingest_pipeline.core.uploads import PROCESSING, get_upload, register_upload, update_upload
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.core.worker_watch import LOST_WORKER_KEY
from ingest_pipeline.defs.jobs import INGEST_JOB_NAME
from ingest_pipeline.defs.partitions import PARTITION_TAG
from ingest_pipeline.defs.run_health import fail_stranded_uploads, lost_worker_reason

LOST = "Celery worker any@vm2 stopped answering while it ran step scan_upload_chunk[chunk_2] (no reply for 61 s; its machine or its worker process is gone)."


def test_a_run_that_lost_a_worker_fails_its_upload_naming_the_worker_and_the_retry(tmp_path, monkeypatch):
    monkeypatch.delenv("INGEST_WEBHOOK_URL", raising=False)
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    register_upload(warehouse, upload_id="u1", company_id="acme", form_type="employee_roster", source="x.csv",
                    sha256=None, size=None, filespec_version=1)  # fmt: skip
    update_upload(warehouse, "u1", status=PROCESSING, stage="scan")
    with DagsterInstance.ephemeral() as instance:
        run = create_run_for_test(instance, job_name=INGEST_JOB_NAME, status=DagsterRunStatus.FAILURE,
                                  tags={PARTITION_TAG: "u1"})  # fmt: skip
        instance.report_engine_event("Submitting celery task.", run)
        instance.report_engine_event(LOST, run, EngineEventData(metadata={LOST_WORKER_KEY: MetadataValue.text(LOST)}))
        # Its re-execution, which inherits its tags, lost no worker.
        retry = create_run_for_test(instance, job_name=INGEST_JOB_NAME, status=DagsterRunStatus.FAILURE,
                                    tags=dict(run.tags), parent_run_id=run.run_id, root_run_id=run.run_id)  # fmt: skip
        assert lost_worker_reason(instance, run.run_id) == LOST
        assert lost_worker_reason(instance, retry.run_id) is None
        instance.delete_run(retry.run_id)
        assert fail_stranded_uploads(instance, warehouse) == ["u1"]
    upload = get_upload(warehouse, "u1")
    assert upload["status"] == "failed"
    assert upload["error"] == (
        "Celery worker any@vm2 stopped answering while it ran step scan_upload_chunk[chunk_2] (no reply for 61 s; "
        "its machine or its worker process is gone); `ingest-pipeline retry u1` resumes it where it stopped."
    )
