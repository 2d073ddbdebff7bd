"""Landing storage: where uploads arrive, as `<company_id>/<form_type>/<file>`.

Two backends behind one interface: a local folder (`<home>/landing/`, the embedded default) and
an Azure Blob Storage container, optionally under a prefix. Both list by prefix, so a landing
area holding years of history stays cheap to poll, and both read blobs as streams, never whole.

Names that start with `.` (in any path segment) or end with `.tmp` / `.part` are temporary or
hidden and never listed, by either backend: writers use them while a file is incomplete.

The landing storage trusts nothing below its root. Only regular files (block blobs) with plain
names are ever read: a local symbolic link (to a file or a folder, inside the root or not), a
FIFO, socket or device, a file with several hard links, a name with `.` / `..` / empty segments,
a backslash, a leading `/` or a control character, or a folder nested deeper than
`MAX_FOLDER_DEPTH`, is listed as *refused* (`BlobInfo.refused` says why) so that the sensor can
report it, and is never opened, hashed or followed. Local paths are opened one folder at a time
relative to the previous one without following links (`O_NOFOLLOW`), so a folder swapped for a
link between listing and opening is refused too, and what is read always lies under the root.
"""

import errno
import fcntl
import io
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from ingest_pipeline.core.errors import StorageError

if TYPE_CHECKING:  # the Azure SDK is imported where a blob is touched: a local landing folder never loads it
    from azure.core.exceptions import AzureError
    from azure.storage.blob import ContainerClient

AZURE_URI_SCHEME = "azure://"
_TEMP_SUFFIXES = (".tmp", ".part")
# Folders nested deeper than this below the landing root are reported, not walked: the layout
# needs two (`<company_id>/<form_type>/`), a few more let misplaced files be reported one by one,
# and a hostile tree of any depth costs one entry.
MAX_FOLDER_DEPTH = 8
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NO_FOLLOW_FOLDER_FLAGS = _FOLDER_FLAGS | os.O_NOFOLLOW
# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer before fstat can refuse it.
_NO_FOLLOW_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_LINK_ERRNOS = (errno.ELOOP, errno.ENOTDIR)  # what opening a link (or a file as a folder) without following gives


@dataclass(frozen=True)
class BlobInfo:
    """One listed blob.

    Attributes:
        path: Relative to the landing root (or the Azure prefix), '/'-separated,
            e.g. "acme/employee_roster/2024-01.csv". For a refused entry whose name cannot be
            shown as it is (not UTF-8, control characters), an escaped form of it.
        size: Size in bytes.
        etag: Changes whenever the content is replaced. Local: derived from size, mtime_ns and
            inode; Azure: the blob's ETag.
        last_modified: When the content was last written, timezone-aware UTC.
        metadata: The Azure blob's metadata; always empty locally.
        refused: Why the landing storage will not read this entry (a phrase such as "is a
            symbolic link"), or None for an ordinary blob. Refused entries are listed only to be
            reported; `open_blob` refuses them.
    """

    path: str
    size: int
    etag: str
    last_modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    refused: str | None = None


def parse_landing_path(path: str) -> tuple[str, str, str] | None:
    """Splits a landing path into (company_id, form_type, file_name).

    Returns None unless the path has exactly three non-empty '/'-separated parts, none of them
    `.` or `..`, and is a plain landing path (see `landing_path_problem`).
    """
    parts = path.split("/")
    if len(parts) != 3 or landing_path_problem(path) is not None:
        return None
    company_id, form_type, file_name = parts
    return company_id, form_type, file_name


def is_hidden_or_temp(path: str) -> bool:
    """Whether a landing path names a hidden or temporary file that listings skip.

    `.` and `..` segments are not hidden names but traversal: those paths are listed, as refused.
    """
    hidden = any(part.startswith(".") and part not in (".", "..") for part in path.split("/"))
    return hidden or path.endswith(_TEMP_SUFFIXES)


