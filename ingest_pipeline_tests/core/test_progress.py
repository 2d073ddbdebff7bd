"""Progress and time estimates (pure), the rates learned from the warehouse, and the bar."""

import datetime as dt
import os
import time

import duckdb
import pytest

from ingest_pipeline.core.progress import (
    STAGES,
    ProgressBar,
    StageRates,
    StageSample,
    UploadSample,
    estimate,
    format_duration,
    load_rates,
    render_bar,
)
from ingest_pipeline.core.warehouse import SCHEMA_DDL

T0 = dt.datetime(2024, 1, 1, 12, 0, 0)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def samples_of(upload_id: str, spans: dict[str, list[tuple[float, float]]], rows: int) -> list[StageSample]:
    """Stage samples from (start, seconds) pairs per stage; several pairs are chunks."""
    return [
        StageSample(upload_id, stage, at(start), seconds, rows // len(pairs))
        for stage, pairs in spans.items()
        for start, seconds in pairs
    ]


def test_rates_count_parallel_chunks_once_and_learn_the_overhead():
    # Two chunks scanned side by side over 0..4 s: the scan took 4 s of wall time, not 8.
    spans = {"prepare": [(0, 1)], "scan": [(1, 4), (1.5, 3.5)], "columns": [(6, 1)], "merge": [(7, 1)],
             "publish": [(8, 1)]}  # fmt: skip
    rates = StageRates.learn([UploadSample("u1", 1000, 100_000, 14.0)], samples_of("u1", spans, 1000), "test")
    assert rates.seconds_per_row["scan"] == pytest.approx(4 / 1000)
    assert rates.seconds_per_row["prepare"] == pytest.approx(1 / 1000)
    # The run took 14 s, of which the stages measured 8: 6 s between stages, spread over five.
    assert rates.overhead_seconds == pytest.approx(6 / len(STAGES))
    assert rates.bytes_per_row == 100
    assert rates.uploads == 1


def test_rates_weigh_uploads_by_their_rows():
    samples = samples_of("small", {"scan": [(0, 1)]}, 100) + samples_of("big", {"scan": [(0, 9)]}, 900)
    uploads = [UploadSample("small", 100, None, None), UploadSample("big", 900, None, None)]
    rates = StageRates.learn(uploads, samples, "test")
    assert rates.seconds_per_row == {"scan": pytest.approx(10 / 1000)}
    assert rates.overhead_seconds == 0 and rates.bytes_per_row is None


def test_no_rates_without_usable_uploads():
    assert StageRates.learn([], [], "none") is None
    assert StageRates.learn([UploadSample("u", 0, 1, 1.0)], samples_of("u", {"scan": [(0, 1)]}, 0), "x") is None


RATES = StageRates(
    seconds_per_row={"prepare": 0.001, "scan": 0.004, "columns": 0.001, "merge": 0.002, "publish": 0.002},
    overhead_seconds=0.0, bytes_per_row=100.0, uploads=3, basis="3 completed roster upload(s)",
)  # fmt: skip


def progress(**kwargs):
    values = dict(status="processing", stage="scan", chunks_done=0, chunks_total=4, rows_total=1000, size_bytes=None,
                  elapsed_seconds=None, stage_elapsed_seconds=None, rates=RATES)  # fmt: skip
    values.update(kwargs)
    return estimate(**values)


def test_eta_in_the_scan_counts_the_chunks_left():
    # 1000 rows: scan 4 s, columns 1 s, merge 2 s, publish 2 s; prepare (1 s) is done.
    assert progress(chunks_done=0).eta_seconds == pytest.approx(9)
    half = progress(chunks_done=2, elapsed_seconds=4.0)
    assert half.eta_seconds == pytest.approx(7)
    assert half.rows_done == 500 and half.rows_per_second == pytest.approx(125)
    assert half.fraction == pytest.approx(1 - 7 / 10)


def test_eta_in_another_stage_counts_the_time_spent_in_it():
    assert progress(stage="merge").eta_seconds == pytest.approx(4)
    assert progress(stage="merge", stage_elapsed_seconds=1.5).eta_seconds == pytest.approx(2.5)
    assert progress(stage="merge", stage_elapsed_seconds=30).eta_seconds == pytest.approx(2)  # overran: publish left
    assert progress(stage="merge").rows_done == 1000


def test_before_counting_rows_they_are_estimated_from_the_size():
    queued = progress(status="queued", stage=None, chunks_total=None, rows_total=None, size_bytes=200_000)
    assert queued.rows_total == 2000
    assert queued.eta_seconds == pytest.approx(2000 * 0.010)
    assert queued.fraction == 0 and queued.rows_per_second is None


def test_without_history_there_is_no_eta_but_still_a_fraction():
    p = progress(rates=None, stage="columns")
    assert p.eta_seconds is None
    assert p.fraction == pytest.approx(2 / 5)
    assert progress(rates=None, rows_total=None, size_bytes=10).eta_seconds is None


def test_finished_uploads_are_done():
    done = progress(status="completed", stage="done", chunks_done=4, elapsed_seconds=10.0)
    assert (done.eta_seconds, done.fraction, done.finished) == (0.0, 1.0, True)
    assert done.rows_per_second == pytest.approx(100)
    failed = progress(status="failed", stage="prepare", rows_total=None)
    assert failed.finished and failed.rows_done == 0 and failed.rows_per_second is None


def test_durations_and_the_bar():
    assert format_duration(None) == "-"
    assert format_duration(7.4) == "0:07"
    assert format_duration(3723) == "1:02:03"
    line = render_bar(progress(chunks_done=2, elapsed_seconds=4.0), "upload abc", width=100)
    bar = line[line.index("[") + 1 : line.index("]")]
    assert line.startswith("upload abc [") and bar.count("#") == round(len(bar) * 0.3)
    assert bar.strip("#") == "." * bar.count(".")
    assert "30%" in line and "scan  2/4 chunks  125 rows/s  ETA 0:07" in line
    assert len(render_bar(progress(), "upload abc", width=40)) <= 39
    assert "ETA" not in render_bar(progress(status="completed", stage="done"), "u")


@pytest.fixture
def connection():
    c = duckdb.connect()
    c.execute(SCHEMA_DDL)
    yield c
    c.close()


def add_completed(c, upload_id, form_type, rows, scan_seconds, finished_minute):
    c.execute(
        "INSERT INTO ingest.uploads (upload_id, company_id, form_type, source, received_at, status, rows_total, bytes, "
        "started_at, finished_at) VALUES (?, 'acme', ?, 'x', ?, 'completed', ?, ?, ?, ?)",
        [upload_id, form_type, T0, rows, rows * 100, T0, T0 + dt.timedelta(minutes=finished_minute)],
    )
    c.execute(
        "INSERT INTO ingest.stage_metrics VALUES (?, 'scan', 1, ?, ?, 1, 1, ?)", [upload_id, T0, scan_seconds, rows]
    )


def test_rates_come_from_the_form_types_recent_uploads_else_all(connection):
    add_completed(connection, "r1", "roster", 1000, 2.0, 1)
    add_completed(connection, "p1", "payroll", 1000, 8.0, 2)
    roster = load_rates(connection, "roster")
    assert roster.seconds_per_row["scan"] == pytest.approx(0.002)
    assert roster.basis == "1 completed roster upload(s)"
    claims = load_rates(connection, "claims")
    assert claims.seconds_per_row["scan"] == pytest.approx(0.005)
    assert claims.basis == "2 completed upload(s) of all form types"
    add_completed(connection, "r2", "roster", 1000, 4.0, 3)
    assert load_rates(connection, "roster", history_uploads=1).seconds_per_row["scan"] == pytest.approx(0.004)


def test_no_rates_in_an_empty_warehouse(connection):
    assert load_rates(connection, "roster") is None


def test_the_bar_draws_on_its_file_descriptor_and_ends_the_line():
    read_fd, write_fd = os.pipe()
    states = iter([progress(chunks_done=1), progress(chunks_done=3)])
    last = progress(status="completed", stage="done", chunks_done=4)
    try:
        with ProgressBar(write_fd, lambda: next(states, last), "upload abc", interval=0.01):
            time.sleep(0.1)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            written = pipe.read().decode()
    finally:
        for fd in (read_fd, write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
    assert written.startswith("\rupload abc [")
    assert written.endswith("\n")
    frames = written.rstrip("\n").split("\r")[1:]
    assert "completed  4/4 chunks" in frames[-1]
    assert len(frames) == len(set(frames))  # a frame like the last one is not drawn again


def test_the_bar_skips_frames_it_cannot_read():
    read_fd, write_fd = os.pipe()

    def broken():
        raise RuntimeError("warehouse busy")

    with ProgressBar(write_fd, broken, "u", interval=0.01):
        pass
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        assert pipe.read() == b""


def test_chunks_scanned_are_counted_from_the_work_folder_without_touching_the_warehouse(tmp_path):
    from ingest_pipeline.core.metrics import StageMetrics, write_metrics
    from ingest_pipeline.core.prepare import UploadWorkspace
    from ingest_pipeline.core.progress import scanned_chunks

    workspace = UploadWorkspace.of(tmp_path, "u1")
    assert scanned_chunks(workspace) == 0
    for chunk in (1, 2):
        write_metrics(StageMetrics("u1", "scan", chunk, "2026-01-01T00:00:00"), workspace.metrics)
    write_metrics(StageMetrics("u1", "prepare", None, "2026-01-01T00:00:00"), workspace.metrics)
    assert scanned_chunks(workspace) == 2


def test_a_queued_upload_has_not_started_whatever_stage_an_earlier_run_left():
    # Registered again after a completed run: the row still says stage `done` until prepare starts.
    again = progress(status="queued", stage="done", chunks_done=4, stage_elapsed_seconds=30)
    assert again.fraction == 0 and not again.finished
    waiting = progress(status="queued", stage=None, stage_elapsed_seconds=30)  # time in the queue is not progress
    assert waiting.fraction == 0


def test_a_failed_upload_ends_where_it_failed_with_its_sentence():
    failed = progress(status="failed", stage="scan", chunks_done=3, error="7.7% of rows rejected, above the limit of 5%.")
    assert failed.finished and failed.fraction == pytest.approx(1 / 10)  # prepare done, nothing after counted
    line = render_bar(failed, "upload abc", width=60, whole=True)
    assert "100%" not in line and "#" * 10 not in line
    assert line.endswith(" 10% failed in scan  3/4 chunks: 7.7% of rows rejected, above the limit of 5%.")
    assert len(render_bar(failed, "upload abc", width=60)) <= 59  # frames that are redrawn keep to the terminal


def bar_frames(states: list) -> list[str]:
    read_fd, write_fd = os.pipe()
    remaining = iter(states)
    current = [states[0]]

    def read():
        current[0] = next(remaining, current[0])
        return current[0]

    try:
        with ProgressBar(write_fd, read, "upload abc", interval=0.01):
            time.sleep(0.02 * len(states) + 0.1)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            written = pipe.read().decode()
    finally:
        for fd in (read_fd, write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
    return [frame.removesuffix("\x1b[K") for frame in written.rstrip("\n").split("\r")[1:]]


def percent(frame: str) -> int:
    return int(frame.split("]")[1].split("%")[0])


def test_the_bar_never_moves_back_and_shows_a_failure_as_a_failure():
    # As the issue saw it: time in the queue, then prepare starts; later the counted rows change the weights.
    states = [progress(status="queued", stage=None, rows_total=None, size_bytes=100_000, stage_elapsed_seconds=5),
              progress(stage="prepare", rows_total=None, size_bytes=100_000),
              progress(stage="scan", chunks_done=2),
              progress(stage="scan", chunks_done=2, rows_total=100),
              progress(stage="columns", rows_total=100),
              progress(status="failed", stage="merge", error="the warehouse could not be written.")]  # fmt: skip
    frames = bar_frames(states)
    shown = [percent(f) for f in frames]
    assert shown == sorted(shown), frames
    assert "failed in merge" in frames[-1] and frames[-1].endswith(": the warehouse could not be written.")
    assert percent(frames[-1]) < 100 and "." in frames[-1].split("[")[1].split("]")[0]  # not a full bar
