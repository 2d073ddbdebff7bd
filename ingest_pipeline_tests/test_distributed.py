"""INGEST_DEPLOYMENT=distributed end to end, with real parts on loopback: Redis (Celery broker and
backend), PostgreSQL (the Dagster instance), Azurite (the work files) and two Celery workers, each in
its own empty folder. Worker `owner` also serves the warehouse queue and is the only one that sees
the home (the DuckDB file); worker `any` sees nothing but the services. A multi-chunk upload through
`ingest-pipeline run` must give the embedded default's tables; then the scanning process of worker
`any` is killed with SIGKILL mid-chunk: the run fails, and `ingest-pipeline retry` (re-execution
from failure) with a fresh worker in its place gives the same tables, no upload left processing.
Then a whole worker (its main process and its pool) is killed mid-chunk, a lost machine: the run's
watch (defs/celery_executor.py) fails the run within INGEST_WORKER_LOST_SECONDS and a few seconds,
the upload ends `failed` saying how to resume, and `ingest-pipeline retry` gives the same tables.
And the sensor: `ingest-pipeline daemon` (a real dagster-daemon) and two workers; a two-chunk roster
renamed into the home's landing folder completes by itself to the embedded default's tables."""

import json
import os
import time
from pathlib import Path

import duckdb
import pytest

from ingest_pipeline.core import faults
from ingest_pipeline.core.filespec import load_form_type
from ingest_pipeline.core.generate import generate_upload
from ingest_pipeline_tests.distributed_services import start_postgres, start_redis, start_worker, stop
from ingest_pipeline_tests.test_faults import contract_tables

PROJECT = Path(__file__).resolve().parents[1]
ROWS, CHUNK_ROWS = 20_000, 7_000  # three chunks
RUN_SECONDS = 300


def cli(environment: dict, home: Path, *args: str, timeout: float = RUN_SECONDS):
    import subprocess
    import sys

    env = {**environment, "INGEST_HOME": str(home), "INGEST_PROGRESS": "0", "PYTHONPATH": str(PROJECT)}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run([sys.executable, "-m", "ingest_pipeline.cli", *args, "--home", str(home)], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip


def run_args(file: Path) -> list[str]:
    return ["run", str(file), "--company", "acme", "--form-type", "employee_roster", "--chunk-rows", str(CHUNK_ROWS)]


@pytest.fixture(scope="module")
def services(tmp_path_factory, azurite):
    folder = tmp_path_factory.mktemp("services")
    redis, broker = start_redis(folder)
    postgres, postgres_url, pg_folder = start_postgres()
    try:
        yield {"INGEST_DEPLOYMENT": "distributed", "INGEST_CELERY_BROKER": broker, "INGEST_POSTGRES_URL": postgres_url,
               "AZURE_STORAGE_ACCOUNT_URL": azurite.account_url, "AZURE_STORAGE_KEY": azurite.account_key,
               "INGEST_WORK_CONTAINER": f"work-{os.getpid()}"}  # fmt: skip
    finally:
        stop(postgres)
        stop(redis)
        import shutil

        shutil.rmtree(pg_folder, ignore_errors=True)


def base_environment() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "AZURE_", "DAGSTER_"))}
    return env


def upload_statuses(home: Path) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute("SELECT upload_id, status FROM ingest.uploads").fetchall()


@pytest.fixture(scope="module")
def roster_and_expected(tmp_path_factory) -> tuple[Path, dict]:
    """A generated multi-chunk roster and the tables the embedded default makes of it."""
    folder = tmp_path_factory.mktemp("roster")
    spec = load_form_type("employee_roster", PROJECT / "filespecs")
    roster = folder / "roster.csv"
    generate_upload(spec, ROWS, roster, error_rate=0.02, seed=21, company_id="acme", home=folder / "gen",
                    filespecs_dir=PROJECT / "filespecs")  # fmt: skip
    embedded = folder / "embedded"
    done = cli(base_environment(), embedded, *run_args(roster), "--executor", "in_process")
    assert done.returncode == 0, done.stderr
    expected = contract_tables(embedded)
    assert expected["uploads"][0][12] == 3  # chunks_total: a multi-chunk upload
    return roster, expected