def landing_path_problem(path: str) -> str | None:
    """Why `path` is not a plain relative landing path (a phrase), or None when it is one.

    Plain: '/'-separated, not empty, no leading '/', no empty, `.` or `..` segment, no backslash,
    no control character, valid Unicode (a local name that is not UTF-8 is not).
    """
    if not path:
        return "has an empty name"
    if path.startswith("/"):
        return "starts with '/'"
    if "\\" in path:
        return "holds a backslash"
    parts = path.split("/")
    if any(part in (".", "..") for part in parts):
        return "has a '.' or '..' segment"
    if "" in parts:
        return "has an empty segment ('//' or a trailing '/')"
    if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in path):
        return "holds a control character"
    if any("\ud800" <= char <= "\udfff" for char in path):
        return "is not valid UTF-8"
    return None


def _displayable(name: str) -> str:
    """`name` with bytes that are not UTF-8 and control characters escaped, for logs and rows."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in text)


def _checked_parts(path: str) -> list[str]:
    """The segments of a plain landing path; StorageError for any other (it could leave the root)."""
    problem = landing_path_problem(path)
    if problem is not None:
        raise StorageError(f"The landing path {_displayable(path)!r} {problem}; it is not read.")
    return path.split("/")


class LandingStorage(Protocol):
    """Where uploads land; paths are relative to the landing root and '/'-separated."""

    def list_blobs(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Yields the blobs whose path starts with `prefix`, sorted by path, refused entries included."""
        ...

    def open_blob(self, path: str) -> BinaryIO:
        """Opens a blob for streaming binary reads; the caller closes it. Refused entries raise StorageError."""
        ...

    def source_uri(self, path: str) -> str:
        """The uri recorded in `ingest.uploads.source`; `open_source` opens it again."""
        ...

    def put_blob(self, path: str, data: bytes | BinaryIO, metadata: dict[str, str] | None = None) -> None:
        """Writes (or replaces) a blob; readers never see it half-written."""
        ...

    def stage_blob(self, path: str) -> "StagedBlob":
        """Starts writing a blob piece by piece; nothing is listed until `StagedBlob.commit`."""
        ...


class StagedBlob(Protocol):
    """A blob being written in pieces (an HTTP upload streamed in): invisible to listings until
    committed; `abort` (or never committing) leaves nothing the sensor would ingest."""

    def write(self, data: bytes) -> None:
        """Appends `data` (a piece of a few MiB: each may become one Azure block)."""
        ...

    def commit(self, metadata: dict[str, str] | None = None) -> None:
        """Makes the blob appear, whole, at its path (replacing one there)."""
        ...

    def abort(self) -> None:
        """Discards what was written; safe to call after a failed write or commit, or twice."""
        ...


def _local_etag(info: os.stat_result) -> str:
    return f"{info.st_size:x}-{info.st_mtime_ns:x}-{info.st_ino:x}"


def _local_modified(info: os.stat_result) -> datetime:
    # ctime too: `mv`, `cp -p` and `rsync -a` keep an old mtime, but a file arriving in the
    # folder always gets a new ctime.
    return datetime.fromtimestamp(max(info.st_mtime_ns, info.st_ctime_ns) / 1e9, tz=UTC)


def _local_refusal(info: os.stat_result) -> str | None:
    """Why an entry of this kind is never read (lstat result), or None for a single-named regular file."""
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link; only regular files inside the landing folder are read"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a FIFO, socket or device)"
    if info.st_nlink > 1:
        return (
            f"has {info.st_nlink} hard links, so its path does not say whose it is; "
            "copy or move the file in instead of linking it"
        )
    return None


