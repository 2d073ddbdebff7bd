"""One chunk's scan, this tree against an earlier revision, in paired runs on the same chunks.

usage: python bench/ab_scan.py WORK_FOLDER [--base REV] [--rounds 16] [--threads 1]

WORK_FOLDER is an upload's work folder after a run (`<home>/work/<upload_id>`, kept after
`ingest-pipeline run`). The revision (default: the one before HEAD) is checked out into a temporary
git worktree; each tree scans in a process of its own, on its own copy of the work folder, and the
two take turns chunk by chunk (chunks 2-4, so the first and the short last one are left out).
Prints each tree's median and minimum CPU seconds per chunk and the median of the paired ratios:
on a noisy machine the pairs, measured seconds apart, move together where separate runs do not.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

WORKER = """
import sys, time
from pathlib import Path
from ingest_pipeline.core.prepare import UploadWorkspace
from ingest_pipeline.core.scan import load_reference_snapshot, scan_chunk
from ingest_pipeline.core.judge import ChunkJudge
workspace = UploadWorkspace(Path(sys.argv[1]))
manifest, spec = workspace.load_manifest(), workspace.load_filespec()
judge = ChunkJudge(spec, load_reference_snapshot(spec, workspace))
scan_chunk(spec, manifest, manifest.chunks[0], workspace, judge)  # warm up
print("ready", flush=True)
for line in sys.stdin:
    chunk = manifest.chunks[int(line)]
    started = time.process_time()
    scan_chunk(spec, manifest, chunk, workspace, judge)
    print(time.process_time() - started, flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_folder", type=Path)
    parser.add_argument("--base", default="HEAD~1", help="the revision to compare with (default HEAD~1)")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--threads", default="1", help="POLARS_MAX_THREADS of both (default 1, as in a step pool process)")
    args = parser.parse_args()
    if not (args.work_folder / "manifest.json").exists():
        sys.exit(f"ab_scan: {args.work_folder} is not an upload's work folder (it has no manifest.json)")
    chunks = len(json.loads((args.work_folder / "manifest.json").read_text())["chunks"])
    if chunks < 3:
        sys.exit(f"ab_scan: the upload in {args.work_folder} has {chunks} chunk(s); use one of at least 3 (a few million rows)")
    with tempfile.TemporaryDirectory(prefix="ab-scan-") as scratch:
        base_tree = Path(scratch) / "base"
        subprocess.run(["git", "-C", str(PROJECT), "worktree", "add", "--detach", "-q", str(base_tree), args.base], check=True)
        try:
            workers = {}
            for name, tree in (("base", base_tree), ("this", PROJECT)):
                folder = Path(scratch) / f"work-{name}"
                shutil.copytree(args.work_folder, folder, ignore=shutil.ignore_patterns("scan", "columns"))
                env = {**os.environ, "PYTHONPATH": str(tree), "POLARS_MAX_THREADS": args.threads}
                workers[name] = subprocess.Popen([sys.executable, "-c", WORKER, str(folder)], cwd=tree, env=env,
                                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
                if workers[name].stdout.readline().strip() != "ready":
                    sys.exit(f"ab_scan: the {name} tree's worker did not start")
            seconds = {name: [] for name in workers}
            for round_ in range(args.rounds):
                chunk = 1 + round_ % min(3, chunks - 2)  # 0-based: the second chunk on, not the last
                for name in ("base", "this") if round_ % 2 == 0 else ("this", "base"):
                    workers[name].stdin.write(f"{chunk}\n")
                    workers[name].stdin.flush()
                    seconds[name].append(float(workers[name].stdout.readline()))
            for worker in workers.values():
                worker.stdin.close()
                worker.wait()
        finally:
            subprocess.run(["git", "-C", str(PROJECT), "worktree", "remove", "--force", str(base_tree)], check=False)
    for name, values in seconds.items():
        print(f"{name:5s} ({args.base if name == 'base' else 'working tree'}): median {statistics.median(values):.3f} "
              f"min {min(values):.3f} CPU s per chunk")  # fmt: skip
    ratios = [this / base for base, this in zip(seconds["base"], seconds["this"], strict=True)]
    print(f"this / base, paired median: {statistics.median(ratios):.3f} over {args.rounds} rounds")


if __name__ == "__main__":
    main()
