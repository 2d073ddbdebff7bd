"""The DuckDB warehouse: the contract's tables (shared/spec/outputs.md) and safe access to them.

DuckDB lets one process at a time open a database file for writing, and a reader cannot open it
while a writer holds it. Every connection here therefore takes an advisory lock on a file beside
the database first: writers exclusively, readers shared. Dagster's `duckdb_writer` pool keeps the
heavy merge steps to one at a time; this lock is what makes the short status writes from other
steps, the sensor and the command line wait their turn instead of failing.

Programs outside the pipeline (an analyst's `duckdb -readonly`, a dashboard) do not take that
lock, only DuckDB's own: while one of them has the file open, a writer cannot. Writers therefore
retry DuckDB's "Could not set lock" for up to `INGEST_WAREHOUSE_BUSY_SECONDS` (default 120) before
giving up with one sentence; `ingest-pipeline sql` is a reader that takes the pipeline's lock and
so never gets in a writer's way.

Each use attaches the file to an in-memory DuckDB that the process keeps (`_Engines`) and
detaches it afterwards, which releases DuckDB's lock and checkpoints as closing a connection
would: starting a DuckDB costs ~21 ms (its catalog of built-in functions), attaching a file ~2 ms,
and a small upload's run uses the warehouse some twenty times.
"""

import contextlib
import fcntl
import itertools
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from ingest_pipeline.core.errors import WarehouseError
from ingest_pipeline.core.sql import checked_memory_limit, open_duckdb, sql_text

SCHEMA_DDL = """
CREATE SCHEMA IF NOT EXISTS ingest;
CREATE SCHEMA IF NOT EXISTS results;
CREATE TABLE IF NOT EXISTS ingest.uploads (
    upload_id VARCHAR PRIMARY KEY,
    company_id VARCHAR NOT NULL,
    form_type VARCHAR NOT NULL,
    filespec_version INTEGER,
    source VARCHAR NOT NULL,
    sha256 VARCHAR,
    bytes BIGINT,
    received_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,
    rows_total BIGINT,
    rows_accepted BIGINT,
    rows_rejected BIGINT,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    error VARCHAR,
    -- extensions (outputs.md allows extending): where the upload stands and how far along it is
    stage VARCHAR,
    chunks_total INTEGER,
    chunks_done INTEGER,
    run_id VARCHAR
);
CREATE TABLE IF NOT EXISTS ingest.messages (
    upload_id VARCHAR NOT NULL,
    row_number BIGINT,
    line_number BIGINT,
    field VARCHAR,
    rule VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    value VARCHAR,
    message VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS ingest.rejects (
    upload_id VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    line_number BIGINT NOT NULL,
    raw VARCHAR
);
CREATE TABLE IF NOT EXISTS ingest.column_summary (
    upload_id VARCHAR NOT NULL,
    field VARCHAR NOT NULL,
    rows BIGINT,
    nulls BIGINT,
    distinct_values BIGINT,
    errors BIGINT,
    warnings BIGINT,
    min_value VARCHAR,
    max_value VARCHAR
);
CREATE TABLE IF NOT EXISTS ingest.webhook_deliveries (
    upload_id VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    url VARCHAR NOT NULL,
    status_code INTEGER,
    error VARCHAR,
    seconds DOUBLE,
    -- which delivery the attempt belongs to: attempt numbers restart with each delivery
    delivery_id VARCHAR,
    event VARCHAR
);
CREATE TABLE IF NOT EXISTS ingest.webhook_outbox (
    -- one row per finished-upload event, kept until delivered or given up (core/outbox.py)
    delivery_id VARCHAR PRIMARY KEY,
    upload_id VARCHAR NOT NULL,
    event VARCHAR NOT NULL,
    payload VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,
    last_error VARCHAR,
    last_attempt_at TIMESTAMP,
    claim_token VARCHAR,
    claimed_until TIMESTAMP
);
CREATE TABLE IF NOT EXISTS ingest.stage_metrics (
    upload_id VARCHAR NOT NULL,
    stage VARCHAR NOT NULL,
    chunk INTEGER,
    started_at TIMESTAMP,
    seconds DOUBLE,
    cpu_seconds DOUBLE,
    peak_rss_bytes BIGINT,
    rows BIGINT
);
"""

