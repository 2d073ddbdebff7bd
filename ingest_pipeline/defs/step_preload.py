"""What the multiprocess executor's forkserver imports once, so that every step process forks
with it already loaded: the pipeline, and what a step opens the Dagster instance with (its SQLite
storages, SQLAlchemy, Alembic, the run launcher). Measured: 0.7 s of imports per step otherwise.

It also gives each step process's polars one thread unless $POLARS_MAX_THREADS says otherwise: the
executor runs as many step processes at once as there are cores, so polars' default (a thread per
core in every process) only makes them take turns. Measured on 2 cores, 5M rows: the chunk scans
took 12.9 CPU seconds instead of 15.7. It must be set before polars is first imported, here."""

import os

os.environ.setdefault("POLARS_MAX_THREADS", "1")

import dagster._core.instance.factory  # noqa: F401
import dagster._core.launcher  # noqa: F401
import dagster._core.run_coordinator  # noqa: F401
import dagster._core.storage.event_log.sqlite  # noqa: F401
import dagster._core.storage.local_compute_log_manager  # noqa: F401
import dagster._core.storage.runs.sqlite  # noqa: F401
import dagster._core.storage.schedules.sqlite  # noqa: F401
import dagster._core.storage.sqlite_storage  # noqa: F401

import ingest_pipeline.definitions  # noqa: F401
