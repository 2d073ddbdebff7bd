"""Per-company API keys, stored hashed in `<home>/api/keys.json`.

A key is `ik_<key_id>_<secret>`: `key_id` (8 hex characters) names it in listings and for
revoking; the secret is 32 random bytes (URL-safe base64). Only the SHA-256 of the whole key is
kept, so the file holds nothing that opens the API; a key is shown once, when it is created.

A JSON file rather than a warehouse table: creating or revoking a key then needs neither the
warehouse writer's lock (it never waits for a merge) nor a running pipeline, and the server
checks a key without touching DuckDB on every request. Writes go through a temporary file
renamed into place, under an flock, so a reader never sees half a file and two commands never
lose each other's key. The server re-reads the file when it changes, so a revoked key stops
working at once, without a restart.
"""

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingest_pipeline.core.companies import company_id_problem
from ingest_pipeline.core.errors import IngestError

KEY_PREFIX = "ik_"
FILE_VERSION = 1


class ApiKeyError(IngestError):
    """An API key command cannot do what was asked (unknown key id, bad company id)."""


@dataclass(frozen=True)
class ApiKey:
    """One stored key: never the key itself, only its hash."""

    key_id: str
    company_id: str
    sha256: str
    created_at: str
    revoked_at: str | None = None
    note: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def keys_path(home: Path) -> Path:
    return Path(home) / "api" / "keys.json"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ApiKeyStore:
    """The keys of one home (`<home>/api/keys.json`)."""

    def __init__(self, home: Path):
        self.path = keys_path(home)
        self._cache: tuple[tuple[int, int, int] | None, list[ApiKey]] = (None, [])
        self._cache_lock = threading.Lock()

    # --- commands -------------------------------------------------------------------------

    def create(self, company_id: str, note: str | None = None) -> tuple[ApiKey, str]:
        """A new key for `company_id`: (its record, the key itself, to show once)."""
        problem = company_id_problem(company_id)
        if problem is not None:
            raise ApiKeyError(problem)
        with self._locked() as keys:
            used = {k.key_id for k in keys}
            key_id = secrets.token_hex(4)
            while key_id in used:
                key_id = secrets.token_hex(4)
            secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
            record = ApiKey(key_id=key_id, company_id=company_id, sha256=_hash(secret), created_at=_now(), note=note)
            keys.append(record)
        return record, secret

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by its id; revoking a revoked key again changes nothing."""
        with self._locked() as keys:
            for index, key in enumerate(keys):
                if key.key_id == key_id:
                    if key.active:
                        keys[index] = ApiKey(**{**asdict(key), "revoked_at": _now()})
                    return keys[index]
        raise ApiKeyError(f"no API key {key_id!r} in {self.path} (`ingest-pipeline api-key list` shows them)")

    def all(self) -> list[ApiKey]:
        return self._read()

    # --- the server -----------------------------------------------------------------------

    def company_of(self, presented: str) -> str | None:
        """The company an active key belongs to, or None for any other text.

        Every stored hash is compared in constant time, so the answer's timing says nothing about
        which keys exist or how close a guess came.
        """
        digest = _hash(presented)
        found = None
        for key in self._cached():
            if hmac.compare_digest(key.sha256, digest) and key.active:
                found = key.company_id
        return found

    def _cached(self) -> list[ApiKey]:
        try:
            info = os.stat(self.path)
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        except FileNotFoundError:
            stamp = None
        with self._cache_lock:
            if self._cache[0] != stamp or stamp is None:
                self._cache = (stamp, self._read())
            return self._cache[1]

    # --- the file -------------------------------------------------------------------------

    def _read(self) -> list[ApiKey]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            raise ApiKeyError(f"the API key file {self.path} cannot be read: {error}") from None
        return [ApiKey(**entry) for entry in data.get("keys", [])]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[ApiKey]]:
        """The keys, to change in place; written back atomically when the block ends without error."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                keys = self._read()
                yield keys
                temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    with open(fd, "w") as out:
                        json.dump({"version": FILE_VERSION, "keys": [asdict(k) for k in keys]}, out, indent=1)
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(temp, self.path)
                except BaseException:
                    temp.unlink(missing_ok=True)
                    raise
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
