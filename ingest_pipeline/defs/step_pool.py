"""The local executor: Dagster's multiprocess or in-process executor, with a pool of step processes
for the chunk scans.

Dagster's multiprocess executor starts a process for every step: about 0.2 s from launch to the
step's input on two cores, and the first scan in a new process is 0.2-0.4 s slower than the next
ones (its memory faulted in, polars' CSV reader and numpy warming up). Here the steps tagged
`POOLED_TAG` (the scan stage's: the plan, one step per chunk, the summary) run in a few long-lived
step processes instead, one after another in each: as many as the executor runs steps at once, forked from the same server
(`defs/step_preload.py`). Each step still runs as it would in a process of its own (Dagster's
`MultiprocessExecutorChildProcessCommand`: its own instance, plan, events and termination), so one
failed chunk is still re-executed alone. Every other step gets a process of its own as before, and
launching one first ends the idle pool processes, so that their memory (a scan's, ~750 MiB each) is
given back before the column stage or publishing needs theirs. Measured on 5 M rows (11 chunks, two
at a time): the scan stage 11.4-12.9 s -> 9.9-10.3 s.

A pool process that dies (killed, out of memory) fails the step it ran, as a dead step process
does, and is replaced. A pool process whose run process has gone (killed with SIGKILL) ends by
itself after its current step: nothing stays behind.
"""

import contextlib
import multiprocessing
import os
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess

import dagster._core.executor.multiprocess as dagster_multiprocess
from dagster import Field, Selector, executor
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _core_in_process_executor_creation,
    _get_default_executor_requirements,
)
from dagster._core.events import DagsterEvent
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._core.executor.child_process_executor import (
    PROCESS_DEAD_AND_QUEUE_EMPTY,
    ChildProcessCrashException,
    ChildProcessDoneEvent,
    ChildProcessSystemErrorEvent,
    _execute_command_in_child_process,
    _poll_for_event,
)
from dagster._core.executor.multiprocess import MultiprocessExecutor, MultiprocessExecutorChildProcessCommand
from dagster._utils.interrupts import capture_interrupts, pop_captured_interrupt

from ingest_pipeline.core.processes import process_alive

POOLED_TAG = "ingest/step_pool"  # op tag: its steps run in the pool's long-lived processes
LOCAL_EXECUTOR_NAME = "ingest_local_executor"
IDLE_CHECK_SECONDS = 0.5  # how often an idle pool process checks that its run process lives
STOP_SECONDS = 5.0  # how long a pool process may take to exit when the run's execution ends

_launch_one_process_per_step = dagster_multiprocess.execute_step_out_of_process


def _pool_process_main(tasks, events, term_event, run_pid: int, run_seen_at: float) -> None:
    """A pool process: run each step handed over, as Dagster's step processes run theirs."""
    with capture_interrupts():  # an interrupt between steps is deferred, not fatal
        while True:
            try:
                task = tasks.get(timeout=IDLE_CHECK_SECONDS)
            except queue.Empty:
                if not process_alive(run_pid, run_seen_at):
                    return
                continue
            if task is None:
                return
            term_event.clear()  # set by the previous step's command when it ended
            pop_captured_interrupt()  # one that came between steps was for no step of this process
            command = MultiprocessExecutorChildProcessCommand(term_event=term_event, **task)
            _execute_command_in_child_process(events, command)  # start, the step's events, done or error


@dataclass
class _PoolProcess:
    process: BaseProcess
    tasks: object  # multiprocessing queues: steps in, their events out
    events: object
    term_event: object


class StepPool:
    """Long-lived step processes, started on first need: never more than the steps the executor
    runs at once, since a process is busy for exactly one step at a time."""

    def __init__(self, context: BaseContext):
        self.context = context
        self.idle: list[_PoolProcess] = []
        self.busy: list[_PoolProcess] = []

    def acquire(self) -> _PoolProcess:
        while self.idle:
            worker = self.idle.pop()
            if worker.process.is_alive():
                self.busy.append(worker)
                return worker
            self._close(worker)
        tasks, events, term_event = self.context.Queue(), self.context.Queue(), self.context.Event()
        process = self.context.Process(
            target=_pool_process_main, args=(tasks, events, term_event, os.getpid(), time.time()), name="ingest-step-pool", daemon=True
        )  # fmt: skip
        process.start()
        worker = _PoolProcess(process, tasks, events, term_event)
        self.busy.append(worker)
        return worker

    def release(self, worker: _PoolProcess) -> None:
        self.busy.remove(worker)
        self.idle.append(worker)

    def discard(self, worker: _PoolProcess) -> None:
        """A pool process in an unknown state (it died, or its step was abandoned): ended, not reused.
        Also called for a step abandoned after `close` (its iterator collected later): then a no-op."""
        if worker not in self.busy:
            return
        self.busy.remove(worker)
        if worker.process.is_alive():
            worker.process.kill()
        self._close(worker)

    def end_idle(self) -> None:
        """End the idle processes (their memory goes back before a step of another kind starts)."""
        idle, self.idle = self.idle, []
        self._stop(idle)

    def close(self) -> None:
        busy, self.busy = self.busy, []
        for worker in busy:
            worker.process.kill()
        self.end_idle()
        for worker in busy:
            self._close(worker)

    def _stop(self, workers: list[_PoolProcess]) -> None:
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.tasks.put(None)
        deadline = time.monotonic() + STOP_SECONDS
        for worker in workers:
            worker.process.join(max(deadline - time.monotonic(), 0))
            if worker.process.is_alive():
                worker.process.kill()
            self._close(worker)

    @staticmethod
    def _close(worker: _PoolProcess) -> None:
        worker.process.join(STOP_SECONDS)
        for channel in (worker.tasks, worker.events):
            channel.close()
            channel.cancel_join_thread()


