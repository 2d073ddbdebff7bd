"""Side-by-side speed and memory: ingest_pipeline against peer tools on the same roster file.

usage: python bench/compare_peers.py [--rows N] [--bad RATE] [--peers duckdb_parse,polars_rules,...] [--executors ...]

Generates one roster with ../shared/bench/gen_roster.py, measures each peer with
../shared/bench/peers.py and the pipeline with `ingest-pipeline run` (the real Dagster job,
multiprocess executor) in the same run, and prints rows per second and the ratios between them.
The machines are noisy: read the ratios, not the absolute times.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

PROJECT = Path(__file__).resolve().parents[1]
SHARED_BENCH = PROJECT.parent / "shared" / "bench"
CLI = [sys.executable, "-m", "ingest_pipeline.cli"]


def peak_rss_of(command: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS of the largest process in the tree (bytes), and stdout."""
    started = time.perf_counter()
    completed = subprocess.run(["/usr/bin/env", "python3", "-c", _RUSAGE_WRAPPER, *command],
                               capture_output=True, text=True, env=env, check=False)  # fmt: skip
    seconds = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
    match = re.search(r"__peak_child_rss_kb=(\d+)", completed.stderr)
    return seconds, int(match.group(1)) * 1024 if match else 0, completed.stdout


# Runs a command and reports the largest RSS among its waited-for descendants (ru_maxrss of children).
_RUSAGE_WRAPPER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print(f'__peak_child_rss_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr); "
    "sys.exit(code)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--bad", type=float, default=0.01)
    parser.add_argument("--peers", default="duckdb_parse,polars_parse,polars_rules,pandera_polars")
    parser.add_argument("--executors", default="multiprocess,in_process", help="pipeline executors to measure")
    parser.add_argument("--work", default=None, help="folder for the file and the pipeline home (default: a temp folder)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ingest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    roster = work / "roster.csv"
    if not roster.exists():
        subprocess.run([sys.executable, str(SHARED_BENCH / "gen_roster.py"), str(roster), str(args.rows), "--bad", str(args.bad)], check=True)
    size = roster.stat().st_size
    print(f"file: {roster} ({args.rows:,} rows, {size / 2**20:,.0f} MiB); machine: {os.cpu_count()} cores")

    results: dict[str, tuple[float, int]] = {}
    for tool in args.peers.split(","):
        seconds, rss, out = peak_rss_of([sys.executable, str(SHARED_BENCH / "peers.py"), str(roster), tool])
        results[tool] = (seconds, rss)
        print(f"  {tool:<22} {seconds:7.2f} s  {args.rows / seconds:>12,.0f} rows/s  peak RSS {rss / 2**20:7.0f} MiB   ({out.strip()})")

    for executor in args.executors.split(","):
        results[f"pipeline:{executor}"] = run_pipeline(roster, work / f"home-{executor}", executor, args.rows)
    print("ratios (peer seconds / pipeline seconds; above 1 means the pipeline is faster):")
    for name, (seconds, _) in results.items():
        if name.startswith("pipeline:"):
            ratios = ", ".join(f"{tool} {peer / seconds:.2f}" for tool, (peer, _) in results.items() if not tool.startswith("pipeline:"))
            print(f"  {name:<22} {ratios}")


def run_pipeline(roster: Path, home: Path, executor: str, rows: int) -> tuple[float, int]:
    """`ingest-pipeline run` end to end (registration, Dagster run, DuckDB); prints its stages."""
    env = {**os.environ, "INGEST_HOME": str(home), "INGEST_PROGRESS": "0"}
    seconds, rss, _ = peak_rss_of([*CLI, "run", str(roster), "--company", "acme", "--form-type", "employee_roster",
                                   "--executor", executor], env=env)  # fmt: skip
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        upload_id, total, rejected = db.execute(
            "SELECT upload_id, rows_total, rows_rejected FROM ingest.uploads ORDER BY received_at DESC LIMIT 1").fetchone()  # fmt: skip
        stages = db.execute(
            "SELECT stage, count(*), sum(seconds), max(peak_rss_bytes) FROM ingest.stage_metrics WHERE upload_id = ? "
            "GROUP BY stage ORDER BY min(started_at)", [upload_id]).fetchall()  # fmt: skip
    print(f"  {'pipeline:' + executor:<22} {seconds:7.2f} s  {rows / seconds:>12,.0f} rows/s  peak RSS {rss / 2**20:7.0f} MiB   "
          f"(end to end through Dagster: {total:,} rows, {rejected:,} rejected)")  # fmt: skip
    for stage, steps, stage_seconds, stage_rss in stages:
        print(f"      {stage:<8} {steps:>3} step(s) {stage_seconds:7.2f} s of work  peak RSS {stage_rss / 2**20:6.0f} MiB")
    return seconds, rss


if __name__ == "__main__":
    main()
