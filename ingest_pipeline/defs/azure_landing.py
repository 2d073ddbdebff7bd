"""The Azure side of the `landing` resource, imported only when `INGEST_STORAGE=azure`.

Kept apart from `resources.py` so that a deployment with a local landing folder never loads the
Azure SDK and dagster-azure (a fifth of a second of every command's, sensor's and run's start-up).
"""

from typing import Any

from azure.identity import DefaultAzureCredential
from azure.storage.blob import ContainerClient
from dagster_azure.blob import (
    AzureBlobStorageDefaultCredential,
    AzureBlobStorageKeyCredential,
    AzureBlobStorageResource,
    AzureBlobStorageSASTokenCredential,
)
from pydantic import Field

from ingest_pipeline.core.errors import StorageError
from ingest_pipeline.defs.resources import AZURE_DOWNLOAD_CHUNK_BYTES, LandingStorageResource


class AzureLandingStorageResource(LandingStorageResource):
    """Uploads land in an Azure Blob Storage container (`kind` 'azure')."""

    azure: AzureBlobStorageResource | None = Field(
        default=None, description="The Azure storage account; required when kind is 'azure'."
    )

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


def azure_landing_storage_resource(environ) -> AzureLandingStorageResource:
    """The Azure landing storage the environment describes (see `landing_storage_resource_from_env`)."""
    from dagster import EnvVar

    if environ.get("AZURE_STORAGE_KEY"):
        credential: Any = AzureBlobStorageKeyCredential(key=EnvVar("AZURE_STORAGE_KEY"))
    elif environ.get("AZURE_STORAGE_SAS_TOKEN"):
        credential = AzureBlobStorageSASTokenCredential(token=EnvVar("AZURE_STORAGE_SAS_TOKEN"))
    else:
        credential = AzureBlobStorageDefaultCredential()
    return AzureLandingStorageResource(
        kind="azure",
        container=environ.get("INGEST_AZURE_CONTAINER", "uploads"),
        prefix=environ.get("INGEST_AZURE_PREFIX", ""),
        azure=AzureBlobStorageResource(account_url=EnvVar("AZURE_STORAGE_ACCOUNT_URL"), credential=credential),
    )
