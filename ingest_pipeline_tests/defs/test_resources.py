"""The landing storage resource: local by default, Azure from EnvVar-supplied settings."""

from pathlib import Path

import dagster as dg
import pytest

from ingest_pipeline.core.errors import StorageError
from ingest_pipeline.core.storage import AzureBlobLandingStorage, LocalLandingStorage, open_source
from ingest_pipeline.defs.resources import LandingStorageResource, landing_storage_resource_from_env

AZURE_VARIABLES = ["AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ["INGEST_STORAGE", "INGEST_AZURE_CONTAINER", "INGEST_AZURE_PREFIX", *AZURE_VARIABLES]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _storage_in_an_asset(resource: LandingStorageResource, home: Path, run) -> object:
    """Runs `run(storage)` inside an asset, as the pipeline will, and returns what it returned."""
    seen = {}

    @dg.asset
    def probe(landing_storage: LandingStorageResource) -> None:
        seen["value"] = run(landing_storage.get_storage(home))

    assert dg.materialize([probe], resources={"landing_storage": resource}).success
    return seen["value"]


def test_local_by_default(clean_env, tmp_path):
    resource = landing_storage_resource_from_env()
    assert resource.kind == "local"
    storage = resource.get_storage(tmp_path)
    assert isinstance(storage, LocalLandingStorage)
    assert storage.root == tmp_path / "landing"

    def put_and_list(storage):
        storage.put_blob("acme/payroll/a.csv", b"a")
        return [b.path for b in storage.list_blobs()]

    assert _storage_in_an_asset(resource, tmp_path, put_and_list) == ["acme/payroll/a.csv"]
    assert (tmp_path / "landing" / "acme" / "payroll" / "a.csv").read_bytes() == b"a"


def test_unknown_storage_kind_is_a_storage_error(clean_env):
    clean_env.setenv("INGEST_STORAGE", "s3")
    with pytest.raises(StorageError, match="INGEST_STORAGE"):
        landing_storage_resource_from_env()


@pytest.mark.azurite
def test_azure_from_env_against_azurite(clean_env, azurite, tmp_path):
    container = azurite.container_client()
    clean_env.setenv("INGEST_STORAGE", "azure")
    clean_env.setenv("INGEST_AZURE_CONTAINER", container.container_name)
    clean_env.setenv("INGEST_AZURE_PREFIX", "landing")
    clean_env.setenv("AZURE_STORAGE_ACCOUNT_URL", azurite.account_url)
    clean_env.setenv("AZURE_STORAGE_KEY", azurite.account_key)

    resource = landing_storage_resource_from_env()
    # The secrets stay EnvVars in the definitions; only a run resolves them.
    assert isinstance(resource.azure.account_url, dg.EnvVar)
    assert isinstance(resource.azure.credential.key, dg.EnvVar)

    def round_trip(storage):
        assert isinstance(storage, AzureBlobLandingStorage)
        storage.put_blob("acme/payroll/a.csv", b"id\n1\n", metadata={"uploaded_by": "jane"})
        listed = [(b.path, b.size, b.metadata) for b in storage.list_blobs("acme/")]
        uri = storage.source_uri("acme/payroll/a.csv")
        return listed, uri

    listed, uri = _storage_in_an_asset(resource, tmp_path, round_trip)
    assert listed == [("acme/payroll/a.csv", 5, {"uploaded_by": "jane"})]
    assert uri == f"azure://devstoreaccount1/{container.container_name}/landing/acme/payroll/a.csv"
    assert container.download_blob("landing/acme/payroll/a.csv").readall() == b"id\n1\n"

    with resource.process_config_and_initialize_cm() as initialized:
        with open_source(uri, azure_container_client_factory=initialized.azure_container_client_factory) as stream:
            assert stream.read() == b"id\n1\n"
        with pytest.raises(StorageError, match="storage account 'otheraccount'"):
            initialized.azure_container_client_factory("otheraccount", container.container_name)


@pytest.mark.azurite
def test_azure_with_sas_token_against_azurite(clean_env, azurite, tmp_path):
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    container = azurite.container_client()
    token = generate_account_sas(
        account_name=azurite.account_name,
        account_key=azurite.account_key,
        resource_types=ResourceTypes(container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    clean_env.setenv("INGEST_STORAGE", "azure")
    clean_env.setenv("INGEST_AZURE_CONTAINER", container.container_name)
    clean_env.setenv("AZURE_STORAGE_ACCOUNT_URL", azurite.account_url)
    clean_env.setenv("AZURE_STORAGE_SAS_TOKEN", token)

    resource = landing_storage_resource_from_env()

    def round_trip(storage):
        storage.put_blob("acme/payroll/s.csv", b"s")
        return [b.path for b in storage.list_blobs()]

    assert _storage_in_an_asset(resource, tmp_path, round_trip) == ["acme/payroll/s.csv"]


def test_azure_without_an_account_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match="AZURE_STORAGE_ACCOUNT_URL"):
        LandingStorageResource(kind="azure").get_storage(tmp_path)


def test_definitions_load_with_the_resource(clean_env):
    defs = dg.Definitions(resources={"landing_storage": landing_storage_resource_from_env()})
    defs.get_repository_def().load_all_definitions()