@dataclass(frozen=True)
class LocalLandingStorage:
    """Landing storage in a local folder, e.g. `<home>/landing`.

    A missing root is an empty landing area, not an error. Metadata is not kept locally. The root
    itself is configuration and may be (or lie below) a symbolic link; nothing below it is followed.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).absolute())

    def list_blobs(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Yields the files under the root whose path starts with `prefix`, sorted by path.

        Only the deepest folder that `prefix` names in full is walked. Symbolic links are never
        followed: a link, or anything else that is not a single-named regular file or a folder,
        is listed as refused (see the module docstring), as is a folder nested deeper than
        `MAX_FOLDER_DEPTH` or one standing where the prefix needs a folder.
        """
        folder, _, _ = prefix.rpartition("/")
        if folder and landing_path_problem(folder) is not None:
            raise StorageError(f"The prefix {prefix!r} {landing_path_problem(folder)}; it cannot be listed.")
        found: list[BlobInfo] = []
        try:
            root_fd = os.open(self.root, _FOLDER_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as error:
            raise StorageError(f"Cannot list the landing folder {self.root}: {error.strerror or error}.") from error
        try:
            start_fd = self._open_prefix_folder(root_fd, folder, found)
            if start_fd is not None:
                self._walk(start_fd, folder, prefix, found)
        except OSError as error:
            where = self.root / folder if folder else self.root
            raise StorageError(f"Cannot list the landing folder {where}: {error.strerror or error}.") from error
        finally:
            os.close(root_fd)
        found.sort(key=lambda blob: blob.path)
        yield from found

    def _open_prefix_folder(self, root_fd: int, folder: str, found: list[BlobInfo]) -> int | None:
        """A new descriptor of `folder` (relative to the root), opened without following links;
        None when it does not exist, or when a link or file stands in its place (then listed as refused)."""
        current = os.dup(root_fd)
        relative = ""
        for name in folder.split("/") if folder else []:
            relative = f"{relative}/{name}" if relative else name
            try:
                child = os.open(name, _NO_FOLLOW_FOLDER_FLAGS, dir_fd=current)
            except FileNotFoundError:
                os.close(current)
                return None
            except OSError as error:
                if error.errno not in _LINK_ERRNOS:
                    os.close(current)
                    raise
                try:
                    info = os.stat(name, dir_fd=current, follow_symlinks=False)
                    found.append(self._refused(relative, info, _local_refusal(info) or "is not a folder"))
                except FileNotFoundError:
                    pass
                os.close(current)
                return None
            os.close(current)
            current = child
        return current

    def _walk(self, start_fd: int, start: str, prefix: str, found: list[BlobInfo]) -> None:
        """Depth first from the open folder `start_fd` (path `start`); closes every descriptor it holds.

        Only the folders on the current path are open at once (at most MAX_FOLDER_DEPTH + 1).
        """
        stack: list[tuple[int, str, list[os.DirEntry]]] = []
        try:
            stack.append((start_fd, start, self._entries(start_fd)))
            while stack:
                fd, relative, entries = stack[-1]
                if not entries:
                    os.close(fd)
                    stack.pop()
                    continue
                entry = entries.pop()
                path = f"{relative}/{entry.name}" if relative else entry.name
                if entry.name.startswith(".") or not (path.startswith(prefix) or prefix.startswith(path + "/")):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while listing
                name_problem = landing_path_problem(entry.name)
                if stat.S_ISDIR(info.st_mode):
                    depth = path.count("/") + 1
                    problem = name_problem or (
                        f"is a folder nested {depth} deep; the landing layout is <company_id>/<form_type>/<file>"
                        if depth > MAX_FOLDER_DEPTH
                        else None
                    )
                    if problem is not None:
                        found.append(self._refused(path, info, problem))
                        continue
                    try:
                        child = os.open(entry.name, _NO_FOLLOW_FOLDER_FLAGS, dir_fd=fd)
                    except FileNotFoundError:
                        continue
                    except OSError as error:
                        if error.errno in _LINK_ERRNOS:
                            continue  # swapped for a link since it was listed: the next listing reports it
                        raise
                    stack.append((child, path, self._entries(child)))
                    continue
                if entry.name.endswith(_TEMP_SUFFIXES):
                    continue
                problem = name_problem or _local_refusal(info)
                if problem is not None:
                    found.append(self._refused(path, info, problem))
                    continue
                found.append(
                    BlobInfo(path=path, size=info.st_size, etag=_local_etag(info), last_modified=_local_modified(info))
                )
        finally:
            for fd, _, _ in stack:
                os.close(fd)

    @staticmethod
    def _entries(fd: int) -> list[os.DirEntry]:
        with os.scandir(fd) as entries:
            return list(entries)

    @staticmethod
    def _refused(path: str, info: os.stat_result, problem: str) -> BlobInfo:
        return BlobInfo(path=_displayable(path), size=info.st_size, etag=_local_etag(info),
                        last_modified=_local_modified(info), refused=problem)  # fmt: skip

    def _open_folder(self, parts: list[str], create: bool = False) -> int:
        """A descriptor of the folder `parts` below the root, each opened without following links."""
        current = os.open(self.root, _FOLDER_FLAGS)
        try:
            for name in parts:
                if create:
                    try:
                        os.mkdir(name, dir_fd=current)
                    except FileExistsError:
                        pass
                child = os.open(name, _NO_FOLLOW_FOLDER_FLAGS, dir_fd=current)
                os.close(current)
                current = child
        except BaseException:
            os.close(current)
            raise
        return current

    def open_blob(self, path: str) -> BinaryIO:
        """Opens the file for buffered binary reads, never through a link and only if it is a
        single-named regular file below the root (StorageError otherwise)."""
        parts = _checked_parts(path)
        where = self.source_uri(path)
        try:
            folder = self._open_folder(parts[:-1])
        except FileNotFoundError as error:
            raise StorageError(f"The landed file {where} does not exist.") from error
        except OSError as error:
            if error.errno in _LINK_ERRNOS:
                raise StorageError(f"The landed file {where} is not read: a folder on its path is not a folder "
                                   "(a symbolic link or a file).") from error  # fmt: skip
            raise StorageError(f"Cannot read the landed file {where}: {error.strerror or error}.") from error
        try:
            fd = os.open(parts[-1], _NO_FOLLOW_FILE_FLAGS, dir_fd=folder)
        except FileNotFoundError as error:
            raise StorageError(f"The landed file {where} does not exist.") from error
        except OSError as error:
            if error.errno in _LINK_ERRNOS:
                raise StorageError(f"The landed file {where} is not read: it is a symbolic link.") from error
            raise StorageError(f"Cannot read the landed file {where}: {error.strerror or error}.") from error
        finally:
            os.close(folder)
        return _checked_regular_file(fd, where)

    def source_uri(self, path: str) -> str:
        """The file's absolute path (of a refused entry: where it is, for the record)."""
        return f"{self.root}{os.sep}{path}"

    def put_blob(self, path: str, data: bytes | BinaryIO, metadata: dict[str, str] | None = None) -> None:
        """Writes the file through a hidden `.part` file renamed into place; `metadata` is ignored.

        Folders are created (and entered) without following links, as `open_blob` reads them.
        """
        parts = _checked_parts(path)
        target = self.source_uri(path)
        part = f".{parts[-1]}.{uuid.uuid4().hex}.part"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            folder = self._open_folder(parts[:-1], create=True)
        except OSError as error:
            raise StorageError(f"Cannot write {target}: {error.strerror or error}.") from error
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=folder)
            with open(fd, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    out.write(data)
                else:
                    shutil.copyfileobj(data, out, 1024 * 1024)
            os.replace(part, parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
        except OSError as error:
            try:
                os.unlink(part, dir_fd=folder)
            except FileNotFoundError:
                pass
            raise StorageError(f"Cannot write {target}: {error.strerror or error}.") from error
        finally:
            os.close(folder)


    def stage_blob(self, path: str) -> "LocalStagedBlob":
        """A hidden `.<name>.<random>.part` file beside the target, renamed into place by `commit`."""
        parts = _checked_parts(path)
        target = self.source_uri(path)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            folder = self._open_folder(parts[:-1], create=True)
        except OSError as error:
            raise StorageError(f"Cannot write {target}: {error.strerror or error}.") from error
        part = f".{parts[-1]}.{uuid.uuid4().hex}.part"
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=folder)
        except OSError as error:
            os.close(folder)
            raise StorageError(f"Cannot write {target}: {error.strerror or error}.") from error
        return LocalStagedBlob(folder, fd, part, parts[-1], target)


class LocalStagedBlob:
    """A local file being written under a temporary name the landing listing skips."""

    def __init__(self, folder_fd: int, fd: int, part: str, name: str, target: str):
        self._folder, self._fd, self._part, self._name, self._target = folder_fd, fd, part, name, target
        self._open = True

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as error:
            raise StorageError(f"Cannot write {self._target}: {error.strerror or error}.") from error

    def commit(self, metadata: dict[str, str] | None = None) -> None:
        """fsyncs the file and renames it into place; `metadata` is not kept locally."""
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.replace(self._part, self._name, src_dir_fd=self._folder, dst_dir_fd=self._folder)
        except OSError as error:
            self.abort()
            raise StorageError(f"Cannot write {self._target}: {error.strerror or error}.") from error
        self._close_folder()

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._open:
            try:
                os.unlink(self._part, dir_fd=self._folder)
            except FileNotFoundError:
                pass
            self._close_folder()

    def _close_folder(self) -> None:
        if self._open:
            os.close(self._folder)
            self._open = False


def _checked_regular_file(fd: int, where: str) -> BinaryIO:
    """A buffered reader over `fd` if it is a single-named regular file; otherwise closes it and raises."""
    try:
        info = os.fstat(fd)
        problem = _local_refusal(info)
        if problem is not None:
            raise StorageError(f"The landed file {where} is not read: it {problem}.")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "rb")


