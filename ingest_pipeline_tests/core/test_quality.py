"""The quality checks' judges (pure) and their warehouse readers (on an in-memory DuckDB)."""

import datetime as dt

import duckdb
import pytest

from ingest_pipeline.core.quality import (
    ColumnFigures,
    ConservationFigures,
    DriftInputs,
    DriftThresholds,
    conservation_figures,
    drift_inputs,
    format_percent,
    judge_conservation,
    judge_drift,
    judge_error_rate,
)
from ingest_pipeline.core.warehouse import SCHEMA_DDL

# --- error rate -------------------------------------------------------------------------------


def test_the_gate_fails_above_the_limit_with_one_sentence():
    verdict = judge_error_rate(rows_total=40, rows_rejected=5, max_error_rate=0.05)
    assert not verdict.passed
    assert verdict.reason == "12.5% of rows rejected, above the form type's limit of 5%."
    outcome = verdict.outcome()
    assert outcome.description == verdict.reason
    assert outcome.metadata == {
        "rows_total": 40,
        "rows_rejected": 5,
        "error_rate": 0.125,
        "max_error_rate": 0.05,
        "published": False,
    }


@pytest.mark.parametrize(
    ("total", "rejected", "limit", "passed"),
    [
        (100, 5, 0.05, True),  # exactly at the limit is not above it
        (100, 6, 0.05, False),
        (3, 0, 0.0, True),
        (3, 1, 0.0, False),
        (1_000_000, 50_001, 0.05, False),
        (10, 10, 1.0, True),
        (0, 0, 0.05, True),  # an empty upload has nothing to reject
        (10, 9, None, True),  # no limit set
    ],
)
def test_the_gate_compares_exactly(total, rejected, limit, passed):
    assert judge_error_rate(total, rejected, limit).passed is passed


def test_a_passing_gate_says_so_with_its_figures():
    outcome = judge_error_rate(40, 1, 0.05).outcome()
    assert outcome.passed
    assert outcome.description == "2.5% of rows rejected, within the form type's limit of 5%."
    assert outcome.metadata["published"] is True
    no_limit = judge_error_rate(40, 30, None).outcome()
    assert no_limit.passed and "no limit" in no_limit.description
    assert no_limit.metadata["max_error_rate"] is None


def test_percentages_never_read_the_same_as_the_limit():
    assert format_percent(0.125) == "12.5%"
    assert format_percent(0.05) == "5%"
    assert format_percent(1 / 3) == "33.3%"
    assert format_percent(0.0504, differs_from=0.05) == "5.04%"
    assert format_percent(0.050001, differs_from=0.05) == "5.0001%"
    assert judge_error_rate(10_000, 504, 0.05).reason == "5.04% of rows rejected, above the form type's limit of 5%."


# --- conservation -----------------------------------------------------------------------------


def figures(**changes) -> ConservationFigures:
    values = dict(
        rows_total=10, rows_accepted=7, rows_rejected=3, results_rows=7, results_distinct=7, rejects_rows=3,
        rejects_distinct=3, in_both=0, out_of_range=0,
    )  # fmt: skip
    values.update(changes)
    return ConservationFigures(**values)


def test_conservation_passes_when_every_row_is_exactly_one_of_the_two():
    outcome = judge_conservation(figures())
    assert outcome.passed
    assert "All 10 rows are accounted for" in outcome.description
    assert outcome.metadata["results_rows"] == 7 and outcome.metadata["rejects_rows"] == 3


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"rows_total": 11}, "rows_total 11 is not rows_accepted 7 + rows_rejected 3"),
        ({"results_rows": 6, "results_distinct": 6}, "results holds 6 rows, not 7"),
        ({"results_distinct": 6}, "1 duplicate row numbers"),
        ({"rejects_rows": 2, "rejects_distinct": 2}, "ingest.rejects holds 2 rows, not 3"),
        ({"in_both": 1}, "1 rows are both published and rejected"),
        ({"out_of_range": 2}, "2 row numbers are outside 1..10"),
    ],
)
def test_conservation_names_each_broken_rule(changes, problem):
    outcome = judge_conservation(figures(**changes))
    assert not outcome.passed
    assert problem in outcome.description


def test_conservation_of_a_gated_upload_expects_nothing_published():
    assert judge_conservation(figures(results_rows=0, results_distinct=0), published=False).passed
    assert not judge_conservation(figures(), published=False).passed
    assert not judge_conservation(figures(rows_total=None)).passed


@pytest.fixture
def warehouse_connection():
    connection = duckdb.connect()
    connection.execute(SCHEMA_DDL)
    yield connection
    connection.close()


def add_upload(connection, upload_id, status="completed", rows=(10, 7, 3), form_type="roster", finished_minute=0):
    connection.execute(
        "INSERT INTO ingest.uploads (upload_id, company_id, form_type, source, received_at, status, rows_total, "
        "rows_accepted, rows_rejected, finished_at) VALUES (?, 'acme', ?, 'x.csv', now(), ?, ?, ?, ?, ?)",
        [upload_id, form_type, status, *rows, dt.datetime(2024, 1, 1, 0, finished_minute)],
    )


