"""The deployment setting (core/deployment.py) and the work-file bookkeeping (core/work_storage.py): pure logic."""

import pytest
import yaml

from ingest_pipeline.core.deployment import (
    CELERY_QUEUE_TAG,
    K8S_CONFIG_TAG,
    deployment_from_env,
    distributed_instance_yaml,
)
from ingest_pipeline.core.errors import StorageError
from ingest_pipeline.core.work_storage import changed_since, file_states

DISTRIBUTED = {"INGEST_DEPLOYMENT": "distributed", "INGEST_CELERY_BROKER": "redis://10.0.0.4:6379/0",
               "INGEST_POSTGRES_URL": "postgresql+psycopg2://dagster@10.0.0.5/dagster",
               "AZURE_STORAGE_ACCOUNT_URL": "https://acme.blob.core.windows.net"}  # fmt: skip
KUBERNETES = {"INGEST_DEPLOYMENT": "kubernetes", "INGEST_HOME": "/srv/ingest",
              "INGEST_POSTGRES_URL": "postgresql+psycopg2://dagster@10.0.0.5/dagster",
              "AZURE_STORAGE_ACCOUNT_URL": "https://acme.blob.core.windows.net"}  # fmt: skip


def test_local_is_the_default_and_adds_no_tags():
    for environ in ({}, {"INGEST_DEPLOYMENT": ""}, {"INGEST_DEPLOYMENT": " Local "}):
        deployment = deployment_from_env(environ)
        assert not deployment.distributed and deployment.warehouse_tags() == {}


def test_distributed_routes_warehouse_steps_and_defaults_the_backend_to_the_broker():
    deployment = deployment_from_env({**DISTRIBUTED, "INGEST_WAREHOUSE_QUEUE": "duckdb-vm1"})
    assert deployment.warehouse_tags() == {CELERY_QUEUE_TAG: "duckdb-vm1"}
    config = deployment.celery_executor_config()
    assert config["broker"] == config["backend"] == "redis://10.0.0.4:6379/0"
    assert config["config_source"]["worker_prefetch_multiplier"] == 1
    assert deployment.work_container == "work"


def test_kubernetes_mounts_the_warehouse_disk_for_warehouse_steps_and_forwards_only_set_settings():
    deployment = deployment_from_env({**KUBERNETES, "INGEST_K8S_NAMESPACE": "etl", "AZURE_STORAGE_KEY": "k"})
    assert deployment.distributed and not deployment.on_celery
    pod = deployment.warehouse_tags()[K8S_CONFIG_TAG]
    assert pod["pod_spec_config"]["node_selector"] == {"ingest/warehouse": "true"}
    assert pod["pod_spec_config"]["volumes"][0]["persistent_volume_claim"] == {"claim_name": "ingest-home"}
    assert pod["container_config"]["volume_mounts"][0]["mount_path"] == "/srv/ingest"
    assert deployment.executor_config() == {
        "job_namespace": "etl", "max_concurrent": 16,
        "env_vars": ["INGEST_DEPLOYMENT", "INGEST_POSTGRES_URL", "INGEST_HOME", "AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_KEY"],
    }  # fmt: skip


@pytest.mark.parametrize(("environ", "sentence"), [
    ({"INGEST_DEPLOYMENT": "cluster"}, "INGEST_DEPLOYMENT is 'cluster'; use 'local', 'distributed' or 'kubernetes'."),
    ({"INGEST_DEPLOYMENT": "kubernetes", "INGEST_HOME": "/srv/ingest"}, "INGEST_DEPLOYMENT=kubernetes needs "
     "INGEST_POSTGRES_URL, AZURE_STORAGE_ACCOUNT_URL set (docs/storage-and-scaling.md)."),
    ({**KUBERNETES, "INGEST_HOME": ".ingest"}, "INGEST_HOME is '.ingest'; on Kubernetes it must be the absolute path "
     "where the warehouse disk is mounted, e.g. /srv/ingest."),
    ({**KUBERNETES, "INGEST_K8S_WAREHOUSE_NODE_LABEL": "warehouse"},
     "INGEST_K8S_WAREHOUSE_NODE_LABEL is 'warehouse'; write it as name=value, e.g. ingest/warehouse=true."),
    ({**KUBERNETES, "INGEST_K8S_MAX_CONCURRENT": "0"},
     "INGEST_K8S_MAX_CONCURRENT is '0'; give the most step pods of a run at once, e.g. 16."),
    ({"INGEST_DEPLOYMENT": "distributed"}, "INGEST_DEPLOYMENT=distributed needs INGEST_CELERY_BROKER, "
     "INGEST_POSTGRES_URL, AZURE_STORAGE_ACCOUNT_URL set (docs/storage-and-scaling.md)."),
    ({**DISTRIBUTED, "INGEST_POSTGRES_URL": "postgresql://x@y/z"},
     "INGEST_POSTGRES_URL must start with postgresql+psycopg2:// (the PostgreSQL driver installed)."),
])  # fmt: skip
def test_a_bad_setting_is_one_sentence(environ, sentence):
    with pytest.raises(StorageError) as raised:
        deployment_from_env(environ)
    assert str(raised.value) == sentence


def test_the_distributed_instance_keeps_the_embedded_settings_and_stores_in_postgres():
    instance = yaml.safe_load(distributed_instance_yaml("concurrency:\n  runs:\n    max_concurrent_runs: 4\n"))
    assert instance["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert instance["storage"] == {"postgres": {"postgres_url": {"env": "INGEST_POSTGRES_URL"}}}
    assert instance["compute_logs"]["class"] == "NoOpComputeLogManager"


def test_only_written_files_are_pushed(tmp_path):
    (tmp_path / "scan").mkdir()
    (tmp_path / "manifest.json").write_text("{}")
    before = file_states(tmp_path)
    (tmp_path / "scan" / "chunk-00001.rows.parquet").write_bytes(b"rows")
    assert changed_since(before, file_states(tmp_path)) == ["scan/chunk-00001.rows.parquet"]
    assert file_states(tmp_path / "missing") == {}
