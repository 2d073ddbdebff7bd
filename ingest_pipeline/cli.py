"""The `ingest-pipeline` command (shared/spec/outputs.md): run, status, check-spec, generate, ...

`run` goes through the same Dagster assets the sensor launches, as a real run on the Dagster
instance under `<home>/dagster`, so its runs show in the UI (`ingest-pipeline ui`). Usage errors
print one line and exit 2; a failed upload exits 1 with the reason on stderr.
"""

import argparse
import contextlib
import datetime as dt
import fcntl
import gc
import importlib
import os
import shutil
import sys
import threading
import warnings
from pathlib import Path

from ingest_pipeline.core.companies import company_id_problem
from ingest_pipeline.core.deployment import deployment_from_env
from ingest_pipeline.core.errors import FilespecError, IngestError
from ingest_pipeline.core.filespec import FORM_TYPE_RE, load_form_type
from ingest_pipeline.core.home import PROJECT_ROOT, resolve_filespecs, resolve_home
from ingest_pipeline.core.startup import modules_loaded
from ingest_pipeline.core.step_processes import runs_in_process, start_fork_server
from ingest_pipeline.core.storage import AZURE_URI_SCHEME
from ingest_pipeline.core.uploads import (
    COMPLETED,
    STATUSES,
    compute_upload_id,
    get_upload,
    hash_stream,
    list_unfinished_uploads,
    list_uploads,
    register_upload,
)
from ingest_pipeline.core.warehouse import Warehouse

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad argument: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ingest-pipeline", description="Validate client file uploads into DuckDB with Dagster.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_home(sub: argparse.ArgumentParser, filespecs: bool = True) -> None:
        sub.add_argument("--home", help="state folder (default: $INGEST_HOME or ./.ingest)")
        if filespecs:
            sub.add_argument("--filespecs", help="filespecs folder (default: $INGEST_FILESPECS or the project's filespecs/)")

    run = commands.add_parser("run", help="ingest one local file through the Dagster assets")
    run.add_argument("file")
    run.add_argument("--company", required=True, help="the uploading company's id")
    run.add_argument("--form-type", required=True, help="the filespec to judge the file by")
    run.add_argument("--chunk-rows", type=int, help="records per chunk (default: about 64 MiB of records)")
    run.add_argument(
        "--executor", choices=["auto", "multiprocess", "in_process"], default="auto",
        help="multiprocess scans chunks in parallel, one process per step; in_process avoids process start-up; "
        "auto (default) picks in_process below INGEST_IN_PROCESS_MAX_BYTES (1 GiB on two cores, else one chunk)",
    )  # fmt: skip
    run.add_argument("--report", action="store_true",
                     help="also write the client report (<home>/reports/<upload_id>.xlsx) after the run")  # fmt: skip
    with_home(run)

    status = commands.add_parser("status", help="uploads with their status and counts")
    status.add_argument("upload_id", nargs="?")
    status.add_argument("--limit", type=int, default=50, help="most recent uploads to list (default 50)")
    status.add_argument("--company", help="only this company's uploads")
    status.add_argument("--form-type", help="only uploads of this form type")
    status.add_argument("--status", choices=STATUSES, help="only uploads with this status")
    status.add_argument("--since", help="only uploads received on or after this date (YYYY-MM-DD, UTC)")
    status.add_argument("--json", action="store_true", help="print JSON (a list, or one object with UPLOAD_ID)")
    with_home(status, filespecs=False)

    retry = commands.add_parser("retry", help="re-execute an upload's failed run from failure (only what failed and what follows)")
    retry.add_argument("upload_id")
    with_home(retry)

    cancel = commands.add_parser("cancel", help="cancel an upload's queued or running run(s); the upload ends failed")
    cancel.add_argument("upload_id")
    with_home(cancel, filespecs=False)

    partitions = commands.add_parser("partitions", help="upload partitions in Dagster that are no registered upload; --prune deletes them")
    partitions.add_argument("--prune", action="store_true", help="delete them (never one with a queued or running run)")
    with_home(partitions, filespecs=False)

    from ingest_pipeline.api.commands import add_commands as add_api_commands

    add_api_commands(commands, with_home)  # serve, api-key: the HTTP API (ingest_pipeline/api/commands.py)
    from ingest_pipeline.authoring.describe_commands import add_describe_commands

    add_describe_commands(commands, with_home)  # describe, check-spec: writing filespecs (ingest_pipeline/authoring/)

    generate = commands.add_parser("generate", help="write a test file that follows a filespec, with errors injected")
    generate.add_argument("--form-type", required=True)
    generate.add_argument("--rows", type=int, required=True)
    generate.add_argument("--out", required=True)
    generate.add_argument("--error-rate", type=float, default=0.0)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--company", default="acme", help="company whose reference data is used (default acme)")
    with_home(generate)

    backfill = commands.add_parser("backfill", help="re-run the registered uploads of a form type under its current filespec")
    backfill.add_argument("--form-type", required=True)
    backfill.add_argument("--since", help="only uploads received on or after this date (YYYY-MM-DD)")
    backfill.add_argument("--company", help="only this company's uploads")
    how = backfill.add_mutually_exclusive_group()
    how.add_argument("--dry-run", action="store_true",
                     help="list the uploads and their partition keys (for a backfill from the UI) without running them")  # fmt: skip
    how.add_argument("--launch", action="store_true",
                     help="launch a Dagster backfill of them on the home's instance (the daemon runs it) and print its UI link")  # fmt: skip
    with_home(backfill)

    from ingest_pipeline.authoring.spec_commands import add_spec_commands

    add_spec_commands(commands, with_home)  # import-spec, export-spec, spec-diff, backfill --impact (authoring/spec_commands.py)

    report = commands.add_parser("report", help="write an upload's client report (.xlsx)")
    report.add_argument("upload_id")
    report.add_argument("--out", required=True, help="the .xlsx file to write")
    with_home(report)

    sql = commands.add_parser("sql", help="query the warehouse read-only, waiting for writers instead of blocking them")
    sql.add_argument("query", help="one SQL query, e.g. \"SELECT status, count(*) FROM ingest.uploads GROUP BY ALL\"")
    sql.add_argument("--format", choices=["table", "csv"], default="table", help="table (default) or csv on stdout")
    with_home(sql, filespecs=False)

    webhooks = commands.add_parser("webhooks", help="list undelivered webhook deliveries; --deliver sends the due ones")
    webhooks.add_argument("--deliver", action="store_true", help="send the due deliveries now (as the daemon's sensor)")
    webhooks.add_argument("--now", action="store_true", help="with --deliver: also those not due yet")
    webhooks.add_argument("--limit", type=int, default=50, help="given-up deliveries to list, newest first (default 50)")
    with_home(webhooks, filespecs=False)

    work = commands.add_parser("work-folders", help="the uploads' work folders; --clean removes the expired ones")
    work.add_argument("--clean", action="store_true",
                      help="remove those past INGEST_WORK_RETENTION_HOURS (as the daemon's sensor)")  # fmt: skip
    with_home(work, filespecs=False)

    ui = commands.add_parser("ui", help="start the Dagster UI and daemon (sensor, queue) on the home's instance")
    ui.add_argument("--port", default="3000")
    ui.add_argument("--host", default="127.0.0.1", help="address the UI listens on (default 127.0.0.1; 0.0.0.0: every interface)")
    with_home(ui)

    daemon = commands.add_parser("daemon", help="start the Dagster daemon alone (sensor, run queue) on the home's instance, without the UI")
    with_home(daemon)
    return parser


