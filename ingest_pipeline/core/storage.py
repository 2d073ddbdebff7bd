"""Landing storage: where uploads arrive, as `<company_id>/<form_type>/<file>`.

Two backends behind one interface: a local folder (`<home>/landing/`, the embedded default) and
an Azure Blob Storage container, optionally under a prefix. Both list by prefix, so a landing
area holding years of history stays cheap to poll, and both read blobs as streams, never whole.

Names that start with `.` (in any path segment) or end with `.tmp` / `.part` are temporary or
hidden and never listed, by either backend: writers use them while a file is incomplete.
"""

import io
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobType, ContainerClient

from ingest_pipeline.core.errors import StorageError

AZURE_URI_SCHEME = "azure://"
_TEMP_SUFFIXES = (".tmp", ".part")


@dataclass(frozen=True)
class BlobInfo:
    """One listed blob.

    Attributes:
        path: Relative to the landing root (or the Azure prefix), '/'-separated,
            e.g. "acme/employee_roster/2024-01.csv".
        size: Size in bytes.
        etag: Changes whenever the content is replaced. Local: derived from size, mtime_ns and
            inode; Azure: the blob's ETag.
        last_modified: When the content was last written, timezone-aware UTC.
        metadata: The Azure blob's metadata; always empty locally.
    """

    path: str
    size: int
    etag: str
    last_modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)


def parse_landing_path(path: str) -> tuple[str, str, str] | None:
    """Splits a landing path into (company_id, form_type, file_name).

    Returns None unless the path has exactly three non-empty '/'-separated parts, none of them
    `.` or `..`.
    """
    parts = path.split("/")
    if len(parts) != 3 or any(part in ("", ".", "..") for part in parts):
        return None
    company_id, form_type, file_name = parts
    return company_id, form_type, file_name


def is_hidden_or_temp(path: str) -> bool:
    """Whether a landing path names a hidden or temporary file that listings skip."""
    return any(part.startswith(".") for part in path.split("/")) or path.endswith(_TEMP_SUFFIXES)


class LandingStorage(Protocol):
    """Where uploads land; paths are relative to the landing root and '/'-separated."""

    def list_blobs(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Yields the blobs whose path starts with `prefix`, sorted by path."""
        ...

    def open_blob(self, path: str) -> BinaryIO:
        """Opens a blob for streaming binary reads; the caller closes it."""
        ...

    def source_uri(self, path: str) -> str:
        """The uri recorded in `ingest.uploads.source`; `open_source` opens it again."""
        ...

    def put_blob(self, path: str, data: bytes | BinaryIO, metadata: dict[str, str] | None = None) -> None:
        """Writes (or replaces) a blob; readers never see it half-written."""
        ...


def _check_relative_path(path: str) -> str:
    """Rejects paths that could escape the landing root; those are bugs, not user errors."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{path!r} is not a relative '/'-separated landing path.")
    return path


