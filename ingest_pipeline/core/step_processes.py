"""Where a local run's steps execute: all in the run's process, or each in a step process forked
from the multiprocess executor's fork server. No Dagster here: the command line decides, and
starts the fork server, while Dagster is still being imported."""

import multiprocessing
import multiprocessing.forkserver
import os

IN_PROCESS_MAX_BYTES_ENV = "INGEST_IN_PROCESS_MAX_BYTES"
# On two cores one chunk's scan already keeps both busy much of the time (polars is multi-threaded),
# so a process per step mostly adds its start-up and memory (measured: 5M rows, 33.8 s and a 912 MiB
# process tree in one process, 45.2 s and 1,998 MiB with one process per step); up to this size
# such machines run uploads in one process.
FEW_CORES, FEW_CORES_IN_PROCESS_MAX_BYTES = 2, 1024 * 2**20

# What the fork server imports once for every step process (defs/step_preload.py); Dagster's
# multiprocess executor puts its own module first.
STEP_PRELOAD_MODULE = "ingest_pipeline.defs.step_preload"
FORK_SERVER_PRELOAD = ["dagster._core.executor.multiprocess", STEP_PRELOAD_MODULE]


def in_process_max_bytes() -> int:
    """Uploads smaller than this run in one process: $INGEST_IN_PROCESS_MAX_BYTES, else 1 GiB on a
    machine with at most two cores, else one chunk (64 MiB)."""
    from ingest_pipeline.core.prepare import TARGET_CHUNK_BYTES  # polars and numpy: not for `status`

    configured = os.environ.get(IN_PROCESS_MAX_BYTES_ENV, "").strip()
    if configured:
        return int(configured)
    return FEW_CORES_IN_PROCESS_MAX_BYTES if (os.cpu_count() or 1) <= FEW_CORES else TARGET_CHUNK_BYTES


def runs_in_process(size_bytes: int | None) -> bool:
    """An upload smaller than `in_process_max_bytes()` runs in one process, where process start-up
    would cost more than scanning chunks in parallel gains. Used by the command line's `auto`,
    backfills and the sensor; every chunk is still its own step, re-executable alone."""
    return size_bytes is not None and size_bytes < in_process_max_bytes()


def start_fork_server() -> None:
    """Start this process's fork server for step processes now, as the multiprocess executor would
    at its first step. Its imports (about 2 s) then overlap the command line's own work (hashing
    the file, importing Dagster) instead of delaying the first step. The server's environment is
    this process's now: call it once the home and filespecs are in the environment."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(FORK_SERVER_PRELOAD)
    multiprocessing.forkserver.ensure_running()
