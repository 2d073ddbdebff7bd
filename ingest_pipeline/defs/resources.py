"""Resources shared by the pipeline's assets and sensors.

Landing storage is chosen per deployment by one variable, `INGEST_STORAGE`:

- `local` (default): `<home>/landing/`, nothing to configure.
- `azure`: an Azure Blob Storage container, configured by environment variables read at run
  time through `EnvVar`:
    - `AZURE_STORAGE_ACCOUNT_URL`: e.g. `https://<account>.blob.core.windows.net`
      (Azurite: `http://127.0.0.1:10000/devstoreaccount1`).
    - `AZURE_STORAGE_KEY` (shared key) or `AZURE_STORAGE_SAS_TOKEN`; with neither set,
      `DefaultAzureCredential` (managed identity, `az login`, ...).
    - `INGEST_AZURE_CONTAINER` (default `uploads`) and `INGEST_AZURE_PREFIX` (default none):
      where in the account the uploads land.
"""

import os
from pathlib import Path
from typing import Any

from azure.identity import DefaultAzureCredential
from azure.storage.blob import ContainerClient
from dagster import ConfigurableResource, EnvVar
from dagster_azure.blob import (
    AzureBlobStorageDefaultCredential,
    AzureBlobStorageKeyCredential,
    AzureBlobStorageResource,
    AzureBlobStorageSASTokenCredential,
)
from pydantic import Field

from ingest_pipeline.core.errors import StorageError
from ingest_pipeline.core.storage import AzureBlobLandingStorage, LandingStorage, LocalLandingStorage

# Blob downloads are streamed in pieces of this size (the SDK's default first request is 32 MiB).
AZURE_DOWNLOAD_CHUNK_BYTES = 4 * 1024 * 1024


class LandingStorageResource(ConfigurableResource):
    """Where uploads land: the home's local `landing/` folder or an Azure Blob Storage container."""

    kind: str = Field(default="local", description="'local' (<home>/landing) or 'azure'.")
    container: str = Field(default="uploads", description="The Azure container the uploads land in.")
    prefix: str = Field(default="", description="The folder in the Azure container that holds the uploads.")
    azure: AzureBlobStorageResource | None = Field(
        default=None, description="The Azure storage account; required when kind is 'azure'."
    )

    def get_storage(self, home: Path) -> LandingStorage:
        """The landing storage this resource describes; `home` is the pipeline's home folder."""
        if self.kind == "local":
            return LocalLandingStorage(Path(home) / "landing")
        if self.kind == "azure":
            if self.azure is None:
                raise StorageError(
                    "Landing storage kind 'azure' needs an Azure storage account (AZURE_STORAGE_ACCOUNT_URL)."
                )
            return AzureBlobLandingStorage(self.container_client(), self.prefix)
        raise StorageError(f"Unknown landing storage kind {self.kind!r}; use 'local' or 'azure'.")

    def container_client(self, container: str | None = None) -> ContainerClient:
        """A client for `container` (default: the landing container) of the Azure account.

        Built here rather than through `AzureBlobStorageResource.get_client()`, whose client is
        closed when its context ends, while a landing storage lives as long as its caller.
        """
        if self.azure is None:
            raise StorageError("No Azure storage account is configured (AZURE_STORAGE_ACCOUNT_URL).")
        return ContainerClient(
            account_url=self.azure.account_url,
            container_name=container or self.container,
            credential=_azure_credential(self.azure),
            max_single_get_size=AZURE_DOWNLOAD_CHUNK_BYTES,
            max_chunk_get_size=AZURE_DOWNLOAD_CHUNK_BYTES,
        )

    def azure_container_client_factory(self, account_name: str, container: str) -> ContainerClient:
        """For `open_source`: a client for a container of the configured account."""
        client = self.container_client(container)
        if client.account_name != account_name:
            raise StorageError(
                f"The source is in Azure storage account {account_name!r}, but the pipeline is "
                f"configured for {client.account_name!r}."
            )
        return client


def _azure_credential(azure: AzureBlobStorageResource) -> Any:
    """The SDK credential for dagster-azure's credential config (as its own get_client does)."""
    credential = azure.credential
    if isinstance(credential, AzureBlobStorageKeyCredential):
        return credential.key
    if isinstance(credential, AzureBlobStorageSASTokenCredential):
        return credential.token
    if isinstance(credential, AzureBlobStorageDefaultCredential):
        return DefaultAzureCredential(**credential.kwargs)
    return None  # anonymous


def landing_storage_resource_from_env() -> LandingStorageResource:
    """The landing storage chosen by `INGEST_STORAGE` (`local`, the default, or `azure`).

    Which variables are set is read now, to pick the credential type; their values (the
    secrets) are only read at run time through `EnvVar`.
    """
    kind = os.environ.get("INGEST_STORAGE", "local").strip().lower() or "local"
    if kind == "local":
        return LandingStorageResource(kind="local")
    if kind != "azure":
        raise StorageError(f"INGEST_STORAGE is {kind!r}; use 'local' or 'azure'.")
    if os.environ.get("AZURE_STORAGE_KEY"):
        credential: Any = AzureBlobStorageKeyCredential(key=EnvVar("AZURE_STORAGE_KEY"))
    elif os.environ.get("AZURE_STORAGE_SAS_TOKEN"):
        credential = AzureBlobStorageSASTokenCredential(token=EnvVar("AZURE_STORAGE_SAS_TOKEN"))
    else:
        credential = AzureBlobStorageDefaultCredential()
    return LandingStorageResource(
        kind="azure",
        container=os.environ.get("INGEST_AZURE_CONTAINER", "uploads"),
        prefix=os.environ.get("INGEST_AZURE_PREFIX", ""),
        azure=AzureBlobStorageResource(account_url=EnvVar("AZURE_STORAGE_ACCOUNT_URL"), credential=credential),
    )
