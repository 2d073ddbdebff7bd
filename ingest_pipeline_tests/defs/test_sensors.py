"""The upload sensor against a local landing folder, and end to end through Azurite."""

import threading
import uuid
from pathlib import Path
from typing import BinaryIO

import duckdb
import pytest
from dagster import DagsterInstance, DagsterRun, SensorResult, build_sensor_context, materialize, validate_run_config

from ingest_pipeline.core.discovery import UNKNOWN
from ingest_pipeline.core.prepare import TARGET_CHUNK_BYTES
from ingest_pipeline.core.storage import LocalLandingStorage
from ingest_pipeline.core.uploads import COMPLETED, FAILED, QUEUED, compute_upload_id, get_upload, update_upload
from ingest_pipeline.core.warehouse import Warehouse
from ingest_pipeline.definitions import defs
from ingest_pipeline.defs.assets import ingest_assets
from ingest_pipeline.defs.resources import LandingStorageResource, landing_storage_resource_from_env
from ingest_pipeline.defs.sensors import BLOB_HASHES, upload_run_config, upload_sensor
from ingest_pipeline.defs.settings import PROJECT_ROOT, IngestSettings

ROSTER_HEADER = (
    "employee_id,first_name,last_name,email,phone,state,zip,role,department,hire_date,salary,hours_per_week,"
    "manager_id,status,notes"
)
ROSTER_ROWS = 25  # one of them rejected (state XX): 4%, within the roster's quality gate of 5%
ROSTER = "\n".join(
    [ROSTER_HEADER]
    + [f"E{i:08d},Ann,Lee,u{i}@example.com,+1-555-0100,{'XX' if i == 3 else 'CA'},94110,analyst,Sales,2020-02-29,"
       f"51000.50,40,E00000001,active," for i in range(1, ROSTER_ROWS + 1)]
) + "\n"  # fmt: skip


class SensorHarness:
    """Ticks `upload_sensor` as the daemon would, keeping its cursor and applying its partition requests."""

    def __init__(self, home: Path, landing: LandingStorageResource | None = None) -> None:
        self.home = home
        self.instance = DagsterInstance.ephemeral()
        self.resources = {
            "ingest_settings": IngestSettings(home=str(home), filespecs=str(PROJECT_ROOT / "filespecs")),
            "landing": landing or LandingStorageResource(kind="local"),
        }
        self.cursor: str | None = None

    def tick(self) -> SensorResult:
        with build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources) as context:
            result = upload_sensor(context)
        assert isinstance(result, SensorResult)
        self.cursor = result.cursor
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return result

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.home / "warehouse.duckdb")


def land(home: Path, path: str, data: str | bytes) -> Path:
    """Writes a file into the home's landing folder, as `cp` would (in place, not renamed)."""
    target = home / "landing" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data.encode() if isinstance(data, str) else data)
    return target


def roster_upload_id(data: str = ROSTER, company: str = "acme") -> str:
    import hashlib

    return compute_upload_id(company, "employee_roster", hashlib.sha256(data.encode()).hexdigest())


def logged_warnings(capsys: pytest.CaptureFixture) -> list[str]:
    """The warnings the sensor logged since the last call (Dagster's console logger writes to stderr)."""
    return [line for line in capsys.readouterr().err.splitlines() if " - WARNING - " in line]


@pytest.fixture
def harness(tmp_path) -> SensorHarness:
    return SensorHarness(tmp_path / "home")


def test_a_dropped_file_settles_then_launches_one_run(harness):
    file = land(harness.home, "acme/employee_roster/roster.csv", ROSTER)
    first = harness.tick()
    assert not first.run_requests and "waiting for 1 blob(s) to settle" in first.skip_reason.skip_message

    second = harness.tick()
    upload_id = roster_upload_id()
    [request] = second.run_requests
    assert request.run_key == request.partition_key == upload_id
    assert request.tags["ingest/source"] == str(file)
    assert (request.tags["ingest/company_id"], request.tags["ingest/form_type"]) == ("acme", "employee_roster")
    assert request.tags["ingest/blob_path"] == "acme/employee_roster/roster.csv"
    assert request.run_config == {"execution": {"config": {"in_process": {}}}}  # smaller than one chunk
    [partitions] = second.dynamic_partitions_requests
    assert (partitions.partitions_def_name, list(partitions.partition_keys)) == ("uploads", [upload_id])
    upload = get_upload(harness.warehouse, upload_id)
    assert (upload["status"], upload["source"], upload["bytes"]) == (QUEUED, str(file), len(ROSTER))

    third = harness.tick()
    assert not third.run_requests and third.skip_reason.skip_message == "no new uploads"


