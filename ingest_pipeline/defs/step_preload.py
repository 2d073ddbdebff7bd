"""What the multiprocess executor's forkserver loads once, so that every step process forks with
it already loaded: the pipeline, what a step opens the Dagster instance with (its SQLite storages,
SQLAlchemy, Alembic, the run launcher), and what a step would otherwise import on its first use.

Measured on 2 cores: 0.7 s of imports per step without the preload. Loading here, as well, the
modules Dagster, pandera and pyarrow import on first use and Alembic's revision scripts
(`_load_lazily_imported`, `_read_revision_scripts_once`) took a 100-row chunk's step from
0.65-0.80 s to 0.38-0.45 s, worker starting to success (1,000 rows in 10 chunks, multiprocess:
15.4-15.8 s end to end -> 11.2-11.3 s).

It also gives each step process's polars one thread unless $POLARS_MAX_THREADS says otherwise: the
executor runs as many step processes at once as there are cores, so polars' default (a thread per
core in every process) only makes them take turns. Measured on 2 cores, 5M rows: the chunk scans
took 12.9 CPU seconds instead of 15.7. It must be set before polars is first imported, here.

Nothing here may start a thread or run polars: forked children inherit no threads, and a polars
thread pool made in the server would leave them waiting on threads that do not exist."""

import importlib
import os

os.environ.setdefault("POLARS_MAX_THREADS", "1")

import dagster._core.instance.factory  # noqa: E402, F401
import dagster._core.launcher  # noqa: E402, F401
import dagster._core.run_coordinator  # noqa: E402, F401
import dagster._core.storage.event_log.sqlite  # noqa: E402, F401
import dagster._core.storage.local_compute_log_manager  # noqa: E402, F401
import dagster._core.storage.runs.sqlite  # noqa: E402, F401
import dagster._core.storage.schedules.sqlite  # noqa: E402, F401
import dagster._core.storage.sqlite_storage  # noqa: E402, F401

import ingest_pipeline.definitions  # noqa: E402, F401

# Imported by every step on first use (seen by comparing sys.modules at a step's start and end):
# Dagster's loading of the job and its IO manager, pandera's polars backend at the first validation
# and pyarrow.compute at the first Arrow conversion, 0.1-0.2 s per step between them.
LAZILY_IMPORTED = (
    "dagster._core.definitions.repository_definition.repository_data_builder",
    "dagster._core.secrets.env_file",
    "dagster._core.storage.migration.utils",
    "dagster._core.storage.root",
    "dagster._core.system_config.composite_descent",
    "dagster._core.utility_ops",
    "dagster._core.workspace.autodiscovery",
    "dagster._utils.test.definitions",
    "upath.implementations.local",
    "fsspec.implementations.local",
    "numpy.ma",
    "pandera.api.pandas",
    "pandera.backends.register_checks",
    "pandera.backends.polars.register",
    "pandera.backends.polars.container",
    "pandera.backends.polars.components",
    "pandera.backends.polars.builtin_checks",
    "pyarrow.compute",
    "pyarrow.dataset",
)


def _load_lazily_imported() -> None:
    for name in LAZILY_IMPORTED:
        try:
            importlib.import_module(name)
        except ImportError:  # moved in another version of a library: that step pays its import, no more
            pass
    from pandera.backends.polars.register import register_polars_backends

    register_polars_backends()  # registration only: no polars computation


def _read_revision_scripts_once() -> None:
    """Each step opens the instance, whose three SQLite storages each check their schema revision
    against Alembic's head revision; Alembic reads its ~90 revision scripts for every check (about
    0.1 s a step). Here the script folder is read once and shared: the scripts are part of the
    installed Dagster and cannot change while it runs."""
    from alembic.script import ScriptDirectory
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.sql import get_alembic_config

    read = ScriptDirectory.from_config.__func__
    folders: dict[str, ScriptDirectory] = {}

    def from_config(cls, config):
        location = config.get_main_option("script_location")
        if location not in folders:
            folders[location] = read(cls, config)
        return folders[location]

    ScriptDirectory.from_config = classmethod(from_config)
    ScriptDirectory.from_config(get_alembic_config(sqlite_run_storage.__file__)).as_revision_number("head")


_load_lazily_imported()
_read_revision_scripts_once()
