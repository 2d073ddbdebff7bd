"""Fixtures shared by the test suite."""

import contextlib
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerClient

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AZURITE_BLOB = PROJECT_ROOT / "tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_START_SECONDS = 60

# Set by `ingest-pipeline` for its runs (cli.configure_environment); tests restore them.
COMMAND_VARIABLES = ("INGEST_HOME", "INGEST_FILESPECS", "DAGSTER_HOME")


@pytest.fixture
def command_environment(monkeypatch) -> pytest.MonkeyPatch:
    """Calls of `ingest_pipeline.cli.main` may set the pipeline's variables; they are restored
    after the test. Returns monkeypatch for further settings."""
    for variable in COMMAND_VARIABLES:
        monkeypatch.setenv(variable, os.environ.get(variable, ""))
    return monkeypatch


@pytest.fixture
def home(tmp_path, command_environment) -> Path:
    """A fresh pipeline home for the command line."""
    return tmp_path / "home"


# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob service."""

    account_url: str
    account_name: str
    account_key: str
    connection_string: str

    def service_client(self) -> BlobServiceClient:
        """A client for the whole (emulated) storage account."""
        return BlobServiceClient(account_url=self.account_url, credential=self.account_key)

    def container_client(self, name: str | None = None, create: bool = True) -> ContainerClient:
        """A client for container `name` (default: a fresh unique one), created unless `create` is False."""
        client = ContainerClient(
            account_url=self.account_url,
            container_name=name or f"test-{uuid.uuid4().hex[:12]}",
            credential=self.account_key,
        )
        if create:
            try:
                client.create_container()
            except ResourceExistsError:
                pass
        return client


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Starts Azurite's blob service in memory on a free port for the session, and stops it after."""
    with running_azurite(tmp_path_factory.mktemp("azurite")) as service:
        yield service


@contextlib.contextmanager
def running_azurite(workdir: Path, on_disk: bool = False) -> Iterator[Azurite]:
    """Azurite's blob service on a free port, its log in `workdir`: in memory (at most 512 MB of
    blob data, the fast default for tests), or `on_disk`, its blobs in `workdir/data` with no limit
    but the disk's (for a benchmark's gigabytes)."""
    if not AZURITE_BLOB.exists():
        pytest.fail(f"Azurite is not installed ({AZURITE_BLOB} is missing); run scripts/setup.sh.", pytrace=False)
    log_path = workdir / "azurite.log"
    persistence = ["--location", str(workdir / "data")] if on_disk else ["--inMemoryPersistence", "--extentMemoryLimit", "512"]
    with open(log_path, "wb") as log:
        # Port 0: Azurite binds a free port and prints it, so there is no race for the port.
        process = subprocess.Popen(
            [
                str(AZURITE_BLOB),
                "--blobHost", "127.0.0.1",
                "--blobPort", "0",
                *persistence,
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",
            ],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        account_url = _wait_for_azurite(process, log_path)
        yield Azurite(
            account_url=account_url,
            account_name=AZURITE_ACCOUNT,
            account_key=AZURITE_KEY,
            connection_string=(
                f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                f"AccountKey={AZURITE_KEY};BlobEndpoint={account_url};"
            ),
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_azurite(process: subprocess.Popen, log_path: Path) -> str:
    """Waits until Azurite has printed its address and answers a request; returns the account url."""
    deadline = time.monotonic() + AZURITE_START_SECONDS
    account_url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Azurite exited with code {process.returncode}:\n{log_path.read_text()}", pytrace=False)
        if account_url is None:
            match = re.search(r"listens on (http://127\.0\.0\.1:\d+)", log_path.read_text())
            if match:
                account_url = f"{match.group(1)}/{AZURITE_ACCOUNT}"
        if account_url is not None:
            client = BlobServiceClient(account_url=account_url, credential=AZURITE_KEY, retry_total=0)
            try:
                client.get_service_properties(timeout=5)
                return account_url
            except AzureError:
                pass
            finally:
                client.close()
        time.sleep(0.1)
    pytest.fail(f"Azurite did not answer within {AZURITE_START_SECONDS}s:\n{log_path.read_text()}", pytrace=False)
