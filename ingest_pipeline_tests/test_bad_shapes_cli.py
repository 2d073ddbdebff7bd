"""Badly shaped files through the real command line: `ingest-pipeline run` ends each with exit code
0 or 1 and, when it fails, one line on stderr naming the cause (no traceback); `ingest-pipeline
report` then writes the workbook of every upload, completed or failed.

The shapes are those of the reliability issue: bare CRs inside records and as the only line
endings, NULs, UTF-16 with and without a byte order mark, gzip and .xlsx files renamed .csv,
binary garbage, a 100 MB line (delimited and fixed width), and records a client's tools break
(stray quotes, huge cells, mixed line endings, invalid bytes, a damaged header).
"""

import gzip
import io
import random
import zipfile
from pathlib import Path

import duckdb
import pytest
from openpyxl import load_workbook

from ingest_pipeline.cli import main
from ingest_pipeline.core.report import client_text
from ingest_pipeline.core.uploads import compute_upload_id, hash_stream

ROSTER_HEADER = (
    "employee_id,first_name,last_name,email,phone,state,zip,role,department,hire_date,salary,hours_per_week,"
    "manager_id,status,notes"
)


def roster_line(number: int, notes: str = "", state: str = "CA") -> str:
    return (f"E{number:08d},Ann,Lee,u{number}@example.com,+1-555-0100,{state},94110,analyst,Finance,2020-02-29,"
            f"51000.50,40,E00000001,active,{notes}")  # fmt: skip


def roster(*lines: str, newline: str = "\n") -> bytes:
    return (newline.join([ROSTER_HEADER, *lines]) + newline).encode()


def payroll_line(number: int, memo: str = "ok") -> str:
    return f"E{number:08d}|01/31/2024|02/01/2024 09:00|1000.00|800.00|80|Y|salary|{memo}"


def claims_line(number: int, name: str = "Ann Lee") -> bytes:
    return f"C{number:09d}M0000001{name:<20}20240131D0001{'125.50':>10}CAP".encode("latin-1")


def xlsx_like() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


HUNDRED_MB = 100 * 1024 * 1024

# name: (form type, company, the file's bytes, a phrase the failure must name, or None if it completes or is gated)
SHAPES = {
    "bare_cr_in_a_rejected_record": ("employee_roster", "acme",
        lambda: roster(roster_line(1, "two\rlines"), roster_line(2, "bad\rstate", state="XX"), roster_line(3)), None),
    "bare_cr_line_endings": ("employee_roster", "acme",
        lambda: roster(roster_line(1), roster_line(2), newline="\r"), "bare carriage returns (classic Mac"),
    "bare_cr_line_endings_headerless": ("payroll", "acme",
        lambda: "\r".join(payroll_line(n) for n in range(1, 5)).encode(), "bare carriage returns (classic Mac"),
    "nul_in_records": ("employee_roster", "acme",
        lambda: roster(roster_line(1, "a\x00b"), roster_line(2, state="C\x00"), roster_line(3)), None),
    "utf16_with_bom": ("employee_roster", "acme",
        lambda: roster(roster_line(1)).decode().encode("utf-16"), "UTF-16 text (it starts with a UTF-16 byte order mark)"),
    "utf16_without_bom": ("payroll", "acme",
        lambda: (payroll_line(1) + "\n").encode("utf-16-le"), "UTF-16 text without a byte order mark"),
    "gzip_renamed_csv": ("employee_roster", "acme",
        lambda: gzip.compress(roster(roster_line(1)), mtime=0), "gzip-compressed"),
    "xlsx_renamed_csv": ("employee_roster", "acme", xlsx_like, "Excel workbook (.xlsx)"),
    "binary_garbage": ("claims_extract", "acme",
        lambda: random.Random(7).randbytes(20_000), "the file is not text"),
    "hundred_mb_line_delimited": ("employee_roster", "acme",
        lambda: roster(roster_line(1, "x" * HUNDRED_MB)), "longer than 64 MiB without a line break"),
    "hundred_mb_line_fixed_width": ("claims_extract", "acme",
        lambda: claims_line(1) + b"\n" + b"y" * HUNDRED_MB + b"\n", "line 2 is longer than 64 MiB"),
    "stray_quotes_huge_cell_and_bare_crs": ("payroll", "acme", lambda: "\n".join(
        [payroll_line(1, 'say "hi"\r'), payroll_line(2, "z" * 300_000), payroll_line(3) + "|extra", payroll_line(4, '"open')]
    ).encode(), None),
    "mixed_line_endings_and_invalid_bytes": ("claims_extract", "acme",
        lambda: claims_line(1) + b"\r\n" + claims_line(2) + b"\r" + claims_line(3, "Zo\x81") + b"\n\n" + claims_line(4),
        None),
    "damaged_header": ("employee_roster", "acme",
        lambda: roster(roster_line(1)).replace(b"last_name", b"last\rname"), "no column 'last_name'"),
}  # fmt: skip


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-shapes") / "home"


@pytest.mark.parametrize("name", list(SHAPES))
def test_a_bad_shape_ends_in_one_sentence_and_its_report_is_written(
    name, shared_home, tmp_path, capfd, command_environment
):
    form_type, company, make, phrase = SHAPES[name]
    command_environment.delenv("INGEST_WEBHOOK_URL", raising=False)
    command_environment.setenv("INGEST_PROGRESS", "0")
    path = tmp_path / f"{name}.csv"
    path.write_bytes(make())
    with open(path, "rb") as stream:
        upload_id = compute_upload_id(company, form_type, hash_stream(stream)[0])

    code = main(["run", str(path), "--company", company, "--form-type", form_type, "--home", str(shared_home),
                 "--executor", "in_process"])  # fmt: skip
    out, err = capfd.readouterr()
    assert code in (0, 1), (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    with duckdb.connect(str(shared_home / "warehouse.duckdb"), read_only=True) as db:
        status, error, total, accepted, rejected, source = db.execute(
            "SELECT status, error, rows_total, rows_accepted, rows_rejected, source FROM ingest.uploads WHERE upload_id = ?",
            [upload_id],
        ).fetchone()
    if code == 1:
        assert err.count("\n") == 1 and err.startswith(f"ingest-pipeline: upload {upload_id} failed: "), err
        assert status == "failed" and "unexpectedly" not in error and "\n" not in error, error
    else:
        assert status == "completed" and err == ""
    if phrase is None:  # judged record by record: completed, or failed by the quality gate
        assert total is not None and total == accepted + rejected and rejected > 0, (status, error)
    else:
        assert status == "failed" and phrase in error, error

    report = tmp_path / f"{name}.xlsx"
    assert main(["report", upload_id, "--out", str(report), "--home", str(shared_home)]) == 0, capfd.readouterr().err
    workbook = load_workbook(report, read_only=True)
    summary = {row[0]: row[1] for row in workbook["Summary"].iter_rows(values_only=True) if len(row) > 1}
    assert summary["Status"] == status and summary.get("Error") == (client_text(error, source) if error else None)
    if phrase is None:
        rejected_rows = list(workbook["Rejected rows"].iter_rows(min_row=2, values_only=True))
        assert len(rejected_rows) == rejected
    workbook.close()
