"""`GET /v1/reports` against the real thing: `ingest-pipeline serve` on loopback over a home whose
uploads ran through `ingest-pipeline run`, a real HTTP client, the workbook opened with openpyxl;
and with Azure storage (Azurite), a SAS download link that works until it expires."""

import csv
import datetime as dt
import io
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import openpyxl
import pytest

from ingest_pipeline.api.keys import ApiKeyStore
from ingest_pipeline.cli import main
from ingest_pipeline.core.report_collation import PROBLEM_COLUMNS, UPLOAD_COLUMNS
from ingest_pipeline_tests.test_http_api import Server, command

TODAY = dt.datetime.now(dt.UTC).date()
PERIOD = f"since={TODAY - dt.timedelta(days=1)}&until={TODAY + dt.timedelta(days=1)}"  # safe across midnight


def in_process(*args: str) -> int:
    """`ingest-pipeline ARGS` in this process (it spares a run the start of a Python with Dagster);
    the variables it sets are restored."""
    saved = dict(os.environ)
    try:
        os.environ.pop("INGEST_WEBHOOK_URL", None)
        return main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def generated(path: Path, rows: int, seed: int, error_rate: float) -> Path:
    assert in_process("generate", "--form-type", "employee_roster", "--rows", str(rows), "--error-rate", str(error_rate),
                      "--seed", str(seed), "--out", str(path), "--home", str(path.parent / "gen")) == 0  # fmt: skip
    return path


def run(home: Path, file: Path, company: str) -> None:
    code = in_process("run", str(file), "--company", company, "--form-type", "employee_roster", "--home", str(home),
                      "--executor", "in_process")  # fmt: skip
    assert code in (0, 1)  # 1: failed (the quality gate), its counts and messages kept


