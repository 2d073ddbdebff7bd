"""What an operator sees in the Dagster UI, through real runs on a real instance and the UI's GraphQL.

Three uploads go through `ingest-pipeline run` (the command line's `execute_run` on the home's
instance): a good roster, a roster above its 5% error limit (7.7% rejected), and the good roster's
rows sent as payroll (the wrong form type), then a second good roster. The UI's answers come from
dagster-webserver's own GraphQL schema over a workspace of this code location.
"""

import os
import re
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, materialize
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster_graphql.test.utils import execute_dagster_graphql

from ingest_pipeline.cli import main
from ingest_pipeline.defs.assets import OUTCOME_TAG
from ingest_pipeline.defs.settings import IngestSettings
from ingest_pipeline.defs.upload_views import upload_views
from ingest_pipeline_tests.conftest import COMMAND_VARIABLES, PROJECT_ROOT
from ingest_pipeline_tests.defs.test_checks import write_roster

GATE_SENTENCE = "7.7% of rows rejected, above the form type's limit of 5%."
STAGE_ASSETS = ("upload_chunks", "chunk_scans", "column_profiles", "upload_findings", "accepted_rows")
STAGE_FIGURES = {"seconds", "cpu_seconds", "peak_rss_mb", "rows", "rows_per_second"}


@pytest.fixture(scope="module")
def uploads(tmp_path_factory) -> dict:
    """The four uploads, run once for the module: their ids, run ids and the home."""
    folder = tmp_path_factory.mktemp("ui")
    home = folder / "home"
    files = {
        "good": write_roster(folder / "good.csv", rows=45, bad=1),
        "gated": write_roster(folder / "gated.csv", rows=26, bad=2),  # 2/26 = 7.69%
        "wrong_form_type": write_roster(folder / "claims.csv", rows=12, bad=0),
        "later": write_roster(folder / "later.csv", rows=20, bad=0),
    }
    form_types = {"wrong_form_type": "payroll"}
    with pytest.MonkeyPatch.context() as patch:
        for variable in (*COMMAND_VARIABLES, "INGEST_WEBHOOK_URL"):
            patch.setenv(variable, os.environ.get(variable, ""))
        patch.delenv("INGEST_WEBHOOK_URL")
        codes = {}
        for name, path in files.items():
            codes[name] = main(["run", str(path), "--company", "acme", "--form-type", form_types.get(name, "employee_roster"),
                                "--home", str(home), "--executor", "in_process", "--chunk-rows", "10"])  # fmt: skip
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
            ids = dict(connection.execute("SELECT source, upload_id FROM ingest.uploads").fetchall())
            runs = dict(connection.execute("SELECT upload_id, run_id FROM ingest.uploads").fetchall())
        uploads = {name: ids[str(path.resolve())] for name, path in files.items()}
        yield {"home": home, "codes": codes, "ids": uploads, "runs": {n: runs[i] for n, i in uploads.items()}}


def instance_of(home: Path) -> DagsterInstance:
    return DagsterInstance.from_config(str(home / "dagster"))


def latest_materialization(instance: DagsterInstance, asset: str, partition: str | None = None):
    record = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    return record[0].asset_materialization if record else None


def graphql(home: Path, query: str, variables: dict | None = None) -> dict:
    """Ask the UI's GraphQL schema, as dagster-webserver serves it for this code location."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="ingest_pipeline.definitions", working_directory=str(PROJECT_ROOT)),
        location_name="ingest_pipeline",
    )
    with instance_of(home) as instance, WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as process:
        result = execute_dagster_graphql(process.create_request_context(), query, variables or {})
    assert not result.errors, result.errors
    return result.data


def test_the_runs_end_as_their_uploads(uploads):
    assert uploads["codes"] == {"good": 0, "gated": 1, "wrong_form_type": 1, "later": 0}


# --- a gated or failed upload: the sentence first, only its own partition marked -----------------


def test_a_gated_uploads_run_fails_with_the_sentence_and_no_check_error(uploads):
    with instance_of(uploads["home"]) as instance:
        run_id = uploads["runs"]["gated"]
        failures = [e.dagster_event for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)]
        run = instance.get_run_by_id(run_id)
        messages = " ".join(e.message or "" for e in instance.all_logs(run_id))
    assert [f.step_key for f in failures] == ["accepted_rows"]
    failure = failures[0].step_failure_data
    assert failure.user_failure_data.description == GATE_SENTENCE
    assert failure.error.message.strip().endswith(GATE_SENTENCE)
    assert "DagsterAssetCheckFailedError" not in messages and failure.error.cause is None
    assert run.tags[OUTCOME_TAG] == f"failed: {GATE_SENTENCE}"


def test_an_upload_of_the_wrong_form_type_fails_at_publishing_with_its_sentence(uploads):
    with instance_of(uploads["home"]) as instance:
        failures = [e.dagster_event for e in instance.all_logs(uploads["runs"]["wrong_form_type"],
                                                                of_type=DagsterEventType.STEP_FAILURE)]  # fmt: skip
    assert [f.step_key for f in failures] == ["accepted_rows"]
    assert failures[0].step_failure_data.user_failure_data.description.startswith("The file does not look like payroll")


def test_a_completed_run_says_so(uploads):
    with instance_of(uploads["home"]) as instance:
        assert instance.get_run_by_id(uploads["runs"]["good"]).tags[OUTCOME_TAG] == "completed"


def test_only_the_failed_uploads_publish_partition_is_failed(uploads):
    ids = uploads["ids"]
    with instance_of(uploads["home"]) as instance:
        for asset in STAGE_ASSETS[:-1]:  # each stage that did its work is materialized for every upload
            assert instance.get_materialized_partitions(AssetKey(asset)) == set(ids.values()), asset
        assert instance.get_materialized_partitions(AssetKey("accepted_rows")) == {ids["good"], ids["later"]}
    nodes = graphql(uploads["home"], "{ assetNodes { assetKey { path } partitionStats { numFailed numMaterialized } } }")
    failed = {n["assetKey"]["path"][0]: n["partitionStats"]["numFailed"] for n in nodes["assetNodes"] if n["partitionStats"]}
    assert failed == {"upload_chunks": 0, "chunk_scans": 0, "column_profiles": 0, "upload_findings": 0,
                      "accepted_rows": 2, "client_report": 0}  # fmt: skip


CHECKS_QUERY = """
query ($asset: AssetKeyInput!) { assetNodeOrError(assetKey: $asset) { ... on AssetNode {
  assetChecksOrError { ... on AssetChecks { checks { name blocking
    partitionStatuses { __typename }
    executionForLatestMaterialization { status evaluation { success description
      metadataEntries { label ... on TextMetadataEntry { text } } } } } } } } } }