def start_run(environment: dict, home: Path, roster: Path):
    """`ingest-pipeline run` in the background."""
    import subprocess
    import sys

    env = {**environment, "INGEST_HOME": str(home), "INGEST_PROGRESS": "0", "PYTHONPATH": str(PROJECT)}
    return subprocess.Popen([sys.executable, "-m", "ingest_pipeline.cli", *run_args(roster), "--home", str(home)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_marker(marker: Path, run, worker) -> int:
    """The pid of the process paused at the fault point, once it is there."""
    deadline = time.monotonic() + RUN_SECONDS
    while not (marker.exists() and marker.read_text().strip()):
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
        time.sleep(0.2)
    return int(marker.read_text().split()[0])


def retry_on_a_fresh_worker(environment: dict, home: Path, upload_id: str, folder: Path, workers: list, owner,
                            expected) -> None:  # fmt: skip
    """A fresh worker in a new empty folder takes the lost one's place; `ingest-pipeline retry`
    re-executes the failed run from failure to the embedded default's tables, the upload completed."""
    workers.append(start_worker(folder.name, folder, ["dagster"], {**environment, "INGEST_HOME": str(folder / "nohome")}))
    retried = cli(environment, home, "retry", upload_id)
    assert retried.returncode == 0, retried.stdout + retried.stderr + owner.log.read_text()[-3000:]
    assert "from failure" in retried.stdout
    assert contract_tables(home) == expected
    assert [s for _, s in upload_statuses(home)] == ["completed"]


@pytest.mark.distributed
@pytest.mark.azurite
def test_celery_workers_with_work_files_in_blob_give_the_embedded_tables_and_survive_a_killed_worker(
    services, azurite, tmp_path, roster_and_expected
):
    roster, expected = roster_and_expected

    environment = {**base_environment(), **services}
    home = tmp_path / "home"
    owner = start_worker("owner", tmp_path / "worker-owner", ["dagster", "warehouse"],
                         {**environment, "INGEST_HOME": str(home)})  # fmt: skip
    # Worker `any` has no home of its own but an empty folder; its first scan pauses at the fault point.
    marker = tmp_path / "worker-any-2" / "marker"
    any_worker = start_worker("any", tmp_path / "worker-any", ["dagster"],
                              {**environment, "INGEST_HOME": str(tmp_path / "worker-any" / "nohome")})  # fmt: skip
    workers = [owner, any_worker]
    try:
        first = cli(environment, home, *run_args(roster))
        assert first.returncode == 0, first.stdout + first.stderr + owner.log.read_text()[-3000:]
        assert contract_tables(home) == expected
        served = {w.name: w.log.read_text().count("execute_plan") for w in (owner, any_worker)}
        assert served["any"] > 0 and served["owner"] > 0, served  # both workers took steps
        assert not (tmp_path / "worker-any" / "nohome").exists()  # it never needed a home
        assert not list((tmp_path / "worker-any" / "tmp").glob("ingest-step-*"))  # its step folders removed
        names = [b.name for b in azurite.container_client(services["INGEST_WORK_CONTAINER"], create=False).list_blobs()]
        assert any("/chunks/chunk-00003.bin" in n for n in names) and any(
            "/scan/chunk-00003.rows.parquet" in n for n in names
        )

        # The same upload again, from another home, with worker `any` replaced by one that pauses mid-scan.
        any_worker.kill_all()
        marker.parent.mkdir(parents=True)
        paused = start_worker("any2", tmp_path / "worker-any-2", ["dagster"], {
            **environment, "INGEST_HOME": str(marker.parent / "nohome"), faults.POINT_ENV: faults.SCAN,
            faults.MARKER_ENV: str(marker), faults.ACTION_ENV: "pause"})  # fmt: skip
        workers.append(paused)
        second_home = tmp_path / "home2"
        owner.kill_all()
        owner = start_worker("owner2", tmp_path / "worker-owner-2", ["dagster", "warehouse"],
                             {**environment, "INGEST_HOME": str(second_home)})  # fmt: skip
        workers.append(owner)
        run = start_run(environment, second_home, roster)
        paused_pid = wait_for_marker(marker, run, paused)
        # While the chunk is being scanned on the other machine, the owner's status shows it so:
        # its status file came through the container (pushed as the scan began, pulled to read).
        ((upload_id, _),) = upload_statuses(second_home)
        shown = cli(environment, second_home, "status", upload_id, "--json")
        assert shown.returncode == 0, shown.stderr
        assert "processing" in [c["status"] for c in json.loads(shown.stdout)["chunks"]], shown.stdout
        os.kill(paused_pid, 9)  # kill -9 of the process scanning the chunk
        out, err = run.communicate(timeout=RUN_SECONDS)
        assert run.returncode == 1, out + err  # the run failed, and said so
        assert "failed" in out
        paused.kill_all()  # the machine is gone; a fresh worker takes its place
        ((upload_id, status),) = upload_statuses(second_home)
        assert status == "failed"
        retry_on_a_fresh_worker(environment, second_home, upload_id, tmp_path / "worker-any-3", workers, owner, expected)
    finally:
        for worker in workers:
            stop(worker.process)


WORKER_LOST_SECONDS = 6


@pytest.mark.distributed
@pytest.mark.azurite
def test_a_whole_worker_lost_mid_chunk_fails_the_run_within_the_bound_and_retry_finishes_it(
    services, tmp_path, roster_and_expected, monkeypatch
):
    """kill -9 of a worker's whole process group (main process and pool: a lost machine) while it
    scans a chunk: nobody reports its task, and with early acknowledgement nobody redelivers it;
    the run's watch must notice its worker is gone and fail the run, or the run waits for ever."""
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

    from ingest_pipeline.defs.jobs import INGEST_JOB_NAME
    from ingest_pipeline.defs.partitions import PARTITION_TAG
    from ingest_pipeline.defs.run_health import lost_worker_reason

    roster, expected = roster_and_expected
    environment = {**base_environment(), **services, "INGEST_WORKER_LOST_SECONDS": str(WORKER_LOST_SECONDS)}
    home = tmp_path / "home"
    marker = tmp_path / "worker-lost" / "marker"
    marker.parent.mkdir()
    owner = start_worker("owner", tmp_path / "worker-owner", ["dagster", "warehouse"],
                         {**environment, "INGEST_HOME": str(home)})  # fmt: skip
    lost = start_worker("lost", tmp_path / "worker-lost", ["dagster"], {
        **environment, "INGEST_HOME": str(marker.parent / "nohome"), faults.POINT_ENV: faults.SCAN,
        faults.MARKER_ENV: str(marker), faults.ACTION_ENV: "pause"})  # fmt: skip
    workers = [owner, lost]
    try:
        run = start_run(environment, home, roster)
        wait_for_marker(marker, run, lost)
        lost.kill_all()  # the whole worker, as a lost machine: no process is left to report the task
        killed_at = time.time()
        out, err = run.communicate(timeout=RUN_SECONDS)
        assert run.returncode == 1, out + err
        assert "failed" in out

        ((upload_id, status),) = upload_statuses(home)
        assert status == "failed"  # not left `processing`
        monkeypatch.setenv("INGEST_POSTGRES_URL", services["INGEST_POSTGRES_URL"])
        with DagsterInstance.from_config(str(home / "dagster")) as instance:
            (record,) = instance.get_run_records(RunsFilter(job_name=INGEST_JOB_NAME, tags={PARTITION_TAG: upload_id}),
                                                 limit=1)  # fmt: skip
            assert record.dagster_run.status == DagsterRunStatus.FAILURE
            reason = lost_worker_reason(instance, record.dagster_run.run_id)  # the engine event's metadata
            # Noticed within the bound: the worker silent for WORKER_LOST_SECONDS, asked every second,
            # then the owner's steps in flight finished and the run ended (a loaded machine: a margin).
            ended_after = record.end_time - killed_at
            assert ended_after < WORKER_LOST_SECONDS + 30, ended_after
            print(f"\nwhole worker lost: the run ended failed {ended_after:.1f} s after the kill "
                  f"(INGEST_WORKER_LOST_SECONDS={WORKER_LOST_SECONDS}); the command said: {(out + err).strip().splitlines()[-1]}")  # fmt: skip
            assert record.dagster_run.run_id not in instance.event_log_storage.get_concurrency_run_ids()
            engine_events = instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
            assert reason and any(reason in e.dagster_event.message for e in engine_events)  # the UI shows it
        assert reason.startswith("Celery worker lost@") and "scan_upload_chunk[chunk_" in reason, reason
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
            (error,) = connection.execute("SELECT error FROM ingest.uploads").fetchone()
        assert error.startswith("Celery worker lost@") and error.endswith(
            f"; `ingest-pipeline retry {upload_id}` resumes it where it stopped."
        ), error

        retry_on_a_fresh_worker(environment, home, upload_id, tmp_path / "worker-fresh", workers, owner, expected)
    finally:
        for worker in workers:
            stop(worker.process)


BENCH_ROWS = int(os.environ.get("INGEST_DISTRIBUTED_BENCH_ROWS", "1000000"))
BENCH_CHUNK_ROWS = int(os.environ.get("INGEST_DISTRIBUTED_BENCH_CHUNK_ROWS", "200000"))
BENCH_CSV = os.environ.get("INGEST_DISTRIBUTED_BENCH_CSV")  # an existing roster instead of a generated one
# Free disk the benchmark wants, per byte of roster: Azurite's copy of the chunks and scan outputs,
# two homes' work folders and warehouses, the roster itself (1,000,000 rows used 5.0x, 797 MiB).
BENCH_DISK_FACTOR = 8


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.azurite
def test_benchmark_two_local_workers_against_the_embedded_default(services, tmp_path, monkeypatch):
    """Figures, not a pass/fail speed claim: `pytest -m slow -s -k benchmark_two_local_workers`
    (INGEST_DISTRIBUTED_BENCH_ROWS, default 1M; _CHUNK_ROWS, default 200k; _CSV, a roster already
    made, e.g. by ../shared/bench/gen_roster.py, used as is). Prints the wall time of
    `ingest-pipeline run` embedded (multiprocess) and distributed, and each scan step's overhead:
    its Dagster step time minus the scan's own measured seconds (the blob transfers, the worker's
    step start-up). Its work container is in an Azurite of its own *on disk* (the suite's is in
    memory, at most 512 MB of blobs): 5,000,000 rows put about 1 GB there."""
    import shutil

    from dagster import DagsterInstance, RunsFilter

    from ingest_pipeline.defs.jobs import INGEST_JOB_NAME
    from ingest_pipeline_tests.conftest import running_azurite

    if BENCH_CSV:
        roster = Path(BENCH_CSV)
    else:
        spec = load_form_type("employee_roster", PROJECT / "filespecs")
        roster = tmp_path / "roster.csv"
        generate_upload(spec, BENCH_ROWS, roster, error_rate=0.02, seed=5, company_id="acme", home=tmp_path / "gen",
                        filespecs_dir=PROJECT / "filespecs")  # fmt: skip
    needed, free = BENCH_DISK_FACTOR * roster.stat().st_size, shutil.disk_usage(tmp_path).free
    if free < needed:
        pytest.fail(f"The benchmark of {roster} wants {needed / 2**30:.1f} GiB free under {tmp_path}, "
                    f"which has {free / 2**30:.1f} GiB.", pytrace=False)  # fmt: skip
    args = ["run", str(roster), "--company", "acme", "--form-type", "employee_roster", "--chunk-rows", str(BENCH_CHUNK_ROWS)]
    started = time.monotonic()
    embedded = cli(base_environment(), tmp_path / "embedded", *args, "--executor", "multiprocess", timeout=3600)
    embedded_seconds = time.monotonic() - started
    assert embedded.returncode == 0, embedded.stderr

    home = tmp_path / "home"
    (tmp_path / "azurite").mkdir()
    with running_azurite(tmp_path / "azurite", on_disk=True) as disk:
        environment = {**base_environment(), **services, "AZURE_STORAGE_ACCOUNT_URL": disk.account_url,
                       "AZURE_STORAGE_KEY": disk.account_key}  # fmt: skip
        workers = [start_worker("owner", tmp_path / "w-owner", ["dagster", "warehouse"], {**environment, "INGEST_HOME": str(home)}),
                   start_worker("any", tmp_path / "w-any", ["dagster"], {**environment, "INGEST_HOME": str(tmp_path / "w-any" / "nohome")})]  # fmt: skip
        try:
            started = time.monotonic()
            distributed = cli(environment, home, *args, timeout=3600)
            distributed_seconds = time.monotonic() - started
            assert distributed.returncode == 0, distributed.stdout + distributed.stderr
        finally:
            for worker in workers:
                stop(worker.process)
        azurite_bytes = folder_bytes(tmp_path / "azurite" / "data")
    assert contract_tables(home) == contract_tables(tmp_path / "embedded")

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        scans = dict(
            connection.execute("SELECT chunk, seconds FROM ingest.stage_metrics WHERE stage = 'scan'").fetchall()
        )
        (upload_id, rows) = connection.execute("SELECT upload_id, rows_total FROM ingest.uploads").fetchone()
    monkeypatch.setenv("INGEST_POSTGRES_URL", services["INGEST_POSTGRES_URL"])
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        from ingest_pipeline.defs.partitions import PARTITION_TAG

        (record,) = instance.get_run_records(RunsFilter(job_name=INGEST_JOB_NAME, tags={PARTITION_TAG: upload_id}), limit=1)
        stats = {s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(record.dagster_run.run_id)}
    overheads = sorted(stats[key] - scans[int(key.split("chunk_")[-1].rstrip("]"))]
                       for key in stats if "scan_upload_chunk[chunk_" in key)  # fmt: skip
    print(
        f"\n{rows} rows ({roster.stat().st_size / 2**20:.0f} MiB), {len(overheads)} chunks of {BENCH_CHUNK_ROWS}: "
        f"embedded (multiprocess) {embedded_seconds:.1f} s, distributed (2 Celery workers) {distributed_seconds:.1f} s; "
        f"per scan step overhead (step time - scan time) median {overheads[len(overheads) // 2]:.2f} s, "
        f"max {overheads[-1]:.2f} s; steps: {len(stats)}, their Dagster times summed {sum(stats.values()):.1f} s; "
        f"disk: Azurite {azurite_bytes / 2**20:.0f} MiB, the test's folder {folder_bytes(tmp_path) / 2**20:.0f} MiB"
    )


SENSOR_ROWS = 500_000  # about 80 MiB: two chunks of the default size (about 64 MiB of records each)


@pytest.mark.distributed
@pytest.mark.azurite
@pytest.mark.daemon
def test_a_file_landing_is_ingested_by_the_daemons_sensor_on_celery_workers_to_the_embedded_tables(
    services, tmp_path, monkeypatch
):
    """The mission's main path in distributed mode: `ingest-pipeline daemon` (a real `dagster-daemon`
    on the home's PostgreSQL instance), its upload sensor seeing a file land in
    `<home>/landing/acme/employee_roster/`, its run (the default run launcher, the celery executor)
    handing the steps to two workers; the upload must complete with the embedded default's tables
    for the same file, nothing left processing."""
    import shutil
    import subprocess
    import sys

    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
    from dagster._core.storage.dagster_run import FINISHED_STATUSES

    from ingest_pipeline.core.deployment import distributed_instance_yaml
    from ingest_pipeline.defs.jobs import INGEST_JOB_NAME
    from ingest_pipeline.defs.partitions import PARTITION_TAG
    from ingest_pipeline_tests.test_daemon_faults import upload_state, wait_for

    started = time.monotonic()
    spec = load_form_type("employee_roster", PROJECT / "filespecs")
    roster = tmp_path / "roster.csv"
    generate_upload(spec, SENSOR_ROWS, roster, error_rate=0.02, seed=33, company_id="acme", home=tmp_path / "gen",
                    filespecs_dir=PROJECT / "filespecs")  # fmt: skip
    embedded = tmp_path / "embedded"
    done = cli(base_environment(), embedded, "run", str(roster), "--company", "acme", "--form-type", "employee_roster",
               "--executor", "in_process")  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = contract_tables(embedded)
    assert expected["uploads"][0][12] >= 2, expected["uploads"]  # chunks_total: a multi-chunk upload
    prepared = time.monotonic()

    home = tmp_path / "home"
    environment = {**base_environment(), **services, "INGEST_HOME": str(home), "PYTHONPATH": str(PROJECT)}
    owner = start_worker("owner", tmp_path / "worker-owner", ["dagster", "warehouse"], environment)
    any_worker = start_worker("any", tmp_path / "worker-any", ["dagster"],
                              {**environment, "INGEST_HOME": str(tmp_path / "worker-any" / "nohome")})  # fmt: skip
    daemon_env = {**environment, "INGEST_SENSOR_INTERVAL_SECONDS": "1", "INGEST_SENSOR_SETTLE": "min_age",
                  "INGEST_SENSOR_MIN_AGE_SECONDS": "1"}  # fmt: skip
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:  # `ingest-pipeline daemon`: the home's instance configured, then dagster-daemon
        daemon = subprocess.Popen([sys.executable, "-m", "ingest_pipeline.cli", "daemon", "--home", str(home)],
                                  cwd=tmp_path, env=daemon_env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: (home / "dagster" / "dagster.yaml").exists(), 60, "no dagster.yaml", daemon, log)
        instance_yaml = (home / "dagster" / "dagster.yaml").read_text()
        assert instance_yaml == distributed_instance_yaml((PROJECT / "dagster.yaml").read_text())  # on PostgreSQL
        landing = home / "landing" / "acme" / "employee_roster"
        landing.mkdir(parents=True)
        shutil.copyfile(roster, landing / ".roster.csv.part")  # the client's upload, renamed when complete
        os.replace(landing / ".roster.csv.part", landing / "roster.csv")
        landed = time.monotonic()
        status, error = wait_for(lambda: (s := upload_state(home)) and s[0] in ("completed", "failed") and s, 240,
                                 "the landed upload did not end", daemon, log)  # fmt: skip
        ingested = time.monotonic()
        assert status == "completed", f"{error}\n{owner.log.read_text()[-3000:]}"
        # The upload is `completed` at publish; its run ends a moment later (its checks): the daemon,
        # whose code server runs the run's process, and the workers stay up until it has.
        monkeypatch.setenv("INGEST_POSTGRES_URL", services["INGEST_POSTGRES_URL"])
        with DagsterInstance.from_config(str(home / "dagster")) as instance:
            # The module's PostgreSQL holds the other tests' runs too: this upload's run, the only one.
            ((upload_id, _),) = upload_statuses(home)
            ended = RunsFilter(job_name=INGEST_JOB_NAME, tags={PARTITION_TAG: upload_id}, statuses=FINISHED_STATUSES)
            (record,) = wait_for(lambda: instance.get_run_records(ended), 60, "the run did not end", daemon, log)
    finally:
        stop(daemon, seconds=60)
        for worker in (owner, any_worker):
            stop(worker.process)
    assert record.dagster_run.status == DagsterRunStatus.SUCCESS
    assert record.dagster_run.tags["ingest/launched_by"] == "sensor"
    assert record.dagster_run.run_config["execution"]["config"]["broker"] == services["INGEST_CELERY_BROKER"]
    assert contract_tables(home) == expected
    assert [s for _, s in upload_statuses(home)] == ["completed"]  # nothing left processing
    served = {w.name: w.log.read_text().count("execute_plan") for w in (owner, any_worker)}
    assert served["any"] > 0 and served["owner"] > 0, served  # both workers took steps
    assert not (tmp_path / "worker-any" / "nohome").exists()
    print(f"\nsensor, distributed: {SENSOR_ROWS} rows ({roster.stat().st_size / 2**20:.0f} MiB, "
          f"{expected['uploads'][0][12]} chunks) completed {ingested - landed:.1f} s after landing "
          f"(generation and embedded run {prepared - started:.1f} s; steps: {served})")  # fmt: skip