def test_conservation_figures_are_read_from_results_and_rejects(warehouse_connection):
    c = warehouse_connection
    add_upload(c, "u1")
    c.execute("CREATE TABLE results.roster (_upload_id VARCHAR, _row_number BIGINT)")
    c.execute("INSERT INTO results.roster SELECT 'u1', r FROM range(1, 8) t(r)")
    c.execute("INSERT INTO results.roster VALUES ('other', 1), ('other', 9)")
    c.execute("INSERT INTO ingest.rejects SELECT 'u1', r, r + 1, 'raw' FROM range(8, 11) t(r)")
    assert judge_conservation(conservation_figures(c, "u1", "roster")).passed

    c.execute("INSERT INTO results.roster VALUES ('u1', 8), ('u1', 12)")  # 8 is also rejected; 12 is out of range
    f = conservation_figures(c, "u1", "roster")
    assert (f.results_rows, f.in_both, f.out_of_range) == (9, 1, 1)
    assert not judge_conservation(f).passed


def test_conservation_figures_without_a_results_table(warehouse_connection):
    add_upload(warehouse_connection, "u1", rows=(2, 0, 2))
    warehouse_connection.execute("INSERT INTO ingest.rejects VALUES ('u1', 1, 2, 'a'), ('u1', 2, 3, 'b')")
    f = conservation_figures(warehouse_connection, "u1", "roster")
    assert f.results_rows == 0
    assert judge_conservation(f).passed


# --- drift ------------------------------------------------------------------------------------


def drift(columns, baseline, uploads=5, extra=(), missing=()) -> DriftInputs:
    return DriftInputs(
        [ColumnFigures(*c) for c in columns], [ColumnFigures(*c) for c in baseline], uploads, list(extra), list(missing)
    )


STEADY = [("email", 1000, 100, 10), ("zip", 1000, 0, 5)]
BASELINE = [("email", 5000, 500, 50), ("zip", 5000, 0, 25)]


def test_drift_passes_when_nothing_changed():
    outcome = judge_drift(drift(STEADY, BASELINE))
    assert outcome.passed
    assert outcome.metadata["shares_compared"] is True
    assert outcome.metadata["columns"][0] == {
        "field": "email", "null_share": 0.1, "error_share": 0.01, "baseline_null_share": 0.1, "baseline_error_share": 0.01,
    }  # fmt: skip


def test_drift_warns_of_extra_and_missing_columns_even_without_history():
    outcome = judge_drift(drift(STEADY, [], uploads=0, extra=["badge"], missing=["zip"]))
    assert not outcome.passed
    assert "extra column(s) 'badge'" in outcome.description
    assert "missing column(s) 'zip'" in outcome.description
    assert outcome.metadata["extra_columns"] == ["badge"]


def test_drift_warns_of_a_sudden_change_in_a_columns_null_or_error_share():
    columns = [("email", 1000, 400, 10), ("zip", 1000, 0, 200)]
    outcome = judge_drift(drift(columns, BASELINE))
    assert not outcome.passed
    assert "'email' empty cells 40% of rows against 10% in recent uploads" in outcome.description
    assert "'zip' errors 20% of rows against 0.5% in recent uploads" in outcome.description
    assert len(outcome.metadata["findings"]) == 2


def test_drift_thresholds_are_configurable():
    columns = [("email", 1000, 250, 10), ("zip", 1000, 0, 5)]
    assert judge_drift(drift(columns, BASELINE)).passed  # 15 points: within the default 20
    assert not judge_drift(drift(columns, BASELINE), DriftThresholds(max_null_share_change=0.1)).passed


def test_drift_does_not_compare_shares_without_enough_history_or_rows():
    jumped = [("email", 1000, 900, 10)]
    outcome = judge_drift(drift(jumped, BASELINE, uploads=2))
    assert outcome.passed and outcome.metadata["shares_compared"] is False
    assert "too few" in outcome.description
    small = [("email", 50, 45, 0)]
    assert judge_drift(drift(small, BASELINE)).passed  # fewer than min_rows rows
    assert not judge_drift(drift(small, BASELINE), DriftThresholds(min_rows=10)).passed


def test_drift_inputs_read_the_header_messages_and_the_recent_completed_uploads(warehouse_connection):
    c = warehouse_connection
    for minute, upload_id in enumerate(["old", "a", "b"]):
        add_upload(c, upload_id, finished_minute=minute)
        c.execute(
            "INSERT INTO ingest.column_summary VALUES (?, 'email', 100, ?, 0, 0, 0, NULL, NULL)",
            [upload_id, 10 * minute],
        )
    add_upload(c, "failed_one", status="failed", finished_minute=9)
    c.execute("INSERT INTO ingest.column_summary VALUES ('failed_one', 'email', 100, 100, 0, 0, 0, NULL, NULL)")
    add_upload(c, "other_form", form_type="payroll", finished_minute=9)
    add_upload(c, "new", status="processing")
    c.execute("INSERT INTO ingest.column_summary VALUES ('new', 'email', 200, 150, 0, 4, 0, NULL, NULL)")
    c.execute(
        "INSERT INTO ingest.messages VALUES ('new', NULL, NULL, NULL, 'extra_column', 'warning', ' Badge ', 'm'), "
        "('new', NULL, NULL, NULL, 'missing_column', 'error', NULL, "
        "'The header has no column ''zip'' for field ''zip'', so the file cannot be processed.')"
    )
    inputs = drift_inputs(c, "new", "roster", history_uploads=2)
    assert inputs.extra_columns == ["Badge"]
    assert inputs.missing_columns == ["zip"]
    assert inputs.columns == [ColumnFigures("email", 200, 150, 4)]
    assert inputs.baseline_uploads == 2  # the two most recent completed roster uploads: a and b
    assert inputs.baseline == [ColumnFigures("email", 200, 30, 0)]
