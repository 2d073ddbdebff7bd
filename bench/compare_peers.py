"""Side-by-side speed and memory: ingest_pipeline against peer tools on the same roster file.

usage: python bench/compare_peers.py [--rows N] [--bad RATE] [--peers duckdb_parse,polars_rules,...|none]
                                     [--executors default,multiprocess,in_process] [--small-rows 1000]
                                     [--sensor]
                                     [--large] [--work DIR] [--keep]

Generates one roster with ../shared/bench/gen_roster.py, measures each peer with
../shared/bench/peers.py and the pipeline with `ingest-pipeline run` (the real Dagster job) in the
same run, and prints rows per second and the ratios issue 8 asks for:

- end to end (default settings) / polars_parse wall seconds (target <= 5, stretch 2);
- the scan stage summed over all chunks (ingest.stage_metrics) / polars_rules, both in wall
  seconds and in CPU seconds (target <= 2; CPU seconds are what the machine's noise moves least);
- rows per second, each process's peak RSS and the whole process tree's (sampled), as a sum of
  PSS (what the tree occupies) and as a sum of RSS (which counts shared pages once per sharer);
- a small upload (--small-rows, default 1,000) end to end through `ingest-pipeline run` (target <= 4 s),
  as a new home's first upload (which also creates the Dagster instance and the warehouse) and as
  the same home's second;
- with --sensor, the same small upload from landing folder to `completed` through the sensor: a real
  `dagster-daemon` on a fresh home (default settings), the file dropped into
  `<home>/landing/acme/employee_roster/` just after the sensor's first tick has ended (the worst
  moment: a file landing just before a tick is registered up to 5 s sooner), `ingest.uploads` polled
  read-only until the upload has ended (target <= 15 s). The daemon is always stopped afterwards.

`--large` is the 10 GB case: 73,000,000 rows (about 10 GB), the pipeline alone (a peer would not fit
in memory), minutes end to end against the 5-minute target. The roster is kept in `--work` for the
next run; the pipeline's home (about 15 GB of work files and warehouse) is deleted afterwards unless `--keep`.

The machines are noisy: read the ratios against the peers measured in the same run, not absolute times.
"""

import argparse
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psutil

PROJECT = Path(__file__).resolve().parents[1]
SHARED_BENCH = PROJECT.parent / "shared" / "bench"
if not SHARED_BENCH.exists():
    SHARED_BENCH = Path("/work/shared/bench")
CLI = [sys.executable, "-m", "ingest_pipeline.cli"]
DAEMON = Path(sys.executable).with_name("dagster-daemon")
MIB = 2**20
PSS_FROM_BYTES = 64 * MIB
SENSOR_TIMEOUT_SECONDS = 180.0  # the daemon's start-up, the first tick, then landing to an ended upload


@dataclass
class Measured:
    seconds: float  # wall
    cpu_seconds: float  # user + system of the whole waited-for process tree
    peak_process_rss: int  # the largest single process's high-water mark (bytes)
    peak_tree_rss: int  # the largest sum of RSS over the process tree at one moment (sampled)
    # The same with each process's PSS: what the tree occupies. A sum of RSS counts every shared page
    # once per sharer: the fork server's imported modules in each step process, and the whole memory of
    # a process again in a child it is forking (Dagster spawns log-capturing `tail`s at each step).
    peak_tree_pss: int
    stdout: str


# Runs a command; reports the largest RSS and the CPU time among its waited-for descendants.
_RUSAGE_WRAPPER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(f'__peak_child_rss_kb={u.ru_maxrss} __child_cpu={u.ru_utime + u.ru_stime}', file=sys.stderr); "
    "sys.exit(code)"
)


