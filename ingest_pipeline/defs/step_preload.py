"""What the multiprocess executor's forkserver imports once, so that every step process forks
with it already loaded: the pipeline, and what a step opens the Dagster instance with (its SQLite
storages, SQLAlchemy, Alembic, the run launcher). Measured: 0.7 s of imports per step otherwise."""

import dagster._core.instance.factory  # noqa: F401
import dagster._core.launcher  # noqa: F401
import dagster._core.run_coordinator  # noqa: F401
import dagster._core.storage.event_log.sqlite  # noqa: F401
import dagster._core.storage.local_compute_log_manager  # noqa: F401
import dagster._core.storage.runs.sqlite  # noqa: F401
import dagster._core.storage.schedules.sqlite  # noqa: F401
import dagster._core.storage.sqlite_storage  # noqa: F401

import ingest_pipeline.definitions  # noqa: F401
