"""When a Celery step's worker is lost: the verdicts of a distributed run's watch (no Dagster here).

dagster-celery's executor waits for each step's task result and nothing else
(`dagster_celery/core_execution_loop.py` polls `AsyncResult.ready()` once a second, for ever).
A step's *pool process* dying is reported by its worker's main process (`WorkerLostError`), but
when the whole worker goes (kill -9 of its process group, a lost VM), nobody reports the task, and
with Celery's early acknowledgement nobody redelivers it: the run would wait for ever.

So the run's orchestrating process asks the workers, every few seconds, which of them are alive
and which queues they take (one `inspect().active_queues()` broadcast; a worker's main process
answers while its pool runs a step) and `WorkerWatch` judges each unfinished step task:

- a *started* task (Celery's `STARTED` state names its worker) is lost once that worker has not
  answered for `lost_after` seconds of broadcasts that others did answer;
- a task *not started yet* is lost once no worker taking its queue has answered for that long
  (a queue with a live consumer is only busy: its task waits its turn, however long).

Only broadcasts that went out count (`observe(None)`: the broker could not be reached), so an
unreachable broker never makes a live worker look lost.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

WORKER_LOST_ENV = "INGEST_WORKER_LOST_SECONDS"
# The metadata key of the engine event that records a verdict in the run's log, where the upload's
# error is read from (not a run tag: a re-execution inherits its parent's tags).
LOST_WORKER_KEY = "ingest/lost-worker"
DEFAULT_WORKER_LOST_SECONDS = 60.0


def check_interval(lost_after: float) -> float:
    """How often the workers are asked: six times per `lost_after`, between 1 and 10 seconds."""
    return min(10.0, max(1.0, lost_after / 6))


@dataclass
class WorkerWatch:
    """What the broadcasts saw, and the verdict on one task from it (times in monotonic seconds)."""

    lost_after: float
    last_seen: dict[str, float] = field(default_factory=dict)  # worker -> when it last answered
    last_served: dict[str, float] = field(default_factory=dict)  # queue -> when a worker taking it last answered
    last_answered: float = -math.inf  # the last broadcast that went out

    def observe(self, replies: Mapping[str, Iterable[str]] | None, at: float) -> None:
        """One broadcast's answers, {worker: the queues it takes}; None when it could not be sent."""
        if replies is None:
            return
        self.last_answered = at
        for worker, queues in replies.items():
            self.last_seen[worker] = at
            for queue in queues:
                self.last_served[queue] = at

    def verdict(self, step_key: str, queue: str, worker: str | None, since: float) -> str | None:
        """None while the task may still finish; else one sentence saying which worker or queue is gone.

        `worker` is the worker that started the task (None: not started), `since` when this watch
        first knew that (submitted, or seen started): nobody is judged on what came before.
        """
        if worker is not None:
            silent = self.last_answered - max(self.last_seen.get(worker, -math.inf), since)
            if silent > self.lost_after:
                return (f"Celery worker {worker} stopped answering while it ran step {step_key} (no reply for "
                        f"{silent:.0f} s; its machine or its worker process is gone).")  # fmt: skip
            return None
        silent = self.last_answered - max(self.last_served.get(queue, -math.inf), since)
        if silent > self.lost_after:
            return (f"No Celery worker taking queue {queue!r} answered for {silent:.0f} s while step {step_key} "
                    f"waited for one; start a worker with `-Q {queue}` (docs/storage-and-scaling.md).")  # fmt: skip
        return None


def worker_lost_seconds(raw: str | None) -> float:
    """`INGEST_WORKER_LOST_SECONDS`, a positive number (default 60); ValueError with one sentence if not."""
    if raw is None or not raw.strip():
        return DEFAULT_WORKER_LOST_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{WORKER_LOST_ENV} is {raw!r}; give a number of seconds above 0 (default 60).")
    return value