@dataclass(frozen=True)
class LocalLandingStorage:
    """Landing storage in a local folder, e.g. `<home>/landing`.

    A missing root is an empty landing area, not an error. Metadata is not kept locally.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).absolute())

    def _file(self, path: str) -> Path:
        return self.root.joinpath(*_check_relative_path(path).split("/"))

    def list_blobs(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Yields the files under the root whose path starts with `prefix`, sorted by path.

        Only the deepest folder that `prefix` names in full is walked.
        """
        folder, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        found: list[BlobInfo] = []
        try:
            self._walk(start, folder, prefix, found)
        except OSError as error:
            raise StorageError(f"Cannot list the landing folder {start}: {error.strerror or error}.") from error
        found.sort(key=lambda blob: blob.path)
        yield from found

    def _walk(self, directory: Path, relative: str, prefix: str, found: list[BlobInfo]) -> None:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            path = f"{relative}/{entry.name}" if relative else entry.name
            if entry.name.startswith(".") or not (path.startswith(prefix) or prefix.startswith(path + "/")):
                continue
            try:
                if entry.is_dir():
                    self._walk(Path(entry.path), path, prefix, found)
                elif entry.is_file() and not entry.name.endswith(_TEMP_SUFFIXES):
                    stat = entry.stat()
                    found.append(
                        BlobInfo(
                            path=path,
                            size=stat.st_size,
                            etag=f"{stat.st_size:x}-{stat.st_mtime_ns:x}-{stat.st_ino:x}",
                            # ctime too: `mv`, `cp -p` and `rsync -a` keep an old mtime, but a file
                            # arriving in the folder always gets a new ctime.
                            last_modified=datetime.fromtimestamp(max(stat.st_mtime_ns, stat.st_ctime_ns) / 1e9, tz=UTC),
                        )
                    )
            except FileNotFoundError:
                continue  # removed while listing

    def open_blob(self, path: str) -> BinaryIO:
        """Opens the file for buffered binary reads."""
        return _open_local(self._file(path))

    def source_uri(self, path: str) -> str:
        """The file's absolute path."""
        return str(self._file(path))

    def put_blob(self, path: str, data: bytes | BinaryIO, metadata: dict[str, str] | None = None) -> None:
        """Writes the file through a hidden `.part` file renamed into place; `metadata` is ignored."""
        target = self._file(path)
        part = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(part, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    out.write(data)
                else:
                    shutil.copyfileobj(data, out, 1024 * 1024)
            os.replace(part, target)
        except OSError as error:
            part.unlink(missing_ok=True)
            raise StorageError(f"Cannot write {target}: {error.strerror or error}.") from error


def _open_local(file: Path) -> BinaryIO:
    try:
        return open(file, "rb")
    except FileNotFoundError as error:
        raise StorageError(f"The landed file {file} does not exist.") from error
    except OSError as error:
        raise StorageError(f"Cannot read the landed file {file}: {error.strerror or error}.") from error


class _ChunkStream(io.RawIOBase):
    """A read-only raw stream over an iterator of byte chunks (an Azure download)."""

    def __init__(self, chunks: Iterator[bytes], name: str) -> None:
        self._chunks = chunks
        self._name = name
        self._chunk = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - any writable buffer
        while not self._chunk:
            try:
                chunk = next(self._chunks, None)
            except ResourceModifiedError as error:
                raise StorageError(f"The blob {self._name} was replaced while it was being read.") from error
            except AzureError as error:
                raise StorageError(f"Cannot read the blob {self._name}: {_azure_reason(error)}.") from error
            if chunk is None:
                return 0
            self._chunk = memoryview(chunk)
        count = min(len(buffer), len(self._chunk))
        buffer[:count] = self._chunk[:count]
        self._chunk = self._chunk[count:]
        return count

    def close(self) -> None:
        self._chunk = memoryview(b"")
        close_chunks = getattr(self._chunks, "close", None)
        if close_chunks is not None:
            close_chunks()
        super().close()


def _azure_reason(error: AzureError) -> str:
    """The first line of an Azure error, without its trailing period."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__).rstrip(".")


class AzureBlobLandingStorage:
    """Landing storage in an Azure Blob Storage container, under an optional prefix.

    Only block blobs are listed: a block blob appears (or changes) atomically when its upload
    commits, whereas append and page blobs can be seen half-written.
    """

    def __init__(self, container_client: ContainerClient, prefix: str = "") -> None:
        self.container_client = container_client
        stripped = prefix.strip("/")
        self.prefix = f"{stripped}/" if stripped else ""

    def _where(self) -> str:
        return f"{AZURE_URI_SCHEME}{self.container_client.account_name}/{self.container_client.container_name}/{self.prefix}"

    def list_blobs(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Yields the blobs whose path starts with `prefix`, in the service's (sorted) name order."""
        try:
            for blob in self.container_client.list_blobs(name_starts_with=self.prefix + prefix, include=["metadata"]):
                path = blob.name[len(self.prefix) :]
                if is_hidden_or_temp(path) or blob.blob_type != BlobType.BLOCKBLOB:
                    continue
                if (blob.metadata or {}).get("hdi_isfolder") == "true":
                    continue  # a folder marker of a hierarchical-namespace account
                yield BlobInfo(
                    path=path,
                    size=blob.size,
                    etag=blob.etag,
                    last_modified=blob.last_modified.astimezone(UTC),
                    metadata=dict(blob.metadata or {}),
                )
        except ResourceNotFoundError as error:
            raise StorageError(f"The Azure container {self._where()} does not exist.") from error
        except AzureError as error:
            raise StorageError(f"Cannot list {self._where()}{prefix}: {_azure_reason(error)}.") from error

    def open_blob(self, path: str) -> BinaryIO:
        """Opens the blob as a buffered stream over `download_blob().chunks()`.

        The chunks are read with the ETag of the first response, so a blob replaced mid-read
        raises StorageError instead of mixing two versions.
        """
        name = self.prefix + _check_relative_path(path)
        where = f"{AZURE_URI_SCHEME}{self.container_client.account_name}/{self.container_client.container_name}/{name}"
        try:
            downloader = self.container_client.get_blob_client(name).download_blob(max_concurrency=1)
        except ResourceNotFoundError as error:
            raise StorageError(f"The blob {where} does not exist.") from error
        except AzureError as error:
            raise StorageError(f"Cannot read the blob {where}: {_azure_reason(error)}.") from error
        return io.BufferedReader(_ChunkStream(downloader.chunks(), where), buffer_size=1024 * 1024)  # type: ignore[return-value]

    def source_uri(self, path: str) -> str:
        """`azure://<account>/<container>/<prefix + path>`; the blob name is not percent-encoded."""
        return self._where() + _check_relative_path(path)

    def put_blob(self, path: str, data: bytes | BinaryIO, metadata: dict[str, str] | None = None) -> None:
        """Uploads (or replaces) a block blob with its metadata; it appears when the upload commits."""
        name = self.prefix + _check_relative_path(path)
        try:
            self.container_client.upload_blob(name, data, overwrite=True, metadata=metadata)
        except AzureError as error:
            raise StorageError(f"Cannot write {self._where()}{path}: {_azure_reason(error)}.") from error


def parse_azure_uri(uri: str) -> tuple[str, str, str]:
    """Splits `azure://<account>/<container>/<blob name>` into its three parts."""
    account, _, rest = uri.removeprefix(AZURE_URI_SCHEME).partition("/")
    container, _, name = rest.partition("/")
    if not uri.startswith(AZURE_URI_SCHEME) or not (account and container and name):
        raise StorageError(f"{uri!r} is not an azure://<account>/<container>/<blob> uri.")
    return account, container, name


def open_source(
    uri: str,
    azure_container_client_factory: Callable[[str, str], ContainerClient] | None = None,
) -> BinaryIO:
    """Opens a recorded source uri (`LandingStorage.source_uri`) for streaming binary reads.

    Args:
        uri: An absolute local path, or `azure://<account>/<container>/<blob name>`.
        azure_container_client_factory: Makes the ContainerClient for (account name, container
            name); needed for azure:// uris.
    """
    if not uri.startswith(AZURE_URI_SCHEME):
        return _open_local(Path(uri))
    account, container, name = parse_azure_uri(uri)
    if azure_container_client_factory is None:
        raise StorageError(f"Cannot open {uri}: no Azure Blob Storage connection is configured.")
    storage = AzureBlobLandingStorage(azure_container_client_factory(account, container))
    return storage.open_blob(name)
