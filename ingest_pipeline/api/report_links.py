"""Reports handed out as download links that expire, when the landing storage is Azure.

A report workbook is written to a blob of the reports container, `<prefix><company_id>/<UTC
time>-<random>-<name>.xlsx`, and the answer is that blob's URL with a read-only SAS that expires
after `INGEST_API_REPORT_LINK_SECONDS`. The SAS is signed with the storage account's shared key
(`AZURE_STORAGE_KEY`) or, when the server signs in as an identity, with a user delegation key
(the identity then needs "Storage Blob Delegator" besides write access to the container).

The reports container is kept apart from the landing area the sensor watches (the server refuses
to start when its prefix lies inside it). A report blob carries its link's expiry in its metadata
(`expires_at`) and is deleted by the next report of its company once that has passed.
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest_pipeline.core.errors import StorageError

logger = logging.getLogger("ingest_pipeline.api")

REPORT_LINK_SECONDS_ENV = "INGEST_API_REPORT_LINK_SECONDS"
DEFAULT_REPORT_LINK_SECONDS = 3600
REPORT_CONTAINER_ENV = "INGEST_API_REPORT_CONTAINER"
DEFAULT_REPORT_CONTAINER = "reports"
REPORT_PREFIX_ENV = "INGEST_API_REPORT_PREFIX"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CLOCK_SKEW = timedelta(minutes=5)  # a link works from a little before it was made: clocks differ


@dataclass(frozen=True)
class ReportLink:
    url: str
    expires_at: datetime  # UTC


class AzureReportLinks:
    """Publishes report files to a container and signs read-only links to them."""

    def __init__(self, service_client, container: str, prefix: str, lifetime_seconds: int, account_key: str | None):
        """
        Args:
            service_client: A `BlobServiceClient` of the storage account.
            container: The reports container (created when missing).
            prefix: A folder inside it ('' for its root).
            lifetime_seconds: How long a link works.
            account_key: The account's shared key; None: sign with a user delegation key of the
                client's identity.
        """
        self.service, self.container_name = service_client, container
        self.container = service_client.get_container_client(container)
        stripped = prefix.strip("/")
        self.prefix = f"{stripped}/" if stripped else ""
        self.lifetime = timedelta(seconds=lifetime_seconds)
        self._key = account_key
        self._container_ready = False

    def publish(self, file: Path, company_id: str, filename: str) -> ReportLink:
        """Uploads `file` as the company's report `filename` and returns a link that expires.

        Raises:
            StorageError: The container cannot be written or the link cannot be signed.
        """
        from azure.core.exceptions import AzureError, ResourceExistsError
        from azure.storage.blob import ContentSettings

        now = datetime.now(UTC)
        expires = now + self.lifetime
        name = f"{self.prefix}{company_id}/{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(8)}-{filename}"
        disposition = f'attachment; filename="{filename}"'
        try:
            if not self._container_ready:
                try:
                    self.container.create_container()
                except ResourceExistsError:
                    pass
                self._container_ready = True
            with open(file, "rb") as data:
                self.container.upload_blob(name, data, overwrite=True, metadata={
                    "company_id": company_id, "expires_at": expires.isoformat()},
                    content_settings=ContentSettings(content_type=XLSX_MEDIA_TYPE, content_disposition=disposition))  # fmt: skip
            sas = self._sign(name, now, expires, disposition)
        except AzureError as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
            raise StorageError(f"Cannot publish the report to the container {self.container_name}: {reason}.") from error
        self._remove_expired(company_id, now)
        return ReportLink(f"{self.container.get_blob_client(name).url}?{sas}", expires)

    def _sign(self, name: str, now: datetime, expires: datetime, disposition: str) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        delegation = None
        if self._key is None:
            delegation = self.service.get_user_delegation_key(now - CLOCK_SKEW, expires)
        return generate_blob_sas(
            account_name=self.service.account_name, container_name=self.container_name, blob_name=name,
            account_key=self._key, user_delegation_key=delegation, permission=BlobSasPermissions(read=True),
            start=now - CLOCK_SKEW, expiry=expires, content_disposition=disposition, content_type=XLSX_MEDIA_TYPE,
        )  # fmt: skip

    def _remove_expired(self, company_id: str, now: datetime) -> None:
        """Deletes the company's report blobs whose links have expired; a failure only costs a log line."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            for blob in self.container.list_blobs(name_starts_with=f"{self.prefix}{company_id}/", include=["metadata"]):
                try:
                    expired = datetime.fromisoformat((blob.metadata or {}).get("expires_at", "")) < now
                except ValueError:
                    continue  # not a report this server wrote
                if expired:
                    try:
                        self.container.delete_blob(blob.name)
                    except ResourceNotFoundError:
                        pass  # another request removed it
        except AzureError:
            logger.warning("could not remove expired reports of %s from %s", company_id, self.container_name, exc_info=True)


def check_apart_from_landing(report_container: str, report_prefix: str, landing_container: str, landing_prefix: str) -> str | None:
    """Why reports written there would land where the sensor looks (a sentence), or None."""
    report = f"{report_prefix.strip('/')}/" if report_prefix.strip("/") else ""
    landing = f"{landing_prefix.strip('/')}/" if landing_prefix.strip("/") else ""
    if report_container == landing_container and report.startswith(landing):
        return (f"{REPORT_CONTAINER_ENV}={report_container} with {REPORT_PREFIX_ENV}={report_prefix!r} puts reports "
                f"inside the landing area the sensor watches; use another container or a prefix outside "
                f"INGEST_AZURE_PREFIX={landing_prefix!r}.")  # fmt: skip
    return None
