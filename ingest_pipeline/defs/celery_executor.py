"""The Celery executor of a distributed deployment: dagster-celery's, watching its workers.

dagster-celery's `celery_executor` waits for each step task's result and for nothing else, so a
worker lost whole (its machine, or kill -9 of its process group) would leave the run, its
concurrency slots and its upload waiting for ever (core/worker_watch.py says why and how it
judges). This executor is the same one (the same name and settings, and dagster-celery's own
`core_celery_execution_loop`) plus `worker_lost_seconds`: while the run's steps are out, a thread
of the orchestrating process asks the workers every few seconds which are alive and which queues
they take, and each step's task result is wrapped so that the loop sees a lost step as finished,
failed with `StepWorkerLostError`. The run then ends failed the ordinary way (the other steps in
flight finish first; the slots are freed), an engine event in its log says which worker went
(metadata `ingest/lost-worker`), and the upload's error says to run `ingest-pipeline retry UPLOAD_ID`.
"""

import functools
import logging
import threading
import time

from celery import states
from dagster import Field, MetadataValue, executor, multiple_process_executor_requirements
from dagster._core.events import EngineEventData
from dagster._core.execution.retries import RetryMode
from dagster_celery.core_execution_loop import core_celery_execution_loop
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor, _submit_task
from dagster_celery.make_app import make_app

from ingest_pipeline.core.errors import StepWorkerLostError
from ingest_pipeline.core.worker_watch import (
    DEFAULT_WORKER_LOST_SECONDS,
    LOST_WORKER_KEY,
    WORKER_LOST_ENV,
    WorkerWatch,
    check_interval,
)

REPLY_SECONDS = 1.0  # how long one broadcast waits for the workers' answers
log = logging.getLogger(__name__)


class WorkerWatcher:
    """A thread asking the workers, every `check_interval(lost_after)` seconds, who is alive and
    what each takes (`inspect().active_queues()`), into a `WorkerWatch`."""

    def __init__(self, app, lost_after: float):
        self.watch = WorkerWatch(lost_after)
        self._app = app
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ingest-worker-watch", daemon=True)

    def __enter__(self) -> "WorkerWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=REPLY_SECONDS + 5)

    def _loop(self) -> None:
        interval = check_interval(self.watch.lost_after)
        while not self._stop.is_set():
            sent = time.monotonic()
            replies = self._ask()
            with self._lock:
                self.watch.observe(replies, sent)
            self._stop.wait(interval)

    def _ask(self) -> dict[str, list[str]] | None:
        try:
            answers = self._app.control.inspect(timeout=REPLY_SECONDS).active_queues()
        except Exception as error:  # the broker unreachable: this round says nothing about the workers
            log.warning("The Celery workers could not be asked whether they are alive: %s", error)
            return None
        return {worker: [queue["name"] for queue in queues or []] for worker, queues in (answers or {}).items()}

    def verdict(self, step_key: str, queue: str, worker: str | None, since: float) -> str | None:
        with self._lock:
            return self.watch.verdict(step_key, queue, worker, since)


class WatchedResult:
    """A step task's `AsyncResult` as dagster-celery's loop uses it (`ready`, `get`, `revoke`), that
    is also ready, raising `StepWorkerLostError` from `get`, once the watch finds its worker lost."""

    def __init__(self, result, watcher: WorkerWatcher, plan_context, step_key: str, queue: str):
        self._result, self._watcher, self._context = result, watcher, plan_context
        self._step_key, self._queue = step_key, queue
        self._worker: str | None = None
        self._since = time.monotonic()
        self._lost: str | None = None

    def ready(self) -> bool:
        if self._lost is not None or self._result.ready():
            return True
        if self._worker is None and self._result.state == states.STARTED:
            info = self._result.info
            self._worker = info.get("hostname") if isinstance(info, dict) else None
            self._since = time.monotonic()
        self._lost = self._watcher.verdict(self._step_key, self._queue, self._worker, self._since)
        if self._lost is not None:
            self._report()
        return self._lost is not None

    def _report(self) -> None:
        data = EngineEventData(metadata={LOST_WORKER_KEY: MetadataValue.text(self._lost)})
        self._context.instance.report_engine_event(self._lost, self._context.dagster_run, data,
                                                   cls=WatchedCeleryExecutor, step_key=self._step_key)  # fmt: skip
        try:  # should the worker be alive after all (only unreachable), it stops the step
            self._result.revoke(terminate=True)
        except Exception as error:
            log.warning("Revoking the task of step %s failed: %s", self._step_key, error)

    def get(self):
        if self._lost is not None:
            raise StepWorkerLostError(self._lost)
        return self._result.get()

    def revoke(self) -> None:
        self._result.revoke()


def _submit_watched(watcher: WorkerWatcher, app, plan_context, step, queue, priority, known_state) -> WatchedResult:
    result = _submit_task(app, plan_context, step, queue, priority, known_state)
    return WatchedResult(result, watcher, plan_context, step.key, queue)


class WatchedCeleryExecutor(CeleryExecutor):
    """dagster-celery's executor with a `WorkerWatcher` for the run's steps."""

    def __init__(self, retries, lost_after: float, **kwargs):
        super().__init__(retries, **kwargs)
        self.lost_after = lost_after

    def execute(self, plan_context, execution_plan):
        with WorkerWatcher(make_app(self.app_args()), self.lost_after) as watcher:
            yield from core_celery_execution_loop(
                plan_context, execution_plan, step_execution_fn=functools.partial(_submit_watched, watcher)
            )


@executor(
    name="celery",
    config_schema={
        **CELERY_CONFIG,
        "worker_lost_seconds": Field(
            float,
            is_required=False,
            default_value=DEFAULT_WORKER_LOST_SECONDS,
            description=f"A step whose worker has not answered for this long fails the run ({WORKER_LOST_ENV}).",
        ),
    },
    requirements=multiple_process_executor_requirements(),
)
def watched_celery_executor(init_context):
    """dagster-celery's `celery` executor, failing a step whose worker is lost (defs/celery_executor.py)."""
    config = init_context.executor_config
    return WatchedCeleryExecutor(
        retries=RetryMode.from_config(config["retries"]),
        lost_after=config["worker_lost_seconds"],
        broker=config.get("broker"),
        backend=config.get("backend"),
        config_source=config.get("config_source"),
        include=config.get("include"),
    )