def _open_local(file: Path) -> BinaryIO:
    """Opens a local file that is not in the landing folder (a command-line upload's resolved path),
    without following a link in its last part, and only if it is a regular file."""
    try:
        fd = os.open(file, _NO_FOLLOW_FILE_FLAGS)
    except FileNotFoundError as error:
        raise StorageError(f"The landed file {file} does not exist.") from error
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise StorageError(f"The landed file {file} is not read: it is a symbolic link.") from error
        raise StorageError(f"Cannot read the landed file {file}: {error.strerror or error}.") from error
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise StorageError(f"The landed file {file} is not read: it is not a regular file.")
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return open(fd, "rb")


class _ChunkStream(io.RawIOBase):
    """A read-only raw stream over an iterator of byte chunks (an Azure download)."""

    def __init__(self, chunks: Iterator[bytes], name: str) -> None:
        self._chunks = chunks
        self._name = name
        self._chunk = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - any writable buffer
        from azure.core.exceptions import AzureError, ResourceModifiedError

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


def _azure_reason(error: "AzureError") -> str:
    """The first line of an Azure error, without its trailing period."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__).rstrip(".")


class AzureBlobLandingStorage:
    """Landing storage in an Azure Blob Storage container, under an optional prefix.

    Only block blobs are listed: a block blob appears (or changes) atomically when its upload
    commits, whereas append and page blobs can be seen half-written.
    """

    def __init__(self, container_client: "ContainerClient", prefix: str = "") -> None:
        self.container_client = container_client
        stripped = prefix.strip("/")
        self.prefix = f"{stripped}/" if stripped else ""

    def _where(self) -> str:
        return f"{AZURE_URI_SCHEME}{self.container_client.account_name}/{self.container_client.container_name}/{self.prefix}"

    def list_blobs(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Yields the blobs whose path starts with `prefix`, in the service's (sorted) name order.

        A blob whose name is not a plain landing path (`landing_path_problem`: `..`, `.` or empty
        segments, a leading '/', a backslash, a control character) is listed as refused.
        """
        from azure.core.exceptions import AzureError, ResourceNotFoundError
        from azure.storage.blob import BlobType

        try:
            for blob in self.container_client.list_blobs(name_starts_with=self.prefix + prefix, include=["metadata"]):
                path = blob.name[len(self.prefix) :]
                if is_hidden_or_temp(path) or blob.blob_type != BlobType.BLOCKBLOB:
                    continue
                if (blob.metadata or {}).get("hdi_isfolder") == "true":
                    continue  # a folder marker of a hierarchical-namespace account
                problem = landing_path_problem(path)
                yield BlobInfo(
                    path=path if problem is None else _displayable(path),
                    size=blob.size,
                    etag=blob.etag,
                    last_modified=blob.last_modified.astimezone(UTC),
                    metadata=dict(blob.metadata or {}),
                    refused=None if problem is None else f"has a name that is not a plain path: it {problem}",
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
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        _checked_parts(path)
        name = self.prefix + path
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
        return self._where() + path

    def put_blob(self, path: str, data: bytes | BinaryIO, metadata: dict[str, str] | None = None) -> None:
        """Uploads (or replaces) a block blob with its metadata; it appears when the upload commits."""
        from azure.core.exceptions import AzureError

        _checked_parts(path)
        name = self.prefix + path
        try:
            self.container_client.upload_blob(name, data, overwrite=True, metadata=metadata)
        except AzureError as error:
            raise StorageError(f"Cannot write {self._where()}{path}: {_azure_reason(error)}.") from error


    def stage_blob(self, path: str) -> "AzureStagedBlob":
        """Blocks staged on the blob, committed as its block list by `commit`: until then the blob
        is not listed (the service drops uncommitted blocks after a week)."""
        _checked_parts(path)
        return AzureStagedBlob(self.container_client.get_blob_client(self.prefix + path), self._where() + path)


class AzureStagedBlob:
    """A block blob being staged block by block (each `write` one block)."""

    def __init__(self, blob_client, where: str):
        self._blob, self._where = blob_client, where
        self._blocks: list[str] = []

    def write(self, data: bytes) -> None:
        from azure.core.exceptions import AzureError

        block_id = f"{len(self._blocks):08d}".encode().hex()  # ids of one blob must all be as long
        try:
            self._blob.stage_block(block_id, bytes(data), length=len(data))
        except AzureError as error:
            raise StorageError(f"Cannot write {self._where}: {_azure_reason(error)}.") from error
        self._blocks.append(block_id)

    def commit(self, metadata: dict[str, str] | None = None) -> None:
        from azure.core.exceptions import AzureError
        from azure.storage.blob import BlobBlock

        try:
            self._blob.commit_block_list([BlobBlock(block_id=b) for b in self._blocks], metadata=metadata)
        except AzureError as error:
            raise StorageError(f"Cannot write {self._where}: {_azure_reason(error)}.") from error

    def abort(self) -> None:
        self._blocks = []  # uncommitted blocks are never listed; the service removes them


def parse_azure_uri(uri: str) -> tuple[str, str, str]:
    """Splits `azure://<account>/<container>/<blob name>` into its three parts."""
    account, _, rest = uri.removeprefix(AZURE_URI_SCHEME).partition("/")
    container, _, name = rest.partition("/")
    if not uri.startswith(AZURE_URI_SCHEME) or not (account and container and name):
        raise StorageError(f"{uri!r} is not an azure://<account>/<container>/<blob> uri.")
    return account, container, name


def open_source(
    uri: str,
    azure_container_client_factory: Callable[[str, str], "ContainerClient"] | None = None,
    landing_root: Path | None = None,
) -> BinaryIO:
    """Opens a recorded source uri (`LandingStorage.source_uri`) for streaming binary reads.

    Args:
        uri: An absolute local path, or `azure://<account>/<container>/<blob name>`.
        azure_container_client_factory: Makes the ContainerClient for (account name, container
            name); needed for azure:// uris.
        landing_root: The local landing folder: a path below it is opened as `LocalLandingStorage`
            opens it (no link followed, the whole way down), whatever replaced it since it was listed.
    """
    if not uri.startswith(AZURE_URI_SCHEME):
        if landing_root is not None:
            storage = LocalLandingStorage(landing_root)
            inside = f"{storage.root}{os.sep}"
            if uri.startswith(inside):
                return storage.open_blob(uri[len(inside) :])
        return _open_local(Path(uri))
    account, container, name = parse_azure_uri(uri)
    if azure_container_client_factory is None:
        raise StorageError(f"Cannot open {uri}: no Azure Blob Storage connection is configured.")
    storage = AzureBlobLandingStorage(azure_container_client_factory(account, container))
    return storage.open_blob(name)