"""


def test_the_checks_show_the_latest_uploads_result_alike_everywhere(uploads):
    """Unpartitioned checks: the checks list, the check's panel and the graph read the same result
    (the latest upload's, which passed), and no check is "execution failed" for a skipped step."""
    for asset, names in (("upload_findings", {"error_rate", "drift"}), ("accepted_rows", {"conservation"})):
        data = graphql(uploads["home"], CHECKS_QUERY, {"asset": {"path": [asset]}})
        checks = data["assetNodeOrError"]["assetChecksOrError"]["checks"]
        assert {c["name"] for c in checks} == names
        for check in checks:
            assert check["partitionStatuses"] is None  # nothing summed over uploads beside the latest result
            latest = check["executionForLatestMaterialization"]
            assert latest["status"] == "SUCCEEDED", (check["name"], latest)
            upload = {e["label"]: e.get("text") for e in latest["evaluation"]["metadataEntries"]}["upload_id"]
            assert upload == uploads["ids"]["later"]


def test_each_uploads_check_results_stay_in_its_own_run(uploads):
    with instance_of(uploads["home"]) as instance:
        def evaluations(name):
            logs = instance.all_logs(uploads["runs"][name], of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
            return {e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data for e in logs}

        gated, good = evaluations("gated"), evaluations("good")
    assert not gated["error_rate"].passed and gated["error_rate"].description == GATE_SENTENCE
    assert gated["conservation"].passed and gated["conservation"].metadata["results_rows"].value == 0
    assert {name: e.passed for name, e in good.items()} == {"error_rate": True, "drift": True, "conservation": True}


# --- every stage's figures -----------------------------------------------------------------------


def test_every_stage_materialization_carries_its_figures(uploads):
    upload_id = uploads["ids"]["good"]
    expected_rows = {"upload_chunks": 45, "chunk_scans": 45, "column_profiles": 45, "upload_findings": 45,
                     "accepted_rows": 44}  # fmt: skip
    with instance_of(uploads["home"]) as instance:
        for asset in STAGE_ASSETS:
            metadata = {k: v.value for k, v in latest_materialization(instance, asset, upload_id).metadata.items()}
            assert STAGE_FIGURES <= set(metadata), asset
            assert metadata["rows"] == expected_rows[asset], asset
            assert metadata["seconds"] > 0 and metadata["cpu_seconds"] > 0 and metadata["peak_rss_mb"] > 0, asset
            assert metadata["rows_per_second"] == pytest.approx(metadata["rows"] / metadata["seconds"], rel=0.01, abs=1)
        scans = latest_materialization(instance, "chunk_scans", upload_id).metadata
        findings = latest_materialization(instance, "upload_findings", upload_id).metadata
        published = latest_materialization(instance, "accepted_rows", upload_id).metadata
    assert scans["chunks"].value == 5 and len(scans["chunk_figures"].value.records) == 5
    assert sum(r.data["rows"] for r in scans["chunk_figures"].value.records) == 45
    assert scans["chunk_seconds_total"].value > 0 and scans["chunk_seconds_max"].value <= scans["chunk_seconds_total"].value
    assert {"prepare_seconds", "scan_seconds", "columns_seconds", "merge_seconds"} <= set(findings)
    assert published["upload_seconds"].value >= published["seconds"].value > 0


def test_each_chunk_step_logs_its_rows_and_findings(uploads):
    with instance_of(uploads["home"]) as instance:
        lines = [e.user_message for e in instance.all_logs(uploads["runs"]["good"]) if e.step_key and
                 e.step_key.startswith("chunk_scans.scan_upload_chunk") and e.user_message.startswith("chunk ")]  # fmt: skip
    assert len(lines) == 5
    pattern = re.compile(r"chunk (\d)/5: rows (\d+)-(\d+) \((\d+) rows\), (\d+) accepted, (\d+) rejected, (\d+) messages, [0-9.]+s")
    found = sorted(tuple(int(g) for g in pattern.fullmatch(line).groups()) for line in lines)
    assert [f[:4] for f in found] == [(i, 10 * i - 9, min(10 * i, 45), min(10, 45 - 10 * (i - 1))) for i in range(1, 6)]
    assert found[-1][4:6] == (4, 1)  # the last row is the rejected one
    assert all(f[4] + f[5] == f[3] for f in found)


# --- the uploads views -----------------------------------------------------------------------


def test_the_uploads_view_lists_every_upload_with_its_ending(uploads):
    ids, runs = uploads["ids"], uploads["runs"]
    with instance_of(uploads["home"]) as instance:
        view = latest_materialization(instance, "uploads").metadata
    rows = {r.data["upload_id"]: r.data for r in view["uploads"].value.records}
    assert set(rows) == set(ids.values())
    gated = rows[ids["gated"]]
    assert gated["company"] == "acme" and gated["form_type"] == "employee_roster" and gated["file"] == "gated.csv"
    assert gated["status"] == "failed" and gated["rows"] == 26 and gated["rejected"] == "7.7%"
    assert gated["error"] == GATE_SENTENCE and gated["run"] == f"/runs/{runs['gated']}"
    assert gated["report"] == f"/assets/client_report?partition={ids['gated']}"
    assert rows[ids["good"]]["status"] == "completed" and rows[ids["good"]]["error"] == ""
    assert rows[ids["wrong_form_type"]]["form_type"] == "payroll"
    assert rows[ids["wrong_form_type"]]["error"].startswith("The file does not look like payroll")
    assert f"[run](/runs/{runs['gated']})" in view["uploads_with_links"].value
    assert view["completed_uploads"].value == 2 and view["failed_uploads"].value == 2


def test_each_form_types_view_plots_its_own_uploads(uploads):
    ids = uploads["ids"]
    with instance_of(uploads["home"]) as instance:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("employee_roster_uploads")), limit=10
        ).records
        payroll = latest_materialization(instance, "payroll_uploads").metadata
    points = [r.asset_materialization.metadata for r in reversed(records)]  # oldest first, one per upload
    assert [p["upload_id"].value for p in points] == [ids["good"], ids["gated"], ids["later"]]
    assert [p["rows"].value for p in points] == [45, 26, 20]
    assert [p["rejected_percent"].value for p in points] == [round(100 / 45, 3), round(200 / 26, 3), 0.0]
    assert all(p["seconds"].value > 0 and p["rows_per_second"].value > 0 for p in points)
    assert all({"prepare_seconds", "scan_seconds", "merge_seconds", "publish_seconds"} <= set(p) for p in points)
    assert len(points[-1]["uploads"].value.records) == 3  # the form type's uploads only
    assert [r.data["upload_id"] for r in payroll["uploads"].value.records] == [ids["wrong_form_type"]]


