"""Is a process that worked on an upload still alive? Used to find runs whose process died.

A pid alone is not an identity: after a crash the number may be reused. A process counts as the
one recorded only if it exists, is not a zombie, and was created no later than the moment it
was recorded doing the work.
"""

import os
import signal
import socket

import psutil

# Process creation times are rounded (to clock ticks); allow for it.
CREATE_TIME_SLACK_SECONDS = 2.0


def this_host() -> str:
    return socket.gethostname()


def process_alive(pid: int, seen_at: float) -> bool:
    """Whether `pid` is still the process that was seen working at `seen_at` (a Unix time)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= seen_at + CREATE_TIME_SLACK_SECONDS
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return False


def kill_process(pid: int, seen_at: float) -> bool:
    """SIGKILL `pid` if it is still the process seen at `seen_at`; returns whether one was killed."""
    if pid == os.getpid() or not process_alive(pid, seen_at):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False
