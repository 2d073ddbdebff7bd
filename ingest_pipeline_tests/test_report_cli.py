"""`ingest-pipeline report` and `run --report`: the client report of an upload, labelled by the
file's own header, read back with openpyxl and, where LibreOffice is installed, printed to PDF."""

import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance, RunRequest, SkipReason, build_run_status_sensor_context
from openpyxl import load_workbook

from ingest_pipeline.cli import main
from ingest_pipeline.defs.reports import client_report_after_success

# The file's columns in another order than the filespec's, with one it does not know.
HEADER = (
    "state,employee_id,first_name,last_name,email,phone,zip,role,department,hire_date,salary,hours_per_week,"
    "manager_id,status,notes,badge"
)


def write_upload(path: Path, rows: int = 30) -> Path:
    lines = [
        f"{'XX' if i == 2 else 'CA'},E{i:08d},Ann,Lee,u{i}@example.com,+1-555-0100,94110,analyst,Finance,2020-02-29,"
        f"51000.50,40,E00000001,active,,B{i}"
        for i in range(1, rows + 1)
    ]
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return path


@pytest.fixture
def home(tmp_path, command_environment) -> Path:
    command_environment.delenv("INGEST_WEBHOOK_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def upload_id(home, tmp_path) -> str:
    upload = write_upload(tmp_path / "roster.csv")
    code = main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home),
                 "--executor", "in_process"])  # fmt: skip
    assert code == 0
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute("SELECT upload_id FROM ingest.uploads").fetchone()[0]


def test_the_manifest_keeps_the_files_header(home, upload_id):
    manifest = json.loads((home / "work" / upload_id / "manifest.json").read_text())
    assert manifest["header"] == HEADER.split(",")


def test_report_writes_a_workbook_labelled_by_the_files_header(home, upload_id, tmp_path, capsys):
    out = tmp_path / "out" / "report.xlsx"
    assert main(["report", upload_id, "--out", str(out), "--home", str(home)]) == 0
    assert str(out) in capsys.readouterr().out
    workbook = load_workbook(out)
    assert workbook.sheetnames[0] == "Summary"
    rejected = workbook["Rejected rows"]
    labels = [cell.value for cell in rejected[1]]
    assert labels == ["row_number", "line_number", "problems", *HEADER.split(",")]
    row = rejected[2]
    assert row[0].value == 2
    state = row[labels.index("state")]
    assert state.value == "XX"
    assert state.fill.fgColor.rgb.endswith("FFC7CE")  # the broken cell, found by its header label
    assert row[labels.index("employee_id")].fill.fill_type is None