def answer_key(file: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(Path(f"{file}.expected.csv").read_text())))


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A server over a home where acme has a completed and a failed upload and one only received,
    and globex has one upload."""
    root = tmp_path_factory.mktemp("http-reports")
    home = root / "home"
    keys = {company: ApiKeyStore(home).create(company, None)[1] for company in ("acme", "globex")}
    files = {
        "clean": generated(root / "clean.csv", rows=60, seed=31, error_rate=0.01),
        "gated": generated(root / "gated.csv", rows=60, seed=32, error_rate=0.3),  # over the form type's gate: failed
        "globex": generated(root / "globex.csv", rows=30, seed=33, error_rate=0.05),
    }
    run(home, files["clean"], "acme")
    run(home, files["gated"], "acme")
    run(home, files["globex"], "globex")
    server = Server(home, root / "server.log")
    server.keys, server.files, server.root = keys, files, root
    body = generated(root / "landed.csv", rows=5, seed=34, error_rate=0.0).read_bytes()
    status, server.received = server.json("POST", "/v1/uploads?form_type=employee_roster&filename=landed.csv",
                                          keys["acme"], body)  # fmt: skip
    assert status == 202  # no daemon runs here: it stays `received`
    yield server
    server.stop()


def report(server: Server, company: str, query: str = PERIOD):
    status, headers, body = server.request("GET", f"/v1/reports?{query}", server.keys[company])
    assert status == 200, body
    assert headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return headers, openpyxl.load_workbook(io.BytesIO(body))


def table(sheet) -> list[dict]:
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_the_report_is_one_workbook_of_every_upload_of_the_company_in_the_period(reports):
    headers, workbook = report(reports, "acme")
    since, until = TODAY - dt.timedelta(days=1), TODAY + dt.timedelta(days=1)
    assert headers["content-disposition"] == f'attachment; filename="report-acme-all-{since}-{until}.xlsx"'
    assert workbook.sheetnames == ["Uploads", "Problems", "About"]
    uploads_sheet = workbook["Uploads"]
    assert [c.value for c in uploads_sheet[1]] == UPLOAD_COLUMNS
    assert uploads_sheet.freeze_panes == "A2" and uploads_sheet.auto_filter.ref == "A1:J4"

    status, listing = reports.json("GET", "/v1/uploads", reports.keys["acme"])
    assert status == 200
    expected = {u["upload_id"]: u for u in listing["uploads"]}
    rows = table(uploads_sheet)
    assert {row["upload id"] for row in rows} == set(expected) and len(rows) == 3
    assert [row["received at (UTC)"] for row in rows] == sorted(row["received at (UTC)"] for row in rows)
    by_status = {row["status"]: row for row in rows}
    assert set(by_status) == {"completed", "failed", "received"}
    for row in rows:
        upload = expected[row["upload id"]]
        assert row["file"] == upload["filename"] and "/" not in row["file"]
        assert (row["rows"], row["accepted"], row["rejected"]) == (
            upload.get("rows_total"), upload.get("rows_accepted"), upload.get("rows_rejected"))  # fmt: skip
        assert row["error"] == upload["error"]
    completed, failed = by_status["completed"], by_status["failed"]
    assert completed["file"] == "clean.csv" and completed["rows"] == 60
    assert failed["file"] == "gated.csv" and failed["error"] and failed["error"].endswith(".")
    assert failed["rejected %"] == pytest.approx(failed["rejected"] / 60)
    assert by_status["received"]["upload id"] == reports.received["upload_id"] and by_status["received"]["rows"] is None

    # Problems across the period: the answer keys of both files, by rule and field.
    problems = table(workbook["Problems"])
    assert [c.value for c in workbook["Problems"][1]] == PROBLEM_COLUMNS
    keys = {name: answer_key(reports.files[name]) for name in ("clean", "gated")}
    messages = Counter((e["rule"], e["field"] or None) for name in keys for e in keys[name])
    touched = Counter(pair for name in keys for pair in {(e["rule"], e["field"] or None) for e in keys[name]})
    assert {(p["rule"], p["field"]): p["messages"] for p in problems} == dict(messages)
    assert {(p["rule"], p["field"]): p["uploads affected"] for p in problems} == dict(touched)
    for problem in problems:
        assert problem["example file"] in ("clean.csv", "gated.csv") and problem["example message"].endswith(".")
    assert not any(str(reports.root) in str(cell.value) for sheet in workbook for row in sheet.iter_rows() for cell in row)


def test_another_companys_report_has_none_of_its_uploads(reports):
    _, workbook = report(reports, "globex")
    (row,) = table(workbook["Uploads"])
    assert row["file"] == "globex.csv" and row["status"] in ("completed", "failed")
    acme_ids = {u["upload_id"] for u in reports.json("GET", "/v1/uploads", reports.keys["acme"])[1]["uploads"]}
    cells = {str(cell.value) for sheet in workbook for r in sheet.iter_rows() for cell in r}
    assert not cells & acme_ids and not {"clean.csv", "gated.csv", "landed.csv"} & cells
    assert {p["example file"] for p in table(workbook["Problems"])} == {"globex.csv"}
    about = {r[0].value: r[1].value for r in workbook["About"].iter_rows(min_row=2)}
    assert about["Company"] == "globex" and about["Uploads"] == 1


def test_a_period_or_form_type_without_uploads_gives_a_workbook_that_says_so(reports):
    _, workbook = report(reports, "acme", "since=2001-01-01&until=2001-01-31")
    assert [r["received at (UTC)"] for r in table(workbook["Uploads"])] == [
        "There are no uploads of acme received from 2001-01-01 to 2001-01-31 (UTC days, both included)."]  # fmt: skip
    headers, workbook = report(reports, "acme", f"{PERIOD}&form_type=payroll")
    assert "report-acme-payroll-" in headers["content-disposition"]
    assert table(workbook["Uploads"])[0]["received at (UTC)"].startswith("There are no uploads of form type payroll of acme")


@pytest.mark.parametrize(
    ("query", "kind", "says"),
    [("since=2024-13-01&until=2024-12-31", "bad-parameter", "The since date '2024-13-01' is not a date"),
     ("since=2024-06-30&until=2024-06-01", "bad-parameter", "since 2024-06-30 is later than until 2024-06-01"),
     ("since=2024-06-01", "bad-parameter", "until is missing"),
     ("since=2024-06-01&until=2024-06-30&form_type=nope", "unknown-form-type", "the known form types are"),
     ("since=2024-06-01&until=2024-06-30&form_type=x%27%20OR%201%3D1", "unknown-form-type", "There is no form type")],
)  # fmt: skip
def test_a_bad_request_is_a_problem_document_with_one_sentence(reports, query, kind, says):
    status, problem = reports.json("GET", f"/v1/reports?{query}", reports.keys["acme"])
    assert status == 400 and problem["type"] == f"/problems/{kind}" and says in problem["detail"]
    assert set(problem) == {"type", "title", "status", "detail"} and problem["detail"].count(". ") == 0


def test_a_report_needs_a_key(reports):
    assert reports.request("GET", f"/v1/reports?{PERIOD}")[0] == 401


@pytest.mark.azurite
def test_with_azure_storage_the_report_is_a_download_link_that_expires(azurite, tmp_path):
    landing = azurite.container_client()
    reports_container = f"{landing.container_name}-reports"
    home = tmp_path / "home"
    key = ApiKeyStore(home).create("acme", None)[1]
    lifetime = 3
    server = Server(home, tmp_path / "server.log", {
        "INGEST_STORAGE": "azure", "AZURE_STORAGE_ACCOUNT_URL": azurite.account_url,
        "AZURE_STORAGE_KEY": azurite.account_key, "INGEST_AZURE_CONTAINER": landing.container_name,
        "INGEST_API_REPORT_CONTAINER": reports_container, "INGEST_API_REPORT_LINK_SECONDS": str(lifetime)})  # fmt: skip
    try:
        body = generated(tmp_path / "r.csv", rows=5, seed=41, error_rate=0.0).read_bytes()
        created = server.json("POST", "/v1/uploads?form_type=employee_roster&filename=r.csv", key, body)[1]
        asked = dt.datetime.now(dt.UTC)
        status, answer = server.json("GET", f"/v1/reports?{PERIOD}", key)
        assert status == 200, answer
        expires = dt.datetime.fromisoformat(answer["expires_at"])
        assert abs((expires - asked).total_seconds() - lifetime) < 2
        url = answer["download_url"]
        signed = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        assert signed["sp"] == ["r"] and dt.datetime.fromisoformat(signed["se"][0].replace("Z", "+00:00")) == expires
        with urllib.request.urlopen(url, timeout=30) as download:  # no key: the link alone
            assert download.headers["Content-Disposition"] == f'attachment; filename="{answer["filename"]}"'
            workbook = openpyxl.load_workbook(io.BytesIO(download.read()))
        (row,) = table(workbook["Uploads"])
        assert (row["upload id"], row["status"]) == (created["upload_id"], "received") and row["file"].endswith("-r.csv")
        (report_blob,) = list(azurite.container_client(reports_container, create=False).list_blobs())
        assert report_blob.name.startswith("acme/") and report_blob.name.endswith(answer["filename"])
        assert [b.name for b in landing.list_blobs()] == [f"acme/employee_roster/{row['file']}"], "no report lands"

        time.sleep(lifetime + 1.5)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=30)
        assert refused.value.code == 403
        # The next report removes the expired one.
        assert server.json("GET", f"/v1/reports?{PERIOD}", key)[0] == 200
        names = [b.name for b in azurite.container_client(reports_container, create=False).list_blobs()]
        assert len(names) == 1 and names[0] != report_blob.name
    finally:
        server.stop()

    # Reports inside the landing area the sensor watches: the server refuses to start, in one line.
    result = command("serve", "--home", str(home), "--port", "1", env={
        **os.environ, "INGEST_STORAGE": "azure", "AZURE_STORAGE_ACCOUNT_URL": azurite.account_url,
        "AZURE_STORAGE_KEY": azurite.account_key, "INGEST_AZURE_CONTAINER": landing.container_name,
        "INGEST_API_REPORT_CONTAINER": landing.container_name})  # fmt: skip
    assert result.returncode == 1 and "inside the landing area the sensor watches" in result.stderr
    assert result.stderr.strip().count("\n") == 0
