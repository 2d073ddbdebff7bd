"""Fault points: named places where the fault-injection tests stop or kill a stage on purpose.

A no-op unless `INGEST_FAULT_POINT` names the point (set only by the tests): then the first
process to get there creates `INGEST_FAULT_MARKER` holding its pid (so a test knows the moment
has come and whom to kill; later arrivals, e.g. a re-run, go through) and, by
`INGEST_FAULT_ACTION`, pauses until it is killed (`pause`, the default) or kills itself with
SIGKILL (`kill`: an OOM kill or an evicted pod, with no chance to clean up).
"""

import os
import signal
import time

POINT_ENV = "INGEST_FAULT_POINT"
MARKER_ENV = "INGEST_FAULT_MARKER"
ACTION_ENV = "INGEST_FAULT_ACTION"

# The stages' points, each where a crash does the most harm: files half-written, a warehouse
# transaction open, a concurrency slot held.
PREPARE = "prepare.chunking"  # some chunk files written, no manifest yet
SCAN = "scan.writing"  # the chunk's rows file written, its messages file not yet
COLUMNS = "columns.writing"  # some column files written
MERGE = "merge.transaction"  # inside the merge's transaction, rows deleted and partly inserted
PUBLISH = "publish.transaction"  # inside the publish transaction


def fault_point(name: str) -> None:
    """Pause or die here if the tests asked for it; otherwise do nothing."""
    if os.environ.get(POINT_ENV) != name:
        return
    marker = os.environ.get(MARKER_ENV)
    if marker:
        try:  # one shot: the first process to get here takes the fault, later runs go through
            with open(marker, "x") as out:
                out.write(f"{os.getpid()}\n")
        except FileExistsError:
            return
    if os.environ.get(ACTION_ENV, "pause") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    while True:  # until killed
        time.sleep(1)
