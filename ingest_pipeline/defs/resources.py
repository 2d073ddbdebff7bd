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
from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from pydantic import Field

from ingest_pipeline.core.errors import StorageError
from ingest_pipeline.core.storage import AzureBlobLandingStorage, LandingStorage, LocalLandingStorage

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

# Blob downloads are streamed in pieces of this size (the SDK's default first request is 32 MiB).
AZURE_DOWNLOAD_CHUNK_BYTES = 4 * 1024 * 1024


class LandingStorageResource(ConfigurableResource):
    """Where uploads land: the home's local `landing/` folder or an Azure Blob Storage container.

    With `kind` 'azure' the resource is an `AzureLandingStorageResource` (defs/azure_landing.py),
    which adds the storage account; this class alone has none.
    """

    kind: str = Field(default="local", description="'local' (<home>/landing) or 'azure'.")
    container: str = Field(default="uploads", description="The Azure container the uploads land in.")
    prefix: str = Field(default="", description="The folder in the Azure container that holds the uploads.")

    def get_storage(self, home: Path) -> LandingStorage:
        """The landing storage this resource describes; `home` is the pipeline's home folder."""
        if self.kind == "local":
            return LocalLandingStorage(Path(home) / "landing")
        if self.kind == "azure":
            if getattr(self, "azure", None) is None:
                raise StorageError(
                    "Landing storage kind 'azure' needs an Azure storage account (AZURE_STORAGE_ACCOUNT_URL)."
                )
            return AzureBlobLandingStorage(self.container_client(), self.prefix)
        raise StorageError(f"Unknown landing storage kind {self.kind!r}; use 'local' or 'azure'.")

    def container_client(self, container: str | None = None) -> "ContainerClient":
        """A client for `container` (default: the landing container) of the Azure account."""
        raise StorageError("No Azure storage account is configured (AZURE_STORAGE_ACCOUNT_URL).")

    def azure_container_client_factory(self, account_name: str, container: str) -> "ContainerClient":
        """For `open_source`: a client for a container of the configured account."""
        client = self.container_client(container)
        if client.account_name != account_name:
            raise StorageError(
                f"The source is in Azure storage account {account_name!r}, but the pipeline is "
                f"configured for {client.account_name!r}."
            )
        return client


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
    from ingest_pipeline.defs.azure_landing import azure_landing_storage_resource

    return azure_landing_storage_resource(os.environ)