UPLOAD_COLUMNS = (
    "upload_id, company_id, form_type, filespec_version, source, sha256, bytes, received_at, status, "
    "rows_total, rows_accepted, rows_rejected, started_at, finished_at, error"
)

# The column stage, merge and publish may work on files far larger than memory; DuckDB spills to
# its temp folder beyond this limit (and uses somewhat more than it). With 512MB the column step
# peaked at 1,046 MiB RSS on a 73M-row upload; 400MB keeps a DuckDB step under 1 GiB and costs no
# time at 5M rows (a bigger limit only spills less on very large uploads).
DEFAULT_MEMORY_LIMIT = "400MB"
LOCK_TIMEOUT_SECONDS = 3600.0
BUSY_SECONDS_ENV = "INGEST_WAREHOUSE_BUSY_SECONDS"
DEFAULT_BUSY_SECONDS = 120.0
_DUCKDB_LOCK_CONFLICT = "Could not set lock"


def busy_seconds() -> float:
    """How long a writer retries a warehouse that another program holds open (INGEST_WAREHOUSE_BUSY_SECONDS)."""
    try:
        return max(0.0, float(os.environ.get(BUSY_SECONDS_ENV) or DEFAULT_BUSY_SECONDS))
    except ValueError:
        return DEFAULT_BUSY_SECONDS


