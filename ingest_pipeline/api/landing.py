"""Uploads received over HTTP, landed in the landing storage exactly as a dropped file lands.

The body is written piece by piece to a staged blob (a hidden `.part` file locally, uncommitted
blocks in Azure) while its SHA-256 is computed, and only committed, whole, once it has arrived:
the sensor never sees part of a file, and a client that goes away mid-upload leaves nothing it
would ingest. The upload id is the project's (`compute_upload_id`), so the sensor registers the
file under the id the client was given.

Each landed upload is also recorded in `<home>/api/landed/<upload_id>.json`, so that the API can
answer for it (status `received`) in the seconds before the sensor registers it, and knows a
second copy of the same bytes for what it is.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingest_pipeline.api.problems import Problem
from ingest_pipeline.core.storage import LandingStorage, StagedBlob, is_hidden_or_temp, landing_path_problem
from ingest_pipeline.core.uploads import FAILED, compute_upload_id

DEFAULT_FILENAME = "upload"
FILENAME_MAX_LENGTH = 200
# The pieces written to storage: memory per upload stays about this size, and an Azure blob of
# 50,000 blocks (the service's limit) may be 400 GB.
WRITE_BLOCK_BYTES = 8 * 1024 * 1024
RECEIVED = "received"  # the API's own status: landed, not registered by the sensor yet
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def landed_filename(filename: str | None) -> str:
    """The file's name in the landing storage: the client's name made one plain, visible path
    segment (letters, digits, `.`, `_`, `-`), or `upload`."""
    name = os.path.basename((filename or "").replace("\\", "/"))
    name = _UNSAFE_FILENAME.sub("_", name).lstrip(".")[:FILENAME_MAX_LENGTH]
    while name.endswith((".part", ".tmp")):
        name = name.rsplit(".", 1)[0]
    return name or DEFAULT_FILENAME


def landing_path(company_id: str, form_type: str, filename: str | None, received_at: datetime) -> str:
    """`<company_id>/<form_type>/<UTC time>-<random>-<name>`: a new name for every upload, so that
    no upload ever replaces a file whose run may still be reading it."""
    stamp = received_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = f"{company_id}/{form_type}/{stamp}-{secrets.token_hex(4)}-{landed_filename(filename)}"
    assert landing_path_problem(path) is None and not is_hidden_or_temp(path), path
    return path


@dataclass(frozen=True)
class LandedUpload:
    """What the API knows of an upload it landed (`<home>/api/landed/<upload_id>.json`)."""

    upload_id: str
    company_id: str
    form_type: str
    path: str  # in the landing storage
    source: str  # the uri the sensor records in ingest.uploads.source
    filename: str
    sha256: str
    bytes: int
    received_at: str  # ISO, UTC


class LandedRecords:
    """The `<home>/api/landed/` folder."""

    def __init__(self, home: Path):
        self.folder = Path(home) / "api" / "landed"
        self.locks = Path(home) / "api" / "locks"

    def get(self, upload_id: str) -> LandedUpload | None:
        if not re.fullmatch(r"[0-9a-f]{16}", upload_id):
            return None
        try:
            return LandedUpload(**json.loads((self.folder / f"{upload_id}.json").read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def all_of(self, company_id: str) -> list[LandedUpload]:
        found = []
        for path in self.folder.glob("*.json") if self.folder.exists() else []:
            record = self.get(path.stem)
            if record is not None and record.company_id == company_id:
                found.append(record)
        return found

    def put(self, record: LandedUpload) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temp = self.folder / f".{record.upload_id}.{secrets.token_hex(4)}.tmp"
        temp.write_text(json.dumps(asdict(record)))
        os.replace(temp, self.folder / f"{record.upload_id}.json")

    @contextlib.contextmanager
    def lock(self, upload_id: str) -> Iterator[None]:
        """Held while one upload id is checked for duplicates and committed: two identical uploads
        at once land one file."""
        self.locks.mkdir(parents=True, exist_ok=True)
        with open(self.locks / f"{upload_id}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class UploadReceiver:
    """One upload being received: `feed` the body's bytes as they arrive, then `finish` (or `abort`).

    Memory: at most WRITE_BLOCK_BYTES of the body are held at once.
    """

    def __init__(self, storage: LandingStorage, company_id: str, form_type: str, filename: str | None, max_bytes: int):
        self.storage, self.company_id, self.form_type, self.max_bytes = storage, company_id, form_type, max_bytes
        self.received_at = datetime.now(UTC)
        self.path = landing_path(company_id, form_type, filename, self.received_at)
        self.filename = self.path.rsplit("/", 1)[1]
        self._staged: StagedBlob | None = None
        self._buffer = bytearray()
        self._digest = hashlib.sha256()
        self.size = 0

    def feed(self, data: bytes) -> bytes | None:
        """Takes the next bytes of the body; returns a full block when one is ready to `write`.

        Raises Problem (413) once the body is over the limit.
        """
        self.size += len(data)
        if self.size > self.max_bytes:
            raise Problem(413, "upload-too-large", "Upload too large",
                                f"The upload is larger than this server's limit of {self.max_bytes} bytes "
                                "(INGEST_API_MAX_UPLOAD_BYTES).")  # fmt: skip
        self._digest.update(data)
        self._buffer += data
        if len(self._buffer) >= WRITE_BLOCK_BYTES:
            block, self._buffer = bytes(self._buffer), bytearray()
            return block
        return None

    def write(self, block: bytes) -> None:
        """Writes one block to the staged blob (blocking: call it from a worker thread)."""
        if self._staged is None:
            self._staged = self.storage.stage_blob(self.path)
        self._staged.write(block)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    @property
    def upload_id(self) -> str:
        return compute_upload_id(self.company_id, self.form_type, self.sha256)

    def finish(self, records: LandedRecords, existing_status: Callable[[str], str | None]) -> tuple[LandedUpload, bool]:
        """Commits the blob unless the same bytes already came for this company and form type.

        Args:
            records: The API's landed records.
            existing_status: upload id -> its status in ingest.uploads, or None when not registered.

        Returns (the upload, whether it was landed now); a duplicate leaves no second file.
        """
        if self.size == 0:
            raise Problem(400, "empty-upload", "Empty upload", "The request body is empty; send the file's bytes as the body.")
        if self._buffer:
            self.write(bytes(self._buffer))
            self._buffer = bytearray()
        upload_id = self.upload_id
        with records.lock(upload_id):
            status = existing_status(upload_id)
            earlier = records.get(upload_id)
            if (status is not None and status != FAILED) or (status is None and earlier is not None):
                self.abort()
                return earlier or self._record(upload_id), False
            self._staged.commit({"company_id": self.company_id, "form_type": self.form_type, "upload_id": upload_id})
            self._staged = None
            record = self._record(upload_id)
            records.put(record)
            return record, True

    def _record(self, upload_id: str) -> LandedUpload:
        return LandedUpload(upload_id=upload_id, company_id=self.company_id, form_type=self.form_type,
                            path=self.path, source=self.storage.source_uri(self.path), filename=self.filename,
                            sha256=self.sha256, bytes=self.size, received_at=self.received_at.isoformat())  # fmt: skip

    def abort(self) -> None:
        if self._staged is not None:
            self._staged.abort()
            self._staged = None
        self._buffer = bytearray()