def test_the_views_can_be_refreshed_by_hand(uploads):
    with instance_of(uploads["home"]) as instance:
        result = materialize([upload_views], instance=instance,
                             resources={"ingest_settings": IngestSettings(home=str(uploads["home"]))})  # fmt: skip
        keys = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
        view = latest_materialization(instance, "uploads").metadata
    assert {"uploads", "employee_roster_uploads", "payroll_uploads", "claims_extract_uploads"} <= keys
    assert len(view["uploads"].value.records) == 4


def test_the_run_page_shows_the_sentence_first(uploads):
    """What the UI's run page reads: the failed step's error (its first red line) and the run's tags."""
    data = graphql(uploads["home"], """
        query ($runId: ID!) { runOrError(runId: $runId) { ... on Run { status tags { key value }
          eventConnection { events { __typename ... on ExecutionStepFailureEvent { stepKey
            error { message } failureMetadata { description } } } } } } }""", {"runId": uploads["runs"]["gated"]})
    run = data["runOrError"]
    assert run["status"] == "FAILURE"
    assert {"key": OUTCOME_TAG, "value": f"failed: {GATE_SENTENCE}"} in run["tags"]
    failures = [e for e in run["eventConnection"]["events"] if e["__typename"] == "ExecutionStepFailureEvent"]
    assert len(failures) == 1 and failures[0]["stepKey"] == "accepted_rows"
    assert failures[0]["error"]["message"] == f"dagster._core.definitions.events.Failure: {GATE_SENTENCE}\n"
    assert failures[0]["failureMetadata"]["description"] == GATE_SENTENCE