class Warehouse:
    """The DuckDB file under the pipeline's home, opened briefly and under a lock for each use."""

    def __init__(self, path: Path, memory_limit: str = DEFAULT_MEMORY_LIMIT):
        self.path = Path(path)
        self.memory_limit = checked_memory_limit(memory_limit)
        self._schema_ready = False

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def connect(self, write: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection held under the file lock; writers also make sure the tables exist."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock_file:
            _lock(lock_file, fcntl.LOCK_EX if write or not self.path.exists() else fcntl.LOCK_SH)
            try:
                if not write and not self.path.exists():
                    write = True  # first use: create the file and tables so readers see empty tables
                with self._open(read_only=not write) as connection:
                    if write and not self._schema_ready:
                        connection.execute(SCHEMA_DDL)
                        self._schema_ready = True
                    yield connection
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def lock_free_within(self, seconds: float) -> bool:
        """Whether the pipeline's lock could be shared within `seconds` (a writer holds it exclusively)."""
        if not self.lock_path.exists():
            return True
        deadline = time.monotonic() + seconds
        with open(self.lock_path, "a+") as lock_file:
            while True:
                try:
                    fcntl.flock(lock_file, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(0.1)
                    continue
                fcntl.flock(lock_file, fcntl.LOCK_UN)
                return True

    @contextlib.contextmanager
    def _open(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the file attached, waiting (with backoff, within `busy_seconds`) while a
        program outside the pipeline holds DuckDB's own lock on it."""
        engine = _ENGINES.engine(self.memory_limit, self.path.parent / "duckdb_tmp")
        try:
            alias = self._attach(engine, read_only)
            try:
                connection = engine.cursor()
                try:
                    connection.execute(f"USE {alias}")
                    yield connection
                finally:
                    connection.close()  # rolls back whatever the caller left open
            finally:
                _ENGINES.detach(engine, self.path, read_only)
        finally:
            _ENGINES.release(engine)

    def _attach(self, engine: "_Engine", read_only: bool) -> str:
        deadline = time.monotonic() + busy_seconds()
        pause = 0.05
        while True:
            try:
                return _ENGINES.attach(engine, self.path, read_only)
            except duckdb.IOException as error:
                if _DUCKDB_LOCK_CONFLICT not in str(error):
                    raise
                if time.monotonic() + pause > deadline:
                    holder = re.search(r"held in (.+?) \(PID (\d+)\)", str(error))
                    by = f" by {holder.group(1)} (pid {holder.group(2)})" if holder else ""
                    raise WarehouseError(
                        f"the warehouse {self.path} was held open{by} for more than {busy_seconds():.0f}s, so the "
                        f"pipeline could not {'read' if read_only else 'write'} it; close long-lived connections "
                        "to it, or query it with `ingest-pipeline sql`"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside BEGIN/COMMIT (ROLLBACK on any error)."""
        with self.connect(write=True) as connection:
            connection.execute("BEGIN TRANSACTION")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")


class _Engine:
    """An in-memory DuckDB of this process, the warehouse files attached to it now, and how many
    connections are using it."""

    def __init__(self, memory_limit: str, temp_directory: Path):
        # No cache of the Parquet files read (DuckDB's default): it would keep work files in this
        # process's memory after the step that read them.
        self.database = open_duckdb(memory_limit=memory_limit, temp_directory=temp_directory,
                                    enable_external_file_cache=False)  # fmt: skip
        self.attached: dict[tuple[Path, bool], list] = {}  # (file, read_only) -> [alias, users]
        self.users = 0
        self.last_used = time.monotonic()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.database.cursor()


class _Engines:
    """The process's in-memory DuckDBs, one per memory limit and temp folder (in practice one per
    home). A file is attached while it is in use and detached when its last user is done, so
    DuckDB's lock on it is held no longer than a connection of its own would hold it. Readers of
    one file in this process share its attachment; a writer never meets one, as the warehouse's
    file lock keeps writers and readers apart."""

    MAX_IDLE = 4  # engines kept with nothing attached (a test process visits many homes)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[tuple[str, Path], _Engine] = {}
        self._aliases = itertools.count(1)

    def engine(self, memory_limit: str, temp_directory: Path) -> _Engine:
        with self._lock:
            key = (memory_limit, temp_directory)
            engine = self._engines.get(key)
            if engine is None:
                self._close_idle(keep=self.MAX_IDLE - 1)
                engine = self._engines[key] = _Engine(memory_limit, temp_directory)
            engine.users += 1
            engine.last_used = time.monotonic()
            return engine

    def release(self, engine: _Engine) -> None:
        with self._lock:
            engine.users -= 1

    def attach(self, engine: _Engine, path: Path, read_only: bool) -> str:
        with self._lock:
            entry = engine.attached.get((path, read_only))
            if entry is None:
                alias = f"warehouse_{next(self._aliases)}"
                mode = " (READ_ONLY)" if read_only else ""
                with engine.cursor() as cursor:  # the file name is a quoted literal, never SQL
                    cursor.execute(f"ATTACH {sql_text(str(path.resolve()))} AS {alias}{mode}")
                entry = engine.attached[(path, read_only)] = [alias, 0]
            entry[1] += 1
            return entry[0]

    def detach(self, engine: _Engine, path: Path, read_only: bool) -> None:
        with self._lock:
            entry = engine.attached[(path, read_only)]
            entry[1] -= 1
            if entry[1] == 0:
                del engine.attached[(path, read_only)]
                with engine.cursor() as cursor:
                    cursor.execute(f"DETACH {entry[0]}")

    def _close_idle(self, keep: int) -> None:
        idle = sorted((e.last_used, key) for key, e in self._engines.items() if not e.users)
        for _, key in idle[: max(0, len(idle) - keep)]:
            self._engines.pop(key).database.close()

    def forget(self) -> None:
        """In a forked child: the parent's DuckDBs (their threads did not come along) are left
        untouched, never used or closed, and new ones are made as needed."""
        _FORGOTTEN.append(self._engines)
        self._engines = {}
        self._lock = threading.Lock()


_ENGINES = _Engines()
_FORGOTTEN: list = []
os.register_at_fork(after_in_child=_ENGINES.forget)


def _lock(lock_file, mode: int) -> None:
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    while True:
        try:
            fcntl.flock(lock_file, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {LOCK_TIMEOUT_SECONDS:.0f}s for the warehouse lock {lock_file.name}") from None
            time.sleep(0.05)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