def test_the_same_bytes_at_another_path_run_once(harness):
    land(harness.home, "acme/employee_roster/a.csv", ROSTER)
    land(harness.home, "acme/employee_roster/b.csv", ROSTER)
    harness.tick()
    result = harness.tick()
    assert [r.run_key for r in result.run_requests] == [roster_upload_id()]  # two blobs, one upload, one run

    # Later, while the first run is still waiting in the run queue: no second run.
    upload_id = roster_upload_id()
    harness.instance.add_run(DagsterRun(job_name="ingest_upload", run_id=str(uuid.uuid4()),
                                        tags={"dagster/run_key": upload_id, "dagster/partition": upload_id}))  # fmt: skip
    land(harness.home, "acme/employee_roster/c.csv", ROSTER)
    harness.tick()
    assert not harness.tick().run_requests

    # And after it completed: no second run either, and the first upload's row is untouched.
    update_upload(harness.warehouse, upload_id, status=COMPLETED)
    land(harness.home, "acme/employee_roster/d.csv", ROSTER)
    harness.tick()
    assert not harness.tick().run_requests

    upload = get_upload(harness.warehouse, upload_id)
    assert upload["status"] == COMPLETED and upload["source"].endswith("acme/employee_roster/a.csv")


def test_a_failed_upload_landing_again_is_launched_again_under_a_new_run_key(harness):
    """After a crash (or any failure) the client, or an operator, drops the file again: it runs again."""
    land(harness.home, "acme/employee_roster/a.csv", ROSTER)
    harness.tick()
    [first] = harness.tick().run_requests
    upload_id = roster_upload_id()
    harness.instance.add_run(DagsterRun(job_name="ingest_upload", run_id=str(uuid.uuid4()),
                                        tags={"dagster/run_key": first.run_key, "dagster/partition": upload_id}))  # fmt: skip
    update_upload(harness.warehouse, upload_id, status=FAILED, error="The run stopped unexpectedly.")
    land(harness.home, "acme/employee_roster/a-again.csv", ROSTER)
    harness.tick()
    [again] = harness.tick().run_requests
    assert (again.partition_key, again.run_key) == (upload_id, f"{upload_id}.2")
    assert get_upload(harness.warehouse, upload_id)["status"] == QUEUED