def test_report_of_an_unknown_upload_is_a_usage_error(home, upload_id, tmp_path, capsys):
    out = tmp_path / "report.xlsx"
    assert main(["report", "0000000000000000", "--out", str(out), "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no upload '0000000000000000'" in err
    assert not out.exists()
    assert main(["report", upload_id, "--out", str(tmp_path / "report.csv"), "--home", str(home)]) == 2


def test_report_in_a_home_without_a_warehouse_creates_nothing(tmp_path, capsys):
    empty = tmp_path / "empty-home"
    assert main(["report", "abc", "--out", str(tmp_path / "r.xlsx"), "--home", str(empty)]) == 2
    assert "no upload 'abc'" in capsys.readouterr().err
    assert not empty.exists()


def test_runs_launched_elsewhere_get_their_report_from_a_sensor(home, upload_id):
    """Runs of the sensor or the UI get a report run; the command line's, which write their own, do not."""
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        run = next(r for r in instance.get_runs() if r.job_name == "ingest_upload")
        event = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_SUCCESS).records[0]
        dagster_event = event.event_log_entry.dagster_event
        context = build_run_status_sensor_context("client_report_after_success", dagster_event, instance, run)
        request = client_report_after_success(context)
        assert isinstance(request, RunRequest)
        assert request.partition_key == upload_id and request.run_key == f"report-{run.run_id}"

        inline = run.with_tags({**run.tags, "ingest/report": "inline"})
        context = build_run_status_sensor_context("client_report_after_success", dagster_event, instance, inline)
        assert isinstance(client_report_after_success(context), SkipReason)


# --- a gated upload, as a client receives its report ------------------------------------------

ROSTER_HEADER = (
    "employee_id,first_name,last_name,email,phone,state,zip,role,department,hire_date,salary,hours_per_week,"
    "manager_id,status,notes"
)
GOOD = "E0000000{n},Ann,Lee,ann@example.com,+1-555-0100,CA,94110,analyst,Finance,2020-01-31,51000.50,40,,active,"
# Seven records, three rejected: above employee_roster's quality.max_error_rate of 5%.
GATED_LINES = [
    GOOD.format(n=1),
    GOOD.format(n=2).replace("2020-01-31", "2001-02-29"),  # written right, but no such day
    GOOD.format(n=3).replace("51000.50", "51,000.50"),  # a thousands comma: one cell too many
    GOOD.format(n=4).replace("94110", "9411") + '"two\nlines of notes"',  # a bad zip, and a note of two lines
    GOOD.format(n=5),
    GOOD.format(n=6),
    GOOD.format(n=7),
]
GATE_SENTENCE = "42.9% of rows rejected, above the form type's limit of 5%."


@pytest.fixture
def gated_report(home, tmp_path, capsys) -> Path:
    """The report `run --report` wrote for a gated upload of a file in a folder of the server."""
    folder = tmp_path / "srv" / "uploads"
    folder.mkdir(parents=True)
    upload = folder / "acme-roster-may.csv"
    upload.write_text("\n".join([ROSTER_HEADER, *GATED_LINES]) + "\n")
    code = main(["run", str(upload), "--company", "acme", "--form-type", "employee_roster", "--home", str(home),
                 "--executor", "in_process", "--report"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and GATE_SENTENCE in captured.err
    report = Path(re.search(r"report: (\S+\.xlsx)", captured.out).group(1))
    assert report.parent == home / "reports"
    return report


def workbook_text(book) -> str:
    return "\n".join(
        f"{cell.value}\n{cell.comment.text if cell.comment else ''}" for sheet in book for row in sheet.iter_rows() for cell in row
    )


def test_a_gated_upload_s_report_says_nothing_was_loaded_and_why(gated_report, tmp_path):
    book = load_workbook(gated_report)
    summary = [row for row in book["Summary"].iter_rows(values_only=True)]
    assert [row[0] for row in summary[:3]] == [
        "Upload report: acme-roster-may.csv",
        "Nothing was loaded: too many rows were rejected (the form type's quality gate).",
        f"Why: {GATE_SENTENCE}",
    ]
    facts = {row[0]: row[1] for row in summary if row[0]}
    assert facts["File"] == "acme-roster-may.csv" and facts["Status"] == "failed"
    assert (facts["Rows total"], facts["Rows loaded"], facts["Rows rejected"]) == (7, 0, 3)
    assert facts["Rows that passed the checks (not loaded)"] == 4
    text = workbook_text(book)
    assert str(tmp_path) not in text and "/srv/" not in text  # no path of the server, anywhere


def test_the_report_explains_impossible_dates_patterns_and_extra_cells(gated_report):
    book = load_workbook(gated_report)
    problems = list(book["Problems"].iter_rows(values_only=True))
    groups = {(row[0], row[1]): dict(zip(problems[0], row, strict=True)) for row in problems[1:]}
    hire_date = groups[("type", "hire_date")]
    assert hire_date["example message"] == "Field 'hire_date': '2001-02-29' is written as YYYY-MM-DD but is not a date that exists."
    assert hire_date["what is expected"] == "a date that exists, written as YYYY-MM-DD, e.g. 2024-01-31"
    zip_code = groups[("pattern", "zip")]
    example = zip_code["what is expected"].removeprefix("text like ")
    assert re.fullmatch("[0-9]{5}", example)  # an example of a valid zip; never the regular expression
    assert f"(text like {example}): '9411'" in zip_code["example message"]
    assert "[0-9]" not in workbook_text(book)

    rejected = book["Rejected rows"]
    labels = [cell.value for cell in rejected[1]]
    assert labels[-1] == "extra cell 16"
    row = next(r for r in rejected.iter_rows(min_row=2) if r[0].value == 3)
    extra = row[labels.index("extra cell 16")]
    assert extra.value is None and extra.fill.start_color.rgb.endswith("F8CBAD")  # the (empty) notes, pushed out
    assert row[labels.index("hours_per_week")].value == "000.50"  # the comma split the salary in two
    assert extra.comment.text.startswith("Extra cell: the header has 15 columns, this row has 16 cells")
    assert row[labels.index("salary")].value == "51" and row[labels.index("salary")].fill.fill_type is None


def test_every_sheet_has_a_filter_a_frozen_header_and_prints_one_page_wide(gated_report):
    book = load_workbook(gated_report)
    assert book["Rejected rows"].auto_filter.ref == "A1:S4"  # 3 + 16 columns, header and 3 rows
    assert book["Messages"].auto_filter.ref == "A1:G4"
    for sheet in book:
        assert sheet.auto_filter.ref, sheet.title
        assert sheet.page_setup.orientation == "landscape" and sheet.sheet_properties.pageSetUpPr.fitToPage
        assert int(sheet.page_setup.fitToWidth) == 1 and int(sheet.page_setup.fitToHeight) == 0
        if sheet.title != "Summary":
            assert sheet.freeze_panes in ("A2", "C2") and sheet.print_title_rows == "$1:$1", sheet.title


# --- printed by LibreOffice -------------------------------------------------------------------

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
PDFTOTEXT = shutil.which("pdftotext")
WORD_RE = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>')


def needs_office() -> None:
    if SOFFICE and PDFTOTEXT:
        return
    message = "LibreOffice (soffice) and poppler (pdftotext) are needed; scripts/setup.sh installs them"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def render_pdf(workbook: Path, out_dir: Path) -> Path:
    """The workbook printed to PDF by LibreOffice, as a client's "print to PDF" would."""
    profile = out_dir / "libreoffice-profile"  # its own profile: no clash with a running LibreOffice
    subprocess.run(
        [SOFFICE, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to", "pdf",
         "--outdir", str(out_dir), str(workbook)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    return out_dir / (workbook.stem + ".pdf")


def pdf_words(pdf: Path) -> list[list[tuple[float, float, float, float, str]]]:
    """Per page, each word with its box (xMin, yMin, xMax, yMax) as poppler reads it."""
    xml = subprocess.run([PDFTOTEXT, "-bbox-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    return [[(*map(float, match[:4]), match[4]) for match in WORD_RE.findall(page)] for page in xml.split("<page ")[1:]]


def overlapping(words: list[tuple]) -> list[tuple[str, str]]:
    """Pairs of words printed over each other (more than a sliver: boxes include the font's leading)."""
    pairs = []
    for a, b in itertools.combinations(words, 2):
        across = min(a[2], b[2]) - max(a[0], b[0])
        down = min(a[3], b[3]) - max(a[1], b[1])
        if across > 1 and down > 0.4 * min(a[3] - a[1], b[3] - b[1]):
            pairs.append((a[4], b[4]))
    return pairs


@pytest.mark.office
def test_libreoffice_prints_the_report_on_few_pages_without_overlapping_text(gated_report, tmp_path):
    """A 7-row report printed on 22 pages, and a row's wrapped messages ran over the next row."""
    needs_office()
    pdf = render_pdf(gated_report, tmp_path / "pdf")
    pages = pdf_words(pdf)
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes())) == len(pages)
    sheets = {}
    for number, words in enumerate(pages, start=1):
        footer = " ".join(word[4] for word in words if word[1] > 540)  # the footer: "<sheet>, page n of N"
        sheet = footer.split(",")[0]
        sheets.setdefault(sheet, []).append(number)
        assert not overlapping(words), (number, overlapping(words)[:5])
    assert set(sheets) == {"Summary", "Problems", "Messages", "Rejected rows"}
    assert all(len(numbers) <= 2 for numbers in sheets.values()), sheets
    text = " ".join(word[4] for words in pages for word in words)
    assert "Nothing was loaded" in text and "is not a date that exists" in text and "two lines of notes" in text
