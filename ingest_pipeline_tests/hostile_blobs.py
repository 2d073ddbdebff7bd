"""Blobs with names the Azure SDK will not write: `..` and `.` segments, sent as the REST API allows.

The SDK (and HTTP clients) normalise `a/../b` before sending it, but the service (and Azurite)
store `%2E%2E` as a literal `..` segment, so a hostile writer can create such names. Tests use
this to put them in Azurite, exactly as such a writer would.
"""

import datetime as dt
import urllib.parse
import urllib.request

from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

from ingest_pipeline_tests.conftest import Azurite

REST_VERSION = "2021-08-06"


def put_blob_named(
    azurite: Azurite, container: ContainerClient, name: str, data: bytes, metadata: dict[str, str] | None = None
) -> None:
    """Creates the block blob `name` verbatim (dots and backslashes percent-encoded) with a SAS PUT."""
    sas = generate_container_sas(
        azurite.account_name,
        container.container_name,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True, write=True, create=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    encoded = urllib.parse.quote(name, safe="/").replace(".", "%2E")
    headers = {"x-ms-blob-type": "BlockBlob", "x-ms-version": REST_VERSION}
    headers.update({f"x-ms-meta-{key}": value for key, value in (metadata or {}).items()})
    request = urllib.request.Request(
        f"{azurite.account_url}/{container.container_name}/{encoded}?{sas}", data=data, method="PUT", headers=headers
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201, response.status
