"""INGEST_DEPLOYMENT=kubernetes through Dagster and dagster-k8s themselves (no cluster here): the
code location loads with `k8s_job_executor`, the jobs' run config passes its schema, and the pod
dagster-k8s would build for a warehouse step mounts the warehouse disk on the warehouse node,
while a chunk scan's pod is plain. Run in a fresh interpreter: the deployment is read at import."""

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json
from dagster import validate_run_config
from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config
from ingest_pipeline.definitions import defs
from ingest_pipeline.defs.jobs import execution_config

job = defs.resolve_job_def("ingest_upload")
validate_run_config(job, {"execution": execution_config(in_process=False)})
pods = {}
for node in job.graph.iterate_op_defs():
    config = get_user_defined_k8s_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in node.tags.items()})
    spec = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image="ingest:1", dagster_home="/opt/dagster/home"), ["dagster", "api", "execute_step"],
        "dagster-step-x", user_defined_k8s_config=config,
    ).spec.template.spec
    pods[node.name] = {"node_selector": spec.node_selector, "claims": [v.persistent_volume_claim.claim_name
                       for v in spec.volumes or [] if v.persistent_volume_claim],
                       "mounts": [m.mount_path for m in spec.containers[0].volume_mounts or []]}
print(json.dumps({"executor": job.executor_def.name, "pods": pods}))
"""


def test_the_kubernetes_deployment_is_a_configured_k8s_job_executor(tmp_path):
    environment = {**os.environ, "INGEST_DEPLOYMENT": "kubernetes", "INGEST_HOME": "/srv/ingest",
                   "INGEST_POSTGRES_URL": "postgresql+psycopg2://dagster@10.0.0.5/dagster",
                   "AZURE_STORAGE_ACCOUNT_URL": "https://acme.blob.core.windows.net", "AZURE_STORAGE_KEY": "a2V5",
                   "INGEST_K8S_WAREHOUSE_CLAIM": "warehouse-disk", "PYTHONPATH": str(PROJECT)}  # fmt: skip
    probe = subprocess.run([sys.executable, "-c", PROBE], env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["executor"] == "k8s"
    warehouse_pod = {"node_selector": {"ingest/warehouse": "true"}, "claims": ["warehouse-disk"], "mounts": ["/srv/ingest"]}
    for op in ("upload_chunks", "plan_chunk_scans", "summarize_chunk_scans", "column_profiles", "upload_findings", "accepted_rows"):
        assert found["pods"][op] == warehouse_pod, op
    assert found["pods"]["scan_upload_chunk"]["claims"] == [] and not found["pods"]["scan_upload_chunk"]["node_selector"]
