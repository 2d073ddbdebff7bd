"""Real services for the distributed test, started on loopback in temp folders: Redis (the Celery
broker and result backend), a throwaway PostgreSQL cluster (the Dagster instance) and Celery workers.
Debian's redis-server and postgresql (scripts/setup.sh); PostgreSQL refuses to run as root, so as
root its cluster belongs to the `postgres` user the Debian package creates."""

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with code {process.returncode}:\n{log.read_text()[-3000:]}", pytrace=False)
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(
        f"{what} did not listen on port {port} within {START_SECONDS}s:\n{log.read_text()[-3000:]}", pytrace=False
    )


def stop(process: subprocess.Popen, seconds: float = 30) -> None:
    """SIGTERM to the process's session (a worker, a daemon and what it started), then SIGKILL if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.skip("redis-server is not installed (scripts/setup.sh installs it)")
    port, log = free_port(), folder / "redis.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([redis_server, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                    "--appendonly", "no", "--dir", str(folder)], cwd=folder, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    wait_for_port(port, process, log, "redis-server")
    return process, f"redis://127.0.0.1:{port}/0"


def start_postgres() -> tuple[subprocess.Popen, str, Path]:
    """A new cluster in a temp folder (trust authentication, loopback only) with a `dagster` database."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL is not installed (scripts/setup.sh installs Debian's postgresql)")
    bin_dir = Path(found[-1]).parent
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="ingest-pg-"))
    if os.geteuid() == 0:  # initdb and postgres refuse root
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log, port = folder / "data", folder / "postgres.log", free_port()
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "dagster", "-E", "UTF8"],
                   check=True, capture_output=True)  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen([*as_user, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
                                    "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"],
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    wait_for_port(port, process, log, "postgres")
    import psycopg2

    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            connection = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres")
            break
        except psycopg2.OperationalError:  # still starting
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("CREATE DATABASE dagster")
    connection.close()
    return process, f"postgresql+psycopg2://dagster@127.0.0.1:{port}/dagster", folder


@dataclass
class Worker:
    name: str
    folder: Path
    process: subprocess.Popen
    log: Path

    def kill_all(self) -> None:
        """kill -9 of the whole worker: its main process and its pool processes."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def start_worker(name: str, folder: Path, queues: list[str], environment: dict[str, str]) -> Worker:
    """`celery -A ingest_pipeline.celery_app worker` in `folder` (its working folder, HOME and TMPDIR),
    taking one task at a time from `queues`; returns once it is ready."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tmp").mkdir(exist_ok=True)
    log = folder / "worker.log"
    env = {**environment, "HOME": str(folder), "TMPDIR": str(folder / "tmp"), "PYTHONPATH": str(PROJECT)}
    env.pop("DAGSTER_HOME", None)
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "ingest_pipeline.celery_app", "worker",
                                    "-n", f"{name}@%h", "-Q", ",".join(queues), "--concurrency", "1",
                                    "--prefetch-multiplier", "1", "--pool", "prefork", "--without-gossip",
                                    "--without-mingle", "--loglevel", "INFO"],
                                   cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + START_SECONDS * 2
    while b" ready." not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"Celery worker {name} did not start:\n{log.read_text()[-3000:]}", pytrace=False)
        time.sleep(0.2)
    return Worker(name, folder, process, log)