def test_an_unknown_form_type_is_reported_once_and_recorded_failed(harness, capsys):
    land(harness.home, "acme/timesheets/t.csv", "a,b\n1,2\n")
    land(harness.home, "stray.csv", "x\n")
    harness.tick()
    capsys.readouterr()
    result = harness.tick()
    assert not result.run_requests and not result.dynamic_partitions_requests
    warnings = logged_warnings(capsys)
    assert len(warnings) == 2
    assert any("acme/timesheets/t.csv is not ingested: unknown form type 'timesheets'" in w for w in warnings)
    assert any(
        "stray.csv is not ingested: the path 'stray.csv' is not <company_id>/<form_type>/<file>" in w for w in warnings
    )
    with duckdb.connect(str(harness.home / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute(
            "SELECT company_id, form_type, status, error FROM ingest.uploads ORDER BY form_type"
        ).fetchall()
    assert [(c, f, s) for c, f, s, _ in rows] == [("acme", "timesheets", FAILED), ("unknown", "unknown", FAILED)]
    assert rows[0][3].startswith("Not ingested: unknown form type 'timesheets'")
    # Hashed (a backfill can run it once the filespec exists) vs. reported from its path alone.
    with duckdb.connect(str(harness.home / "warehouse.duckdb"), read_only=True) as connection:
        hashed = connection.execute("SELECT form_type, sha256 IS NOT NULL FROM ingest.uploads ORDER BY 1").fetchall()
    assert hashed == [("timesheets", True), ("unknown", False)]

    for _ in range(2):
        assert not harness.tick().run_requests
    assert not logged_warnings(capsys)


def test_a_file_still_growing_is_not_launched(harness):
    file = land(harness.home, "acme/employee_roster/big.csv", ROSTER[:100])
    harness.tick()
    with open(file, "ab") as out:
        out.write(ROSTER[100:200].encode())
    result = harness.tick()
    assert not result.run_requests and "big.csv" in result.skip_reason.skip_message
    with open(file, "ab") as out:
        out.write(ROSTER[200:].encode())
    assert not harness.tick().run_requests
    [request] = harness.tick().run_requests  # unchanged for a whole tick: complete
    assert request.run_key == roster_upload_id()


def test_hidden_and_partial_files_are_ignored(harness):
    land(harness.home, "acme/employee_roster/roster.csv.part", ROSTER)
    land(harness.home, "acme/employee_roster/.roster.csv", ROSTER)
    harness.tick()
    result = harness.tick()
    assert not result.run_requests and result.skip_reason.skip_message == "no new uploads"


def test_the_run_config_picks_the_executor_by_size(monkeypatch):
    monkeypatch.setenv("INGEST_IN_PROCESS_MAX_BYTES", str(TARGET_CHUNK_BYTES))
    job = defs.resolve_job_def("ingest_upload")
    small = validate_run_config(job, upload_run_config(TARGET_CHUNK_BYTES - 1))["execution"]
    large = validate_run_config(job, upload_run_config(TARGET_CHUNK_BYTES))["execution"]
    assert "in_process" in small["ingest_local_executor"]
    assert "multiprocess" in large["ingest_local_executor"]
    assert upload_sensor in defs.sensors


HASH_GATE = threading.Event()


class GatedStorage(LocalLandingStorage):
    """A landing folder whose blobs cannot be read until HASH_GATE opens: a very large blob."""

    def open_blob(self, path: str) -> BinaryIO:
        assert HASH_GATE.wait(30)
        return super().open_blob(path)


class GatedLanding(LandingStorageResource):
    def get_storage(self, home: Path) -> GatedStorage:
        return GatedStorage(Path(home) / "landing")


def test_a_blob_slow_to_hash_is_hashed_in_the_background_across_ticks(tmp_path, monkeypatch):
    monkeypatch.setenv("INGEST_SENSOR_MAX_HASH_SECONDS_PER_TICK", "0.2")
    HASH_GATE.clear()
    harness = SensorHarness(tmp_path / "home", GatedLanding())
    land(harness.home, "acme/employee_roster/huge.csv", ROSTER)
    harness.tick()
    try:
        result = harness.tick()  # settled, but its hash takes longer than the tick may wait
        assert not result.run_requests
        assert result.skip_reason.skip_message == f"still hashing acme/employee_roster/huge.csv ({len(ROSTER)} bytes)"
        assert not harness.tick().run_requests
    finally:
        HASH_GATE.set()
    [request] = harness.tick().run_requests
    assert request.run_key == roster_upload_id()
    assert len(BLOB_HASHES) == 0


def use_azure_landing(azurite, monkeypatch):
    """Point the landing storage at a fresh Azurite container, under the prefix `landing`; returns it."""
    container = azurite.container_client()
    for name, value in {
        "INGEST_STORAGE": "azure", "INGEST_AZURE_CONTAINER": container.container_name, "INGEST_AZURE_PREFIX": "landing",
        "AZURE_STORAGE_ACCOUNT_URL": azurite.account_url, "AZURE_STORAGE_KEY": azurite.account_key,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    return container


@pytest.mark.azurite
def test_a_blob_in_azure_is_ingested_end_to_end(azurite, tmp_path, monkeypatch):
    container = use_azure_landing(azurite, monkeypatch)
    container.upload_blob("landing/acme/employee_roster/x.csv", ROSTER.encode())
    # Metadata overrides the path: this one is globex's, whatever folder it landed in.
    container.upload_blob(
        "landing/inbox/y.csv", ROSTER.encode(), metadata={"company_id": "globex", "form_type": "employee_roster"}
    )

    harness = SensorHarness(tmp_path / "home", landing_storage_resource_from_env())
    assert not harness.tick().run_requests  # settling
    requests = {r.tags["ingest/company_id"]: r for r in harness.tick().run_requests}
    assert set(requests) == {"acme", "globex"}
    request = requests["acme"]
    assert request.run_key == roster_upload_id()
    assert (
        request.tags["ingest/source"]
        == f"azure://devstoreaccount1/{container.container_name}/landing/acme/employee_roster/x.csv"
    )
    assert requests["globex"].run_key == roster_upload_id(company="globex")

    for request in requests.values():
        result = materialize(ingest_assets, partition_key=request.partition_key, resources=harness.resources,
                             instance=harness.instance, tags=request.tags)  # fmt: skip
        assert result.success
    upload = get_upload(harness.warehouse, request.run_key)
    counts = (upload["status"], upload["rows_total"], upload["rows_accepted"], upload["rows_rejected"])
    assert counts == (COMPLETED, 25, 24, 1)
    assert upload["source"] == request.tags["ingest/source"]
    with duckdb.connect(str(harness.home / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute(
            "SELECT _upload_id, count(*), count(DISTINCT employee_id), bool_or(employee_id = 'E00000003') "
            "FROM results.employee_roster GROUP BY 1"
        ).fetchall()
    assert sorted(rows) == sorted(
        [(roster_upload_id(), 24, 24, False), (roster_upload_id(company="globex"), 24, 24, False)]
    )
    assert not harness.tick().run_requests


# --- Hostile entries: never read, never attributed to another company, reported once -----------


class RecordingStorage(LocalLandingStorage):
    """The home's landing folder, remembering every path the sensor opened."""

    opened: list[str] = []

    def open_blob(self, path: str) -> BinaryIO:
        RecordingStorage.opened.append(path)
        return super().open_blob(path)


class RecordingLanding(LandingStorageResource):
    def get_storage(self, home: Path) -> RecordingStorage:
        return RecordingStorage(Path(home) / "landing")


def uploads_rows(harness: SensorHarness) -> list[tuple]:
    with duckdb.connect(str(harness.home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute(
            "SELECT company_id, form_type, status, source, sha256, error FROM ingest.uploads ORDER BY source"
        ).fetchall()


def test_links_in_the_landing_folder_are_reported_once_and_never_read(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INGEST_SENSOR_MAX_BLOBS_PER_TICK", "2")  # the two real uploads, whatever else lies there
    RecordingStorage.opened = []
    harness = SensorHarness(tmp_path / "home", RecordingLanding())
    landing = harness.home / "landing"
    outside = tmp_path / "outside" / "roster.csv"
    outside.parent.mkdir()
    outside.write_text(ROSTER.replace("Ann", "Zed"))
    # Hostile entries first (the oldest, so they come first in the tick's order).
    (landing / "acme" / "employee_roster").mkdir(parents=True)
    (landing / "acme" / "employee_roster" / "outside.csv").symlink_to(outside)
    (landing / "evilco").mkdir()
    (landing / "evilco" / "employee_roster").symlink_to(Path("..") / "globex" / "employee_roster")
    (landing / "acme" / "etc").symlink_to("/etc")
    land(harness.home, "globex/employee_roster/roster.csv", ROSTER)
    land(harness.home, "acme/employee_roster/roster.csv", ROSTER)

    harness.tick()
    capsys.readouterr()
    result = harness.tick()
    assert {(r.tags["ingest/company_id"], r.tags["ingest/blob_path"]) for r in result.run_requests} == {
        ("acme", "acme/employee_roster/roster.csv"), ("globex", "globex/employee_roster/roster.csv")}  # fmt: skip
    assert sorted(RecordingStorage.opened) == ["acme/employee_roster/roster.csv", "globex/employee_roster/roster.csv"]
    warnings = logged_warnings(capsys)
    assert len(warnings) == 3 and all("is a symbolic link" in w for w in warnings)
    link = "is a symbolic link; only regular files inside the landing folder are read"
    assert [row for row in uploads_rows(harness) if row[2] == FAILED] == [
        ("acme", "employee_roster", FAILED, f"{landing}/acme/employee_roster/outside.csv", None,
         f"Not ingested: 'acme/employee_roster/outside.csv' {link}."),
        (UNKNOWN, UNKNOWN, FAILED, f"{landing}/acme/etc", None, f"Not ingested: 'acme/etc' {link}."),
        (UNKNOWN, UNKNOWN, FAILED, f"{landing}/evilco/employee_roster", None,
         f"Not ingested: 'evilco/employee_roster' {link}."),
    ]  # fmt: skip
    assert not any(row[0] == "evilco" for row in uploads_rows(harness))

    for _ in range(2):
        assert not harness.tick().run_requests
    assert not logged_warnings(capsys)
    assert len(uploads_rows(harness)) == 5
    assert len(RecordingStorage.opened) == 2


def test_a_landed_file_swapped_for_a_link_before_its_run_is_not_read(harness, tmp_path):
    file = land(harness.home, "acme/employee_roster/roster.csv", ROSTER)
    harness.tick()
    [request] = harness.tick().run_requests
    secret = tmp_path / "secret.csv"
    secret.write_text(ROSTER)  # the same bytes: only the link gives it away
    file.unlink()
    file.symlink_to(secret)
    result = materialize(ingest_assets, partition_key=request.partition_key, resources=harness.resources,
                         instance=harness.instance, tags=request.tags, raise_on_error=False)  # fmt: skip
    assert not result.success
    upload = get_upload(harness.warehouse, request.run_key)
    assert upload["status"] == FAILED and "is not read: it is a symbolic link" in upload["error"]


@pytest.mark.azurite
def test_hostile_blob_names_and_metadata_in_azure_are_never_attributed_to_another_company(
    azurite, tmp_path, monkeypatch, capsys
):
    from ingest_pipeline_tests.hostile_blobs import put_blob_named

    container = use_azure_landing(azurite, monkeypatch)
    hostile_names = [
        "landing/evilco/../globex/employee_roster/a.csv",
        "landing/evilco/./employee_roster/b.csv",
        "landing/evilco//employee_roster/c.csv",
        "landing//globex/employee_roster/d.csv",
        "landing\\evilco\\..\\globex\\employee_roster\\e.csv",
    ]
    for index, name in enumerate(hostile_names):
        put_blob_named(azurite, container, name, ROSTER.encode() + b"\n" * (index + 1),
                       metadata={"company_id": "globex", "form_type": "employee_roster"})  # fmt: skip
    container.upload_blob("landing/evilco/employee_roster/f.csv", ROSTER.encode(), metadata={"company_id": "../globex"})
    container.upload_blob("landing/inbox/g.csv", ROSTER.encode() + b"\n\n\n\n\n\n\n",
                          metadata={"company_id": "..", "form_type": "employee_roster"})  # fmt: skip
    container.upload_blob("landing/evilco/employee_roster/h.csv", ROSTER.encode() + b"\n" * 8,
                          metadata={"company_id": "evilco", "form_type": "../employee_roster"})  # fmt: skip
    container.upload_blob("landing/evilco/employee_roster/ok.csv", ROSTER.encode())

    harness = SensorHarness(tmp_path / "home", landing_storage_resource_from_env())
    harness.tick()
    capsys.readouterr()
    [request] = harness.tick().run_requests
    assert (request.tags["ingest/company_id"], request.tags["ingest/blob_path"]) == ("evilco", "evilco/employee_roster/ok.csv")
    assert request.run_key == roster_upload_id(company="evilco")
    assert len(logged_warnings(capsys)) == 8
    failed = [row for row in uploads_rows(harness) if row[2] == FAILED]
    assert len(failed) == 8
    assert {company for company, *_ in failed} == {UNKNOWN, "evilco"}
    assert all(row[0] == UNKNOWN for row in failed if "evilco/employee_roster/h.csv" not in row[3])
    assert all(form_type in (UNKNOWN, "employee_roster") for _, form_type, *_ in failed)
    by_source = {row[3].split("/landing/", 1)[1]: row for row in failed}
    for name in hostile_names:  # never read: no hash, and the reason says why
        shown = name.replace("\\", "/").removeprefix("landing/")
        assert by_source[shown][4] is None and "has a name that is not a plain path" in by_source[shown][5]
    assert "company id '../globex' must be" in by_source["evilco/employee_roster/f.csv"][5]
    assert "company id '..' must be" in by_source["inbox/g.csv"][5]
    assert "unknown form type '../employee_roster'" in by_source["evilco/employee_roster/h.csv"][5]
    assert all(row[4] is None for row in failed)  # ruled out by name or metadata: none was read
    assert not harness.tick().run_requests and not logged_warnings(capsys)