def measure(command: list[str], env: dict | None = None, cwd: Path | None = None, sample_every: float = 0.05) -> Measured:
    """Wall and CPU seconds, peak RSS of the largest process and of the whole tree, and stdout."""
    started = time.perf_counter()
    # cwd: `python -m` puts the working directory first on sys.path, so it decides which code runs.
    process = subprocess.Popen([sys.executable, "-c", _RUSAGE_WRAPPER, *command], env=env, cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    peak = {"tree": 0, "tree_pss": 0, "one": 0}
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                sizes, proportional = [], []
                for member in tree:
                    try:
                        rss = member.memory_info().rss
                        # PSS (a shared page counted once over its sharers) for the large members only:
                        # reading it costs milliseconds; a small member's RSS bounds its PSS.
                        pss = member.memory_full_info().pss if rss > PSS_FROM_BYTES else rss
                    except psutil.Error:
                        continue
                    sizes.append(rss)
                    proportional.append(pss)
                peak["tree"] = max(peak["tree"], sum(sizes))
                peak["tree_pss"] = max(peak["tree_pss"], sum(proportional))
                peak["one"] = max(peak["one"], max(sizes, default=0))
            except psutil.Error:
                return
            done.wait(sample_every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - started
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-2000:]}")
    match = re.search(r"__peak_child_rss_kb=(\d+) __child_cpu=([0-9.]+)", stderr)
    rss, cpu = (int(match.group(1)) * 1024, float(match.group(2))) if match else (0, 0.0)
    return Measured(seconds, cpu, max(rss, peak["one"]), peak["tree"], peak["tree_pss"], stdout)


LARGE_ROWS = 73_000_000  # about 10 GB of roster
LARGE_TARGET_SECONDS = 300


def roster_file(work: Path, rows: int, bad: float, seed: int | None = None) -> Path:
    path = work / (f"roster-{rows}.csv" if seed is None else f"roster-{rows}-seed{seed}.csv")
    if not path.exists():
        command = [sys.executable, str(SHARED_BENCH / "gen_roster.py"), str(path), str(rows), "--bad", str(bad)]
        subprocess.run(command + ([] if seed is None else ["--seed", str(seed)]), check=True)
    return path


@dataclass
class PipelineRun:
    measured: Measured
    rows: int
    rejected: int
    stages: list[tuple]  # stage, steps, wall seconds, cpu seconds, peak RSS


def run_pipeline(roster: Path, home: Path, executor: str) -> PipelineRun:
    """`ingest-pipeline run` end to end (hash, registration, Dagster run, DuckDB) in a fresh home."""
    env = {**os.environ, "INGEST_HOME": str(home), "INGEST_PROGRESS": "0", "PYTHONPATH": str(PROJECT)}
    command = [*CLI, "run", str(roster), "--company", "acme", "--form-type", "employee_roster"]
    if executor != "default":
        command += ["--executor", executor]
    measured = measure(command, env=env, cwd=PROJECT)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        upload_id, total, rejected = db.execute(
            "SELECT upload_id, rows_total, rows_rejected FROM ingest.uploads ORDER BY received_at DESC LIMIT 1").fetchone()  # fmt: skip
        stages = db.execute(
            "SELECT stage, count(*), sum(seconds), sum(cpu_seconds), max(peak_rss_bytes) FROM ingest.stage_metrics "
            "WHERE upload_id = ? GROUP BY stage ORDER BY min(started_at)", [upload_id]).fetchall()  # fmt: skip
    return PipelineRun(measured, total, rejected, stages)


@dataclass
class SensorRun:
    seconds: float  # the file's landing to its upload ended, as `ingest.uploads` shows it
    status: str
    registered: float  # seconds after landing: the sensor registered the upload
    started: float | None  # the run's prepare step began
    error: str | None


def _upload_row(warehouse_path: Path) -> tuple | None:
    """The newest upload's (status, received_at, started_at, error), read under the pipeline's shared
    lock, never before the sensor has created the warehouse (a first reader would create it)."""
    if str(PROJECT) not in sys.path:
        sys.path.insert(0, str(PROJECT))
    from ingest_pipeline.core.warehouse import Warehouse

    if not warehouse_path.exists():
        return None
    with Warehouse(warehouse_path).connect(write=False) as db:
        return db.execute("SELECT status, received_at, started_at, error FROM ingest.uploads "
                          "ORDER BY received_at DESC LIMIT 1").fetchone()  # fmt: skip


def _runs_ended(dagster_home: Path) -> bool:
    """Whether the instance has runs and all of them have ended (read as the Dagster UI reads them)."""
    from dagster import DagsterInstance
    from dagster._core.storage.dagster_run import FINISHED_STATUSES

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        return bool(runs) and all(run.status in FINISHED_STATUSES for run in runs)


def _wait(condition, seconds: float, what: str, daemon: subprocess.Popen, log: Path, every: float = 0.25):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"dagster-daemon exited ({daemon.returncode}) {what}; log {log}:\n{log.read_text()[-2000:]}")
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out after {seconds:.0f}s {what}; daemon log {log}")