def _fail_usage(message: str) -> int:
    print(f"ingest-pipeline: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")  # Dagster's preview/beta notices are not the user's business
    # The garbage collector is paused while a command imports what it needs (core/startup.py):
    # `modules_loaded` resumes it once those are in; short commands end before.
    gc.disable()
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "run_command", None):  # registered by a module of its own (api/, authoring/)
            return args.run_command(args)
        handler = {"run": cmd_run, "status": cmd_status, "generate": cmd_generate,
                   "ui": cmd_ui, "backfill": cmd_backfill, "report": cmd_report, "sql": cmd_sql,
                   "webhooks": cmd_webhooks, "work-folders": cmd_work_folders, "retry": cmd_retry,
                   "cancel": cmd_cancel, "partitions": cmd_partitions, "daemon": cmd_daemon}[args.command]  # fmt: skip
        return handler(args)
    except UsageError as error:
        return _fail_usage(str(error))
    except FilespecError as error:
        return _fail_usage(str(error))
    except IngestError as error:
        print(f"ingest-pipeline: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    finally:
        modules_loaded()


def configure_environment(home: Path, filespecs: Path | None) -> Path:
    """Point every process of this run (and its step subprocesses) at the same home and instance."""
    os.environ["INGEST_HOME"] = str(home)
    if filespecs is not None:
        os.environ["INGEST_FILESPECS"] = str(filespecs)
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    template = PROJECT_ROOT / "dagster.yaml"
    target = dagster_home / "dagster.yaml"
    from ingest_pipeline.core.deployment import distributed_instance_yaml

    if template.exists() and deployment_from_env().distributed:  # the instance on PostgreSQL
        wanted = distributed_instance_yaml(template.read_text()).encode()
        if not target.exists() or target.read_bytes() != wanted:
            target.write_bytes(wanted)
    elif template.exists() and (not target.exists() or target.read_bytes() != template.read_bytes()):
        shutil.copyfile(template, target)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def cmd_run(args: argparse.Namespace) -> int:
    home, filespecs = resolve_home(args.home), resolve_filespecs(args.filespecs)
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    _check_company(args.company)
    if args.chunk_rows is not None and args.chunk_rows < 1:
        raise UsageError("--chunk-rows must be 1 or more")
    if not FORM_TYPE_RE.fullmatch(args.form_type):
        raise UsageError(f"{args.form_type!r} is not a form type name ([a-z][a-z0-9_]*)")
    spec = load_form_type(args.form_type, filespecs)
    configure_environment(home, filespecs)

    # Dagster loads (seconds of imports) on another thread while the file is hashed: hashing
    # releases the GIL, so on two cores the hash costs little time.
    loading = threading.Thread(target=importlib.import_module, args=("ingest_pipeline.defs.jobs",), daemon=True)
    loading.start()
    with open(path, "rb") as stream:
        sha256, size = hash_stream(stream)
    upload_id = compute_upload_id(args.company, spec.form_type, sha256)
    log_file = home / "logs" / f"run-{upload_id}.log"
    in_process = args.executor == "in_process" or (
        args.executor == "auto" and runs_in_process(size) and args.chunk_rows is None)  # fmt: skip
    if not in_process and not deployment_from_env().distributed:
        with _stderr_into(log_file):  # step processes inherit the server's stdout and stderr
            start_fork_server()  # its imports (~2 s) overlap Dagster's loading and the run's creation
    loading.join()
    warehouse = Warehouse(home / "warehouse.duckdb")
    with upload_lock(home, upload_id) as waited, open_dagster_instance() as instance:
        reconcile_dead_runs(home, instance)
        joined = waited and _finished_meanwhile(warehouse, upload_id)
        if not joined:
            register_upload(warehouse, upload_id=upload_id, company_id=args.company, form_type=spec.form_type,
                            source=str(path.resolve()), sha256=sha256, size=size, filespec_version=spec.version)  # fmt: skip
            run_ingest_job(upload_id, source=str(path.resolve()), company_id=args.company, form_type=spec.form_type,
                           chunk_rows=args.chunk_rows, in_process=in_process,
                           log_file=log_file, report=args.report, instance=instance)  # fmt: skip
    upload = get_upload(warehouse, upload_id)
    print(f"upload {upload_id}: {upload['status']}" + (" (ingested by the other process)" if joined else ""))
    if upload["rows_total"] is not None:
        print(f"  rows: {upload['rows_total']} total, {upload['rows_accepted']} accepted, {upload['rows_rejected']} rejected")
    from ingest_pipeline.core.client_report import report_path

    if args.report and report_path(home, upload_id).exists():
        print(f"  report: {report_path(home, upload_id)}")
    if upload["status"] != COMPLETED:
        print(f"ingest-pipeline: upload {upload_id} failed: {upload['error'] or 'see the Dagster run'}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


@contextlib.contextmanager
def upload_lock(home: Path, upload_id: str):
    """Held while this process ingests the upload; yields whether it had to wait for another process.

    Two `ingest-pipeline run` of the same upload at once would share one work folder; the second
    waits for the first instead (an flock: a killed holder releases it at once).
    """
    path = home / "locks" / f"upload-{upload_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        waited = False
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"upload {upload_id} is being ingested by another process; waiting for it to finish", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
            waited = True
        try:
            yield waited
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _finished_meanwhile(warehouse: Warehouse, upload_id: str) -> bool:
    """After waiting for another process: did it complete the upload? (If it failed, we run it ourselves.)"""
    upload = get_upload(warehouse, upload_id)
    return upload is not None and upload["status"] == COMPLETED


def reconcile_dead_runs(home: Path, instance=None) -> None:
    """End the home's runs whose process died and fail the uploads they stranded (see defs/run_health.py)."""
    from ingest_pipeline.defs.run_health import reconcile

    if instance is None:
        configure_environment(home, None)
    with _opened(instance) as instance:
        done = reconcile(instance, Warehouse(home / "warehouse.duckdb"))
    if done.dead_runs or done.failed_uploads:
        print(f"ingest-pipeline: {done.summary()}", file=sys.stderr)


def _check_company(company_id: str | None) -> None:
    """The company id rule of the sensor and the reference lookup (`core/companies.py`), as a usage error."""
    problem = company_id_problem(company_id) if company_id is not None else None
    if problem is not None:
        raise UsageError(problem)


def run_ingest_job(upload_id: str, *, source: str, company_id: str, form_type: str, chunk_rows: int | None = None,
                   in_process: bool = False, log_file: Path | None = None, launched_by: str = "cli",
                   report: bool = False, instance=None, retry_of=None) -> str:  # fmt: skip
    """Run the ingest job for one registered upload on the home's Dagster instance; returns the run id.

    With `retry_of` (a failed or canceled run), that run is re-executed from failure instead.
    Shows a progress bar on the terminal while it runs; afterwards makes sure the upload has ended
    (completed or failed) and, with `report`, writes its client report in a run of its own.
    """
    from dagster import reconstructable

    from ingest_pipeline.definitions import ingest_upload_job_def
    from ingest_pipeline.defs.partitions import PARTITION_TAG, uploads_partitions

    run_config = command_line_run_config(in_process=in_process, chunk_rows=chunk_rows)
    from ingest_pipeline.core.processes import this_host
    from ingest_pipeline.defs.operator_actions import STOPS_ON_TERMINATE_TAG, stop_when_terminated
    from ingest_pipeline.defs.run_health import HOST_TAG

    tags = {PARTITION_TAG: upload_id, "ingest/source": source, "ingest/company_id": company_id,
            "ingest/form_type": form_type, "ingest/launched_by": launched_by, HOST_TAG: this_host(),
            STOPS_ON_TERMINATE_TAG: str(os.getpid())}  # fmt: skip
    if report:
        from ingest_pipeline.defs.reports import INLINE_REPORT_TAG

        tags[INLINE_REPORT_TAG] = "inline"  # the report sensors leave this run to us
    with _opened(instance) as instance:
        modules_loaded()
        instance.add_dynamic_partitions(uploads_partitions.name, [upload_id])
        with _progress_bar(upload_id):  # its last frame shows how the upload ended
            with _stderr_into(log_file), stop_when_terminated(instance, upload_id):
                if retry_of is None:
                    result = execute_job_as_the_ui_would_see_it(reconstructable(ingest_upload_job_def), instance,
                                                                run_config, tags)  # fmt: skip
                else:
                    from ingest_pipeline.defs.operator_actions import reexecute_from_failure

                    retry_tags = {"ingest/launched_by": launched_by, HOST_TAG: this_host(),
                                  STOPS_ON_TERMINATE_TAG: str(os.getpid())}  # fmt: skip
                    result = reexecute_from_failure(reconstructable(ingest_upload_job_def), instance, retry_of, retry_tags)
            _end_stranded_upload(upload_id, result.run_id, log_file, instance)
        if report:
            _run_report_job(instance, upload_id, log_file)
        return result.run_id


def execute_job_as_the_ui_would_see_it(recon_job, instance, run_config: dict, tags: dict):
    """`dagster.execute_job` in this process, with the run's origin set to the code location that
    `ingest-pipeline ui` and the daemon serve (this project's workspace.yaml): without an origin the
    UI cannot re-execute a run ("Re-execute from failure"), so command-line runs could not be resumed
    where they failed as UI and sensor runs can."""
    from dagster._core.execution.api import execute_run

    from ingest_pipeline.defs.operator_actions import ui_job_origin

    job = recon_job.get_definition()
    run = instance.create_run_for_job(
        job_def=job,
        run_config=run_config,
        tags={**job.run_tags, **tags},
        job_code_origin=recon_job.get_python_origin(),
        remote_job_origin=ui_job_origin(job.name),
    )
    return execute_run(recon_job, run, instance)  # as execute_job does: failures end the run, not this process


def _opened(instance):
    """The instance a caller already has open (opening one costs ~1 s), else the home's, opened now."""
    return contextlib.nullcontext(instance) if instance is not None else open_dagster_instance()


@contextlib.contextmanager
def open_dagster_instance():
    """The Dagster instance in $DAGSTER_HOME, opened by one process at a time.

    Opening a new instance creates and migrates its SQLite storage; two `ingest-pipeline run`
    started together on a fresh home would otherwise both migrate it and corrupt it.
    """
    from dagster import DagsterInstance

    with open(Path(os.environ["DAGSTER_HOME"]) / ".instance.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            instance = DagsterInstance.get()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    with instance:
        yield instance


def command_line_run_config(in_process: bool, chunk_rows: int | None = None) -> dict:
    """Run config of the command line's runs: quiet console, the executor, and this home and filespecs.

    Home and filespecs are explicit in the run (and shown in the UI), not only in the environment,
    which step processes forked from an already started fork server would not see change.
    """
    from ingest_pipeline.defs.jobs import execution_config

    run_config: dict = {
        # The console is the run's log file (<home>/logs/run-<upload_id>.log): Dagster's step log lines.
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
        "execution": execution_config(in_process),
        "resources": {"ingest_settings": {"config": {"home": str(resolve_home()), "filespecs": str(resolve_filespecs())}}},
    }
    for setting, variable in (("duckdb_memory_limit", "INGEST_DUCKDB_MEMORY_LIMIT"), ("work_dir", "INGEST_WORK_DIR")):
        if os.environ.get(variable):
            run_config["resources"]["ingest_settings"]["config"][setting] = os.environ[variable]
    if chunk_rows is not None:
        run_config["ops"] = {"upload_chunks": {"config": {"chunk_rows": chunk_rows}}}
    return run_config


PROGRESS_ENV = "INGEST_PROGRESS"  # 1: always draw the progress bar, 0: never; default: when stderr is a terminal


@contextlib.contextmanager
def _progress_bar(upload_id: str):
    """A live one-line bar on the terminal's stderr (kept while the run's stderr goes to the log file)."""
    setting = os.environ.get(PROGRESS_ENV, "").strip()
    if setting == "0" or (setting != "1" and not os.isatty(2)):
        yield
        return
    from ingest_pipeline.core.progress import ProgressBar, UploadProgressReader
    from ingest_pipeline.defs.progress_files import progress_refresh

    home = resolve_home()
    reader = UploadProgressReader(Warehouse(home / "warehouse.duckdb"), home, upload_id, refresh=progress_refresh())
    sys.stderr.flush()
    terminal = os.dup(2)  # taken before _stderr_into points fd 2 at the log file
    try:
        with ProgressBar(terminal, reader.read, f"upload {upload_id}"):
            yield
    finally:
        os.close(terminal)


def _end_stranded_upload(upload_id: str, run_id: str, log_file: Path | None, instance) -> None:
    """An upload that a run left `processing` (a crash between stages, a killed step, a cancel) ends failed."""
    from dagster import DagsterRunStatus

    from ingest_pipeline.core.completion import notify_upload_finished
    from ingest_pipeline.core.uploads import FAILED, cancelled_error, mark_failed, worker_lost_error
    from ingest_pipeline.defs.run_health import lost_worker_reason

    warehouse = Warehouse(resolve_home() / "warehouse.duckdb")
    upload = get_upload(warehouse, upload_id)
    if upload is not None and upload["status"] not in (COMPLETED, FAILED):
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status == DagsterRunStatus.CANCELED:
            error = cancelled_error(upload_id, upload["stage"])
        elif run is not None and (lost := lost_worker_reason(instance, run_id)):  # distributed: a step's worker was lost
            error = worker_lost_error(upload_id, lost)
        else:
            error = f"The Dagster run {run_id} ended before the upload finished{f'; see {log_file}' if log_file else ''}."
        mark_failed(warehouse, upload_id, error)
        notify_upload_finished(warehouse, upload_id, run_id)


def _run_report_job(instance, upload_id: str, log_file: Path | None) -> None:
    """Materialize `client_report` for the upload; a failure is reported on stderr, never raised."""
    from dagster import reconstructable

    from ingest_pipeline.definitions import upload_report_job_def
    from ingest_pipeline.defs.partitions import PARTITION_TAG

    run_config = command_line_run_config(in_process=True)
    with _stderr_into(log_file):
        result = execute_job_as_the_ui_would_see_it(reconstructable(upload_report_job_def), instance, run_config,
                                                    {PARTITION_TAG: upload_id, "ingest/launched_by": "cli"})  # fmt: skip
    if not result.success:
        print(f"ingest-pipeline: the report of upload {upload_id} could not be written; see run {result.run_id}",
              file=sys.stderr)  # fmt: skip


@contextlib.contextmanager
def _stderr_into(log_file: Path | None):
    """Send this process's and its step processes' stdout and stderr (Dagster's log lines) to a log file.

    Both, not only stderr: Dagster's console logger colours its lines whenever *stdout* is a
    terminal (coloredlogs looks at stdout, writes to stderr), which filled the log with ANSI codes.
    """
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    streams = sys.stdout, sys.stderr
    # The streams too, not only the descriptors: where sys.stderr is not fd 2 (a caller that captures
    # it, as the tests do), the run's log lines still go to the log.
    with open(log_file, "ab") as log, open(log_file, "a", encoding="utf-8", errors="replace", buffering=1) as text:
        for fd in saved:
            os.dup2(log.fileno(), fd)
        sys.stdout = sys.stderr = text
        try:
            yield
        finally:
            sys.stdout, sys.stderr = streams
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)


def cmd_backfill(args: argparse.Namespace) -> int:
    """Re-run every registered upload of a form type (received on/after --since, of --company) through
    the same job as `run`; each replaces its own rows, so nothing is duplicated. Exit 0 when all completed."""
    home, filespecs = resolve_home(args.home), resolve_filespecs(args.filespecs)
    if not FORM_TYPE_RE.fullmatch(args.form_type):
        raise UsageError(f"{args.form_type!r} is not a form type name ([a-z][a-z0-9_]*)")
    _check_company(args.company)
    from ingest_pipeline.authoring.spec_commands import backfill_impact, check_backfill_args

    check_backfill_args(args, UsageError)
    try:
        since = dt.date.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise UsageError(f"--since {args.since!r} is not a date (YYYY-MM-DD)") from None
    spec = load_form_type(args.form_type, filespecs)
    warehouse = Warehouse(home / "warehouse.duckdb")
    uploads = sorted(
        (u for u in list_uploads(warehouse) if u["form_type"] == spec.form_type
         and (args.company is None or u["company_id"] == args.company)
         and (since is None or u["received_at"].date() >= since)),
        key=lambda u: (u["received_at"], u["upload_id"]),
    )  # fmt: skip
    scope = f"form type {spec.form_type!r}" + (f", company {args.company!r}" if args.company else "") + (
        f", received on or after {since}" if since else "")  # fmt: skip
    if not uploads:
        print(f"no uploads of {scope} in {warehouse.path}")
        return EXIT_OK
    if args.impact:
        return backfill_impact(args, home=home, filespecs=filespecs, spec=spec, uploads=uploads, scope=scope)
    if args.dry_run:
        for u in uploads:
            print(f"{u['upload_id']}  {u['company_id']}  {_show(u['received_at'])}  {u['status']}  {u['source']}")
        print(f"{len(uploads)} upload(s) of {scope}. `--launch` launches their backfill on the instance; the keys, "
              "as the UI writes a selection (in its dialog, the search box takes one key at a time):")  # fmt: skip
        print(", ".join(u["upload_id"] for u in uploads))
        return EXIT_OK
    if args.launch:
        return _launch_backfill(home, filespecs, uploads, scope)

    configure_environment(home, filespecs)
    reconcile_dead_runs(home)
    print(f"re-running {len(uploads)} upload(s) of {scope} under filespec version {spec.version}")
    completed = 0
    for before in uploads:
        upload_id, source = before["upload_id"], before["source"]
        if (skipped := _why_not_rerun(before)) is not None:
            print(skipped)
            continue
        with upload_lock(home, upload_id):
            register_upload(warehouse, upload_id=upload_id, company_id=before["company_id"], form_type=spec.form_type,
                            source=source, sha256=before["sha256"], size=before["bytes"], filespec_version=spec.version)  # fmt: skip
            run_ingest_job(upload_id, source=source, company_id=before["company_id"], form_type=spec.form_type,
                           in_process=runs_in_process(before["bytes"]), log_file=home / "logs" / f"run-{upload_id}.log",
                           launched_by="backfill")  # fmt: skip
        after = get_upload(warehouse, upload_id)
        counts = "/".join(_show(after[k]) for k in ("rows_total", "rows_accepted", "rows_rejected"))
        was = "/".join(_show(before[k]) for k in ("rows_total", "rows_accepted", "rows_rejected"))
        line = f"upload {upload_id} ({before['company_id']}): {after['status']}, rows total/accepted/rejected {counts} (was {before['status']}, {was})"
        if after["status"] != COMPLETED:
            line += f": {after['error'] or 'see the Dagster run'}"
        print(line)
        completed += after["status"] == COMPLETED
    print(f"{completed} of {len(uploads)} upload(s) completed")
    return EXIT_OK if completed == len(uploads) else EXIT_FAILED


def _why_not_rerun(upload: dict) -> str | None:
    """Why a backfill leaves an upload as it is (one line), or None when it can run again."""
    upload_id, source = upload["upload_id"], upload["source"]
    if upload["sha256"] is None:
        # Recorded without being read (a symbolic link, a refused name): there is nothing to re-run.
        return f"upload {upload_id}: skipped, its source {source} was never read ({upload['error']})"
    if not source.startswith(AZURE_URI_SCHEME) and not Path(source).is_file():
        # Left as it was: a run would fail it in prepare and keep its published rows.
        return f"upload {upload_id}: skipped, its source {source} no longer exists"
    return None


def _launch_backfill(home: Path, filespecs: Path, uploads: list[dict], scope: str) -> int:
    """A Dagster backfill of the uploads on the home's instance: the daemon (`ingest-pipeline ui`) runs
    it, and the UI's backfills page shows it; this command does not wait for it."""
    from ingest_pipeline.core.completion import DEFAULT_UI_URL, UI_URL_ENV
    from ingest_pipeline.defs.operator_actions import backfill_url, launch_backfill

    runnable = []
    for upload in uploads:
        if (skipped := _why_not_rerun(upload)) is not None:
            print(skipped)
        else:
            runnable.append(upload)
    if not runnable:
        print(f"nothing to backfill: none of the {len(uploads)} upload(s) of {scope} can run again")
        return EXIT_FAILED
    configure_environment(home, filespecs)
    # Every run of the backfill gets the same config: one process per run when all are small enough.
    run_config = command_line_run_config(in_process=all(runs_in_process(u["bytes"]) for u in runnable))
    run_config.pop("loggers")  # as UI-launched runs: Dagster's console is the daemon's
    with open_dagster_instance() as instance:
        backfill_id = launch_backfill(instance, [u["upload_id"] for u in runnable], run_config,
                                      title=f"ingest-pipeline backfill: {scope}")  # fmt: skip
    url = backfill_url(os.environ.get(UI_URL_ENV, "").strip() or DEFAULT_UI_URL, backfill_id)
    print(f"launched backfill {backfill_id} of {len(runnable)} upload(s) of {scope}; the Dagster daemon runs it "
          f"(`ingest-pipeline ui` starts one)")  # fmt: skip
    print(url)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from ingest_pipeline.core.progress import format_duration, format_rate, progress_of_uploads, status_record

    home = resolve_home(args.home)
    warehouse = Warehouse(home / "warehouse.duckdb")
    filters = _status_filters(args)
    if args.upload_id and any(value is not None for value in filters.values()):
        raise UsageError("the filters (--company, --form-type, --status, --since) list uploads; they do not go with UPLOAD_ID")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be 1 or more")
    # An upload whose run died shows failed, not processing; a dead run's orphaned step may even
    # hold the warehouse lock, so a busy warehouse is reason enough to look.
    if warehouse.path.exists() and (not warehouse.lock_free_within(0) or list_unfinished_uploads(warehouse)):
        reconcile_dead_runs(home)
    if args.upload_id:
        upload = get_upload(warehouse, args.upload_id) if warehouse.path.exists() else None
        if upload is None:
            raise UsageError(f"no upload {args.upload_id!r} in {warehouse.path}")
        from ingest_pipeline.core.chunk_status import as_dicts, chunks_of_upload
        from ingest_pipeline.defs.progress_files import chunks_refresh

        # First: distributed, it brings the chunk steps' files from the work container for both.
        chunks = chunks_of_upload(warehouse, home, upload, chunks_refresh())
        progress = progress_of_uploads(warehouse, home, [upload])[upload["upload_id"]]
        record = status_record(upload, progress)
        if args.json:
            print(json.dumps({**record, "chunks": as_dicts(chunks)}, indent=2, default=str))
            return EXIT_OK
        for key in upload:
            print(f"{key:>16}: {_show(record[key])}")
        print(f"{'rows_done':>16}: {progress.rows_done}")
        print(f"{'rows_per_second':>16}: {format_rate(progress.rows_per_second)}")
        if not progress.finished:
            print(f"{'eta':>16}: {format_duration(progress.eta_seconds)}")
        if chunks:  # seed 001's chunk status, as the HTTP API answers it
            table = [("chunk", "first row", "rows", "status", "rejected")] + [
                (str(c.chunk), str(c.first_row), str(c.rows), c.status, _show(c.rejected_rows)) for c in chunks]  # fmt: skip
            widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
            print()
            for row in table:
                print("  ".join(cell.rjust(width) if i != 3 else cell.ljust(width)
                                for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip())  # fmt: skip
        return EXIT_OK
    uploads = list_uploads(warehouse, args.limit, **filters) if warehouse.path.exists() else []
    progress = progress_of_uploads(warehouse, home, uploads) if uploads else {}
    if args.json:
        print(json.dumps([status_record(u, progress[u["upload_id"]]) for u in uploads], indent=2))
        return EXIT_OK
    if not uploads:
        which = " matching " + ", ".join(f"{key.replace('_id', '')} {value}" for key, value in filters.items()
                                         if value is not None) if any(v is not None for v in filters.values()) else ""  # fmt: skip
        print(f"no uploads{which} yet in {warehouse.path}" if not which else f"no uploads{which} in {warehouse.path}")
        return EXIT_OK
    # `rows done` beside rows/s: the rows the rate is of (the total is counted only at the merge).
    header = ("upload_id", "company", "form_type", "status", "stage", "chunks", "rows", "accepted", "rejected",
              "rows done", "rows/s", "eta", "error")  # fmt: skip
    rows = [header] + [
        (u["upload_id"], u["company_id"], u["form_type"], u["status"], u["stage"] or "",
         f"{progress[u['upload_id']].chunks_done}/{u['chunks_total'] or '?'}", _show(u["rows_total"]), _show(u["rows_accepted"]),
         _show(u["rows_rejected"]), str(progress[u["upload_id"]].rows_done), format_rate(progress[u["upload_id"]].rows_per_second),
         "" if progress[u["upload_id"]].finished else format_duration(progress[u["upload_id"]].eta_seconds),
         (u["error"] or "")[:60])
        for u in uploads
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _status_filters(args: argparse.Namespace) -> dict:
    """`status`'s filters, checked: a bad value is one sentence (exit 2), never part of a query's text."""
    _check_company(args.company)
    if args.form_type is not None and not FORM_TYPE_RE.fullmatch(args.form_type):
        raise UsageError(f"--form-type {args.form_type!r} is not a form type name ([a-z][a-z0-9_]*)")
    try:
        since = dt.date.fromisoformat(args.since) if args.since is not None else None
    except ValueError:
        raise UsageError(f"--since {args.since!r} is not a date (YYYY-MM-DD)") from None
    return {"company_id": args.company, "form_type": args.form_type, "status": args.status, "since": since}


def cmd_retry(args: argparse.Namespace) -> int:
    """Re-execute the upload's latest failed (or cancelled) run from failure; prints the outcome like `run`."""
    home, filespecs = resolve_home(args.home), resolve_filespecs(args.filespecs)
    warehouse = Warehouse(home / "warehouse.duckdb")
    if not warehouse.path.exists() or get_upload(warehouse, args.upload_id) is None:
        raise UsageError(f"no upload {args.upload_id!r} in {warehouse.path}")
    configure_environment(home, filespecs)
    from ingest_pipeline.core.prepare import UploadWorkspace
    from ingest_pipeline.defs.operator_actions import plan_retry, resume_upload

    upload_id = args.upload_id
    log_file = home / "logs" / f"run-{upload_id}.log"
    with upload_lock(home, upload_id), open_dagster_instance() as instance:
        reconcile_dead_runs(home, instance)
        upload = get_upload(warehouse, upload_id)
        source = upload["source"]
        plan = plan_retry(instance, upload, work_folder_exists=UploadWorkspace.of(home, upload_id).manifest.exists(),
                          source_exists=source.startswith(AZURE_URI_SCHEME) or Path(source).is_file())  # fmt: skip
        if plan.refusal:
            raise UsageError(plan.refusal)
        if plan.note:
            print(plan.note)
        common = dict(source=source, company_id=upload["company_id"], form_type=upload["form_type"],
                      in_process=runs_in_process(upload["bytes"]), log_file=log_file, launched_by="retry", instance=instance)  # fmt: skip
        if plan.whole_upload:
            spec = load_form_type(upload["form_type"], filespecs)
            register_upload(warehouse, upload_id=upload_id, company_id=upload["company_id"], form_type=spec.form_type,
                            source=source, sha256=upload["sha256"], size=upload["bytes"], filespec_version=spec.version)  # fmt: skip
            run_id = run_ingest_job(upload_id, **common)
        else:
            print(f"re-executing run {plan.parent.run_id} of upload {upload_id} from failure")
            resume_upload(warehouse, upload_id)
            run_id = run_ingest_job(upload_id, **common, retry_of=plan.parent)
    return _print_outcome(warehouse, upload_id, f"run {run_id}")


def _print_outcome(warehouse: Warehouse, upload_id: str, suffix: str = "") -> int:
    """The upload's status and counts, as `run` prints them; exit 0 when it completed, else 1."""
    upload = get_upload(warehouse, upload_id)
    print(f"upload {upload_id}: {upload['status']}" + (f" ({suffix})" if suffix else ""))
    if upload["rows_total"] is not None:
        print(f"  rows: {upload['rows_total']} total, {upload['rows_accepted']} accepted, {upload['rows_rejected']} rejected")
    if upload["status"] != COMPLETED:
        print(f"ingest-pipeline: upload {upload_id} failed: {upload['error'] or 'see the Dagster run'}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel the upload's queued or running runs as the UI's Terminate does; the upload ends failed."""
    home = resolve_home(args.home)
    warehouse = Warehouse(home / "warehouse.duckdb")
    upload = get_upload(warehouse, args.upload_id) if warehouse.path.exists() else None
    if upload is None:
        raise UsageError(f"no upload {args.upload_id!r} in {warehouse.path}")
    configure_environment(home, None)
    from ingest_pipeline.defs.operator_actions import cancel_upload_runs, unfinished_runs_of

    with open_dagster_instance() as instance:
        if not unfinished_runs_of(instance, args.upload_id) and upload["status"] in (COMPLETED, "failed"):
            raise UsageError(f"upload {args.upload_id} has no queued or running run to cancel (it is {upload['status']})")
        outcome = cancel_upload_runs(instance, warehouse, args.upload_id)
    for run_id, how in outcome.runs:
        print(f"run {run_id}: {how}")
    print(f"upload {args.upload_id}: {outcome.upload_status}" + (f": {outcome.error}" if outcome.error else ""))
    if outcome.upload_status == COMPLETED:
        print(f"ingest-pipeline: upload {args.upload_id} completed before the cancel took effect", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_partitions(args: argparse.Namespace) -> int:
    """The uploads partitions' keys that are no registered upload; with --prune they are deleted."""
    home = resolve_home(args.home)
    warehouse = Warehouse(home / "warehouse.duckdb")
    if not (home / "dagster").is_dir():
        print(f"no Dagster instance in {home / 'dagster'} yet: no partitions")
        return EXIT_OK
    configure_environment(home, None)
    from ingest_pipeline.defs.operator_actions import prune_partitions, stray_partitions

    with open_dagster_instance() as instance:
        strays = stray_partitions(instance, warehouse)
        pruned = set(prune_partitions(instance, warehouse, strays)) if args.prune else set()
    if not strays:
        print("every partition of `uploads` is a registered upload")
        return EXIT_OK
    for stray in strays:
        verdict = ("pruned" if stray.key in pruned else f"kept: {stray.kept}" if stray.kept
                   else "not a registered upload (`--prune` deletes it)")  # fmt: skip
        print(f"{stray.key}  {stray.runs} run(s)  {verdict}")
    if args.prune:
        print(f"pruned {len(pruned)} of {len(strays)} partition(s) that are no registered upload")
    else:
        print(f"{len(strays)} partition(s) of `uploads` are no registered upload (made with the UI's \"Add partition\")")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from ingest_pipeline.core.client_report import write_client_report

    modules_loaded()
    home, filespecs = resolve_home(args.home), resolve_filespecs(args.filespecs)
    warehouse = Warehouse(home / "warehouse.duckdb")
    if not warehouse.path.exists() or get_upload(warehouse, args.upload_id) is None:
        raise UsageError(f"no upload {args.upload_id!r} in {warehouse.path}")
    out = Path(args.out)
    if out.suffix.lower() != ".xlsx":
        raise UsageError(f"--out {out} must name an .xlsx file")
    report = write_client_report(warehouse, args.upload_id, out, home=home, filespecs=filespecs)
    print(f"wrote {report.path} (the report of {report.status} upload {args.upload_id})")
    return EXIT_OK


def cmd_webhooks(args: argparse.Namespace) -> int:
    """The outbox's pending and given-up deliveries; with --deliver, the due ones are sent first."""
    from ingest_pipeline.core.outbox import GIVEN_UP, PENDING, RetryPolicy, deliver_due, list_deliveries
    from ingest_pipeline.core.uploads import now
    from ingest_pipeline.core.webhook import URL_ENV, WebhookSettings

    if args.now and not args.deliver:
        raise UsageError("--now only goes with --deliver")
    warehouse = Warehouse(resolve_home(args.home) / "warehouse.duckdb")
    policy = RetryPolicy.from_env()
    if args.deliver:
        settings = WebhookSettings.from_env()
        if settings is None:
            raise UsageError(f"{URL_ENV} is not set: there is nowhere to deliver to")
        result = deliver_due(warehouse, settings, policy, due_only=not args.now)
        for attempt, status in result.attempts:
            print(f"delivery {attempt.delivery_id} (upload {attempt.upload_id}), attempt {attempt.attempt}: "
                  f"{status}" + ("" if attempt.succeeded else f": {attempt.error}"))  # fmt: skip
        print(result.summary())
    pending = list_deliveries(warehouse, (PENDING,))
    given_up = list_deliveries(warehouse, (GIVEN_UP,), limit=args.limit, newest_first=True)
    if not pending and not given_up:
        print(f"no pending or given-up webhook deliveries in {warehouse.path}")
        return EXIT_OK
    header = ("delivery_id", "upload_id", "event", "status", "attempts", "created_at", "next_attempt_at", "last_error")
    rows = [header] + [
        (d.delivery_id, d.upload_id, d.event, "sending" if d.status == PENDING and not d.claimable(now()) else d.status,
         str(d.attempts), _show(d.created_at),
         _show(d.next_attempt_at) if d.status == PENDING else "", (d.last_error or "")[:80])
        for d in [*pending, *given_up]
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def cmd_work_folders(args: argparse.Namespace) -> int:
    """Each upload's work folder with its size and retention verdict; with --clean, expired ones are removed."""
    from ingest_pipeline.core.retention import (
        REMOVABLE,
        RetentionPolicy,
        remove_expired_work_folders,
        survey_work_folders,
        work_folders_root,
    )

    home = resolve_home(args.home)
    warehouse = Warehouse(home / "warehouse.duckdb")
    policy = RetentionPolicy.from_env()
    root = work_folders_root(home)
    in_use = _uploads_with_unfinished_runs(home)
    if args.clean:
        from ingest_pipeline.core.deployment import deployment_from_env

        if deployment_from_env().distributed:  # the work container's copies too, and the runs' step outputs
            from ingest_pipeline.defs.distributed import remove_work_blobs

            configure_environment(home, None)
            with open_dagster_instance() as instance:
                removed = remove_expired_work_folders(warehouse, root, policy, in_use,
                                                      on_removed=lambda folder: remove_work_blobs(folder, instance))  # fmt: skip
        else:
            removed = remove_expired_work_folders(warehouse, root, policy, in_use)
        for folder in removed:
            print(f"removed {folder.path} ({_mib(folder.bytes)}; upload {folder.status} {_show(folder.finished_at)})")
        print(f"removed {len(removed)} work folder(s), {_mib(sum(f.bytes for f in removed))}")
    folders = survey_work_folders(warehouse, root, policy, in_use)
    if not folders:
        print(f"no work folders under {root}")
        return EXIT_OK
    header = ("upload_id", "status", "finished_at", "changed_at", "size", "retention")
    rows = [header] + [
        (f.upload_id, f.status or "-", _show(f.finished_at), _show(f.modified_at), _mib(f.bytes),
         f"{'removed at the next clean' if f.state == REMOVABLE else f.state}: {f.reason}")
        for f in folders
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    kept = sum(f.bytes for f in folders)
    retention = "never" if policy.keeps_for_ever else f"{policy.hours:g} h"
    print(f"{len(folders)} work folder(s) under {root}, {_mib(kept)}; retention {retention} (INGEST_WORK_RETENTION_HOURS)")
    return EXIT_OK


def _uploads_with_unfinished_runs(home: Path) -> set[str]:
    """Uploads with a Dagster run queued or in progress on the home's instance (none without one)."""
    if not (home / "dagster").is_dir():
        return set()
    from ingest_pipeline.defs.maintenance import uploads_with_unfinished_runs

    configure_environment(home, None)
    with open_dagster_instance() as instance:
        return uploads_with_unfinished_runs(instance)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def cmd_sql(args: argparse.Namespace) -> int:
    """One read-only query, under the pipeline's shared lock: it waits while a stage writes, and
    holds no writer up for longer than the query takes (unlike a connection opened outside)."""
    import csv

    import duckdb

    warehouse = Warehouse(resolve_home(args.home) / "warehouse.duckdb")
    if not warehouse.path.exists():
        raise UsageError(f"no warehouse at {warehouse.path} yet")
    with warehouse.connect(write=False) as connection:
        try:
            relation = connection.sql(args.query)
            if relation is None:
                raise UsageError("the query returned nothing; `sql` runs one read-only SELECT")
            if args.format == "table":
                print(relation)
            else:
                out = csv.writer(sys.stdout, lineterminator="\n")
                out.writerow(relation.columns)
                while batch := relation.fetchmany(10_000):
                    out.writerows(batch)
        except duckdb.Error as error:
            raise UsageError(str(error).splitlines()[0]) from None
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from ingest_pipeline.core.generate import generate_upload

    modules_loaded()
    if args.rows < 0:
        raise UsageError("--rows must be 0 or more")
    if not 0 <= args.error_rate <= 1:
        raise UsageError("--error-rate must be between 0 and 1")
    _check_company(args.company)
    home, filespecs = resolve_home(args.home), resolve_filespecs(args.filespecs)
    spec = load_form_type(args.form_type, filespecs)
    summary = generate_upload(spec, args.rows, Path(args.out), error_rate=args.error_rate, seed=args.seed,
                              company_id=args.company, home=home, filespecs_dir=filespecs)  # fmt: skip
    print(f"wrote {summary.out} ({summary.rows} rows, {summary.bytes} bytes) and {summary.answer_key} ({summary.errors} expected messages)")
    return EXIT_OK


DAGSTER_DEV_SUPERSEDED = "Function `dev_command` is superseded"  # its SupersessionWarning (a FutureWarning)


def cmd_ui(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)
    configure_environment(home, resolve_filespecs(args.filespecs))
    print(f"Dagster UI on http://{args.host}:{args.port} (instance {home / 'dagster'}); Ctrl-C stops it")
    # `dagster dev` itself warns that it is superseded by `dg dev` (dagster-dg-cli, not part of this
    # project): that one notice, Dagster's own, is not the user's business. Nothing else is filtered.
    command = [sys.executable, "-W", f"ignore:{DAGSTER_DEV_SUPERSEDED}:FutureWarning", "-m", "dagster", "dev",
               "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", args.host, "-p", args.port]  # fmt: skip
    os.chdir(home / "dagster")  # beside its dagster.yaml (from the project folder, dagster dev warns of two)
    # `dagster dev` gives SIGTERM the handler SIGINT has; a shell ignores SIGINT in a job it starts in
    # the background (`ingest-pipeline ui &`), so `kill` would do nothing: both stop it, wherever started.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execv(sys.executable, command)
    return EXIT_OK  # not reached


def cmd_daemon(args: argparse.Namespace) -> int:
    """`dagster-daemon run` on the home's instance: what `ui` starts besides the webserver, for a
    machine that runs the sensor and the run queue but serves no UI (a distributed deployment's
    warehouse VM). A bare `dagster-daemon run` would need DAGSTER_HOME set and the home's
    dagster.yaml (PostgreSQL when distributed) written first; this does both."""
    home = resolve_home(args.home)
    configure_environment(home, resolve_filespecs(args.filespecs))
    print(f"Dagster daemon on instance {home / 'dagster'} (the upload sensor, the run queue); Ctrl-C stops it", flush=True)
    os.chdir(home / "dagster")  # beside its dagster.yaml, as `ui`
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execv(sys.executable, [sys.executable, "-m", "dagster._daemon", "run", "-w", str(PROJECT_ROOT / "workspace.yaml")])
    return EXIT_OK  # not reached


if __name__ == "__main__":
    sys.exit(main())