def _launcher(pool: StepPool):
    """`execute_step_out_of_process` of Dagster's multiprocess executor, with the pooled steps
    handed to the pool's processes. Same signature and the same events."""

    def launch(multiproc_ctx, recon_job, step_context, step, errors, processes, term_events, retries,
               known_state, repository_load_data) -> Iterator[DagsterEvent | None]:  # fmt: skip
        if POOLED_TAG not in step.tags:
            pool.end_idle()
            yield from _launch_one_process_per_step(multiproc_ctx, recon_job, step_context, step, errors, processes,
                                                    term_events, retries, known_state, repository_load_data)  # fmt: skip
            return
        worker = pool.acquire()
        # The executor interrupts a step by setting its event: here the pool process's own.
        term_events[step.key] = worker.term_event
        processes[step.key] = worker.process
        yield DagsterEvent.step_worker_starting(
            step_context, f'Handing "{step.key}" to step pool process {worker.process.pid}.', metadata={}
        )
        worker.tasks.put(dict(
            run_config=step_context.run_config, dagster_run=step_context.dagster_run, step_key=step.key,
            instance_ref=step_context.instance.get_ref(), recon_pipeline=recon_job, retry_mode=retries,
            known_state=known_state, repository_load_data=repository_load_data,
        ))  # fmt: skip
        ended = False
        try:
            while not ended:
                event = _poll_for_event(worker.process, worker.events)
                if event == PROCESS_DEAD_AND_QUEUE_EMPTY:
                    raise ChildProcessCrashException(pid=worker.process.pid, exit_code=worker.process.exitcode)
                if isinstance(event, ChildProcessSystemErrorEvent):
                    errors[event.pid] = event.error_info
                ended = isinstance(event, (ChildProcessDoneEvent, ChildProcessSystemErrorEvent))
                if event is None or isinstance(event, DagsterEvent):
                    yield event
        finally:
            if ended:
                pool.release(worker)
            else:  # it died, or the executor stopped following this step
                pool.discard(worker)

    return launch


class PooledMultiprocessExecutor(MultiprocessExecutor):
    """Dagster's multiprocess executor, the steps tagged `POOLED_TAG` run in a `StepPool`."""

    def execute(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:
        pool = StepPool(multiprocessing.get_context(self._start_method))
        # Dagster's loop calls this module function for every step it launches; it is swapped for
        # the pool's while this run's execution lasts (a run worker process executes one run).
        dagster_multiprocess.execute_step_out_of_process = _launcher(pool)
        try:
            yield from super().execute(plan_context, execution_plan)
        finally:
            dagster_multiprocess.execute_step_out_of_process = _launch_one_process_per_step
            pool.close()


@executor(
    name=LOCAL_EXECUTOR_NAME,
    config_schema=Field(
        Selector({"multiprocess": MULTI_PROC_CONFIG, "in_process": IN_PROC_CONFIG}),
        default_value={"multiprocess": {}},
    ),
    requirements=_get_default_executor_requirements,
)
def local_executor(init_context):
    """Dagster's `multi_or_in_process_executor` (the same settings), whose multiprocess mode runs
    the chunk scans in a pool of long-lived step processes (defs/step_pool.py)."""
    config = init_context.executor_config
    if "in_process" in config:
        return _core_in_process_executor_creation(config["in_process"])
    multiprocess = config["multiprocess"]
    start_method, start_config = next(iter((multiprocess.get("start_method") or {None: {}}).items()))
    return PooledMultiprocessExecutor(
        retries=RetryMode.from_config(multiprocess["retries"]),
        max_concurrent=multiprocess.get("max_concurrent"),
        tag_concurrency_limits=multiprocess.get("tag_concurrency_limits"),
        start_method=start_method,
        explicit_forkserver_preload=start_config.get("preload_modules"),
        step_dependency_config=StepDependencyConfig.from_config(multiprocess.get("step_dependency_config")),
    )