def run_through_sensor(roster: Path, home: Path) -> SensorRun:
    """Landing to ended through a real `dagster-daemon` on a fresh home (the daemon of `ingest-pipeline ui`)."""
    (home / "dagster").mkdir(parents=True)
    shutil.copyfile(PROJECT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    landing = home / "landing" / "acme" / "employee_roster"
    landing.mkdir(parents=True)
    env = {**os.environ, "INGEST_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "PYTHONPATH": str(PROJECT)}
    log = home / "daemon.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen([str(DAEMON), "run", "-w", str(PROJECT / "workspace.yaml")], cwd=home / "dagster",
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + SENSOR_TIMEOUT_SECONDS
        # Landing just after a tick that found nothing, the worst moment: the sensor's next tick sees
        # the file and the one after settles it (seen unchanged), 5-10 s later.
        _wait(lambda: "Sensor upload_sensor skipped" in log.read_text(errors="replace"),
              deadline - time.monotonic(), "before the upload sensor's first tick", daemon, log)  # fmt: skip
        shutil.copyfile(roster, landing / f".{roster.name}.part")
        landed = time.monotonic()
        landed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        os.replace(landing / f".{roster.name}.part", landing / roster.name)
        row = _wait(lambda: (r := _upload_row(home / "warehouse.duckdb")) and r[0] in ("completed", "failed") and r,
                    deadline - time.monotonic(), "before the upload ended", daemon, log)  # fmt: skip
        seconds = time.monotonic() - landed
        # Its Dagster run goes on a moment (the last asset check); stopping the daemon now would fail it.
        _wait(lambda: _runs_ended(home / "dagster"), 60, "before the upload's Dagster run ended", daemon, log, every=0.5)
    finally:
        _stop(daemon)
    status, received_at, started_at, error = row
    started = (started_at - landed_at).total_seconds() if started_at else None
    return SensorRun(seconds, status, (received_at - landed_at).total_seconds(), started, error)


def _stop(daemon: subprocess.Popen) -> None:
    """The daemon and everything it started (code server, run workers): its own process group."""
    if daemon.poll() is None:
        os.killpg(daemon.pid, signal.SIGTERM)
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(daemon.pid, signal.SIGKILL)  # anything left in the group (a run worker)
    except ProcessLookupError:
        pass
    daemon.wait()


def describe_stages(run: PipelineRun) -> None:
    for stage, steps, wall, cpu, rss in run.stages:
        print(f"      {stage:<8} {steps:>3} step(s) {wall:7.2f} s  cpu {cpu:7.2f} s  peak RSS {rss / MIB:6.0f} MiB")


def describe(name: str, rows: int, m: Measured, note: str = "") -> None:
    print(f"  {name:<24} {m.seconds:7.2f} s  cpu {m.cpu_seconds:7.2f} s  {rows / m.seconds:>11,.0f} rows/s  "
          f"peak RSS {m.peak_process_rss / MIB:6.0f} MiB (tree {m.peak_tree_pss / MIB:6.0f} MiB PSS, "
          f"{m.peak_tree_rss / MIB:6.0f} MiB RSS)  {note}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--bad", type=float, default=0.01)
    parser.add_argument("--peers", default="duckdb_parse,polars_parse,polars_rules,pandera_polars")
    parser.add_argument("--executors", default="default", help="pipeline executors to measure: default (no flag), multiprocess, in_process, auto ('' for none)")
    parser.add_argument("--small-rows", type=int, default=1_000, help="rows of the small upload timed end to end (0: skip)")
    parser.add_argument("--sensor", action="store_true",
                        help="also time the small upload from landing folder to completed through a real dagster-daemon")
    parser.add_argument("--work", default=None, help="folder for the files and the pipeline homes (default: a temp folder)")
    parser.add_argument("--large", action="store_true", help=f"the 10 GB case: --rows {LARGE_ROWS:,} --peers none --small-rows 0")
    parser.add_argument("--keep", action="store_true", help="with --large: keep the pipeline's home (work files, warehouse)")
    args = parser.parse_args()
    if args.large:
        args.rows, args.peers, args.small_rows = LARGE_ROWS, "none", 0
    work = Path(args.work or tempfile.mkdtemp(prefix="ingest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    roster = roster_file(work, args.rows, args.bad)
    size = roster.stat().st_size
    print(f"file: {roster} ({args.rows:,} rows, {size / MIB:,.0f} MiB); machine: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip

    peers: dict[str, Measured] = {}
    for tool in [] if args.peers == "none" else filter(None, args.peers.split(",")):
        peers[tool] = measure([sys.executable, str(SHARED_BENCH / "peers.py"), str(roster), tool])
        describe(tool, args.rows, peers[tool], f"({peers[tool].stdout.strip()})")

    runs: dict[str, PipelineRun] = {}
    for executor in filter(None, args.executors.split(",")):
        stamp = time.strftime("%H%M%S")
        run = runs[executor] = run_pipeline(roster, work / f"home-{executor}-{stamp}", executor)
        describe(f"pipeline:{executor}", args.rows, run.measured, f"({run.rows:,} rows, {run.rejected:,} rejected)")
        describe_stages(run)
        if args.large and not args.keep:  # its work files and warehouse take about 15 GB
            shutil.rmtree(work / f"home-{executor}-{stamp}", ignore_errors=True)

    small = warm = None
    if args.small_rows:
        # A home's first upload also creates its Dagster instance and warehouse; every later one
        # (another file, same home) is what a user waits for day to day.
        small_home = work / f"home-small-{time.strftime('%H%M%S')}"
        small = run_pipeline(roster_file(work, args.small_rows, args.bad), small_home, "default")
        describe(f"pipeline:{args.small_rows} rows", args.small_rows, small.measured, "(default settings, new home)")
        warm = run_pipeline(roster_file(work, args.small_rows, args.bad, seed=2), small_home, "default")
        describe(f"pipeline:{args.small_rows} rows", args.small_rows, warm.measured, "(default settings, the home's second upload)")
    sensed = None
    if args.sensor:
        sensed = run_through_sensor(roster_file(work, args.small_rows or 1_000, args.bad),
                                    work / f"home-sensor-{time.strftime('%H%M%S')}")  # fmt: skip
        began = f"{sensed.started:.1f} s" if sensed.started is not None else "never"
        print(f"  sensor: registered {sensed.registered:.1f} s after landing, prepare began at {began}, "
              f"{sensed.status} at {sensed.seconds:.1f} s" + (f" ({sensed.error})" if sensed.error else ""))  # fmt: skip

    print("ratios (pipeline / peer; issue 8 targets in brackets):")
    parse, rules = peers.get("polars_parse"), peers.get("polars_rules")
    for executor, run in runs.items():
        scan = next((s for s in run.stages if s[0] == "scan"), None)
        parts = []
        if parse:
            parts.append(f"end to end / polars_parse {run.measured.seconds / parse.seconds:5.1f}x [<= 5, stretch 2]")
        if rules and scan:
            parts.append(f"scan wall / polars_rules wall {scan[2] / rules.seconds:4.1f}x, "
                         f"scan cpu / polars_rules cpu {scan[3] / rules.cpu_seconds:4.1f}x [<= 2]")  # fmt: skip
        print(f"  {executor:<12} " + "; ".join(parts))
        worst = max((s[4] for s in run.stages), default=0)
        print(f"  {'':<12} {run.rows / run.measured.seconds:,.0f} rows/s; largest step {worst / MIB:,.0f} MiB, "
              f"largest process {run.measured.peak_process_rss / MIB:,.0f} MiB [<= 1024], "
              f"process tree {run.measured.peak_tree_pss / MIB:,.0f} MiB PSS [<= 2048] "
              f"({run.measured.peak_tree_rss / MIB:,.0f} MiB as a sum of RSS)")  # fmt: skip
        if args.large:
            print(f"  {'':<12} {run.measured.seconds / 60:.1f} minutes end to end [<= {LARGE_TARGET_SECONDS / 60:.0f}]")
    if small:
        print(f"  {args.small_rows:,}-row upload end to end {small.measured.seconds:.1f} s in a new home, "
              f"{warm.measured.seconds:.1f} s as the home's second upload [<= 4 s]")
    if sensed:
        print(f"  landing to {sensed.status} through the sensor {sensed.seconds:.1f} s [<= 15 s]")


if __name__ == "__main__":
    main()
