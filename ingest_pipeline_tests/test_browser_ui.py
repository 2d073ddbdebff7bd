"""What an operator sees in the Dagster UI, in a real browser (Debian's chromium driven by Playwright).

Two uploads go through `ingest-pipeline run` into a fresh home: a good roster and one above its 5%
error limit. Then `ingest-pipeline ui` serves that home, started as a script would start it in the
background, and chromium opens the gated run's page (its sentence is on the page as it opens), the
form type's uploads view (company, form type and file of each upload), the good run's page (its
Re-execute control), and re-executes the gated run from failure from its page. Screenshots of each page are left in the test's tmp_path for humans; a failing
check names the screenshot of the page as the browser showed it.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psutil
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from ingest_pipeline_tests.defs.test_checks import write_roster
from ingest_pipeline_tests.test_operator_daemon import answers, free_port

PROJECT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "ingest_pipeline.cli"]
GATE_SENTENCE = "7.7% of rows rejected, above the form type's limit of 5%."
UI_START_SECONDS = 180  # `dagster dev`: webserver, daemon and code server, on a busy two-core machine
UI_STOP_SECONDS = 60
PAGE_SECONDS = 90  # a page until it shows what is checked (the code location may still be loading)


def environment(home: Path) -> dict[str, str]:
    """The command line's environment for `home`, without this machine's webhook or other instance."""
    variables = {**os.environ, "INGEST_HOME": str(home), "INGEST_PROGRESS": "0"}
    for name in ("DAGSTER_HOME", "INGEST_FILESPECS", "INGEST_WEBHOOK_URL"):
        variables.pop(name, None)
    return variables


def run_upload(home: Path, file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "run", str(file), "--company", "acme", "--form-type", "employee_roster",
                           "--home", str(home), "--executor", "in_process"],
                          capture_output=True, text=True, env=environment(home), timeout=300, check=False)  # fmt: skip


def started_in_the_background() -> None:
    """What a shell does to a job it starts with `&`: SIGINT ignored (which `dagster dev` would also
    give SIGTERM, had `ingest-pipeline ui` not set both back)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class ServedUI:
    base: str
    log: Path
    stopped_by_sigterm: bool | None = None
    leftovers: list[str] = field(default_factory=list)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def group_members(group: int) -> list[psutil.Process]:
    """The live processes of process group `group`."""
    members = []
    for process in psutil.process_iter(["status", "cmdline"]):
        try:
            if os.getpgid(process.pid) == group and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


@contextlib.contextmanager
def ui_serving(home: Path, log: Path) -> Iterator[ServedUI]:
    """`ingest-pipeline ui --port P` on the home, until it answers; afterwards its whole process
    group (webserver, daemon, code servers, runs) is stopped with SIGTERM, SIGKILL only if that fails."""
    port = free_port("127.0.0.1")
    served = ServedUI(base=f"http://127.0.0.1:{port}", log=log)
    with open(log, "wb") as out:
        ui = subprocess.Popen([*CLI, "ui", "--home", str(home), "--port", str(port)], env=environment(home),
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                              preexec_fn=started_in_the_background)  # fmt: skip
    try:
        deadline = time.monotonic() + UI_START_SECONDS
        while not answers(f"{served.base}/server_info"):
            assert time.monotonic() < deadline, f"no answer within {UI_START_SECONDS}s:\n{served.log_tail()}"
            with contextlib.suppress(subprocess.TimeoutExpired):
                ui.wait(timeout=0.25)  # the pause between two looks, ended at once if the UI exits
                pytest.fail(f"`ingest-pipeline ui` exited with code {ui.returncode}:\n{served.log_tail()}")
        yield served
    finally:
        with contextlib.suppress(ProcessLookupError):  # a UI that exited early may have no process left
            os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=UI_STOP_SECONDS)
            _, alive = psutil.wait_procs(group_members(ui.pid), timeout=UI_STOP_SECONDS)
            served.stopped_by_sigterm = not alive
        except subprocess.TimeoutExpired:
            served.stopped_by_sigterm = False
        if not served.stopped_by_sigterm:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
            psutil.wait_procs(group_members(ui.pid), timeout=10)
        served.leftovers = [" ".join(p.info["cmdline"] or [])[:200] for p in group_members(ui.pid)]


def chromium() -> str:
    """Debian's chromium (scripts/setup.sh installs it where apt-get can; Playwright's own browser
    download is never used)."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (no `chromium` on PATH); scripts/setup.sh installs it as root")
    return path


class Screens:
    """Checks of what a page shows, each followed by a screenshot named for it."""

    def __init__(self, page, folder: Path):
        self.page, self.folder = page, folder

    def check(self, name: str, *checks) -> Path:
        shot = self.folder / f"{name}.png"
        try:
            for check in checks:
                check()
        except AssertionError as error:
            self.page.screenshot(path=shot)
            raise AssertionError(f"{name}: {error}\nthe page as chromium showed it: {shot}") from None
        self.page.screenshot(path=shot)
        return shot


@pytest.mark.browser
def test_an_operator_reads_the_uploads_in_the_dagster_ui_in_a_real_browser(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    home = tmp_path / "home"
    good_file = write_roster(tmp_path / "acme-roster-good.csv", rows=45, bad=1)
    gated_file = write_roster(tmp_path / "acme-roster-gated.csv", rows=26, bad=2)  # 2/26 = 7.7% rejected
    good = run_upload(home, good_file)
    assert good.returncode == 0, good.stderr
    gated = run_upload(home, gated_file)
    assert gated.returncode == 1 and GATE_SENTENCE in gated.stderr, gated.stderr
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        runs = dict(connection.execute("SELECT source, run_id FROM ingest.uploads").fetchall())
    good_run, gated_run = runs[str(good_file.resolve())], runs[str(gated_file.resolve())]

    timeout = PAGE_SECONDS * 1000
    with ui_serving(home, tmp_path / "ui.log") as ui, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=["--no-sandbox"] if os.geteuid() == 0 else [])  # fmt: skip
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            # Dagster's "Join the Dagster community" dialog, shown once per browser, would cover every page.
            context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
            page = context.new_page()
            screens = Screens(page, tmp_path)

            # (1) The gated run: its sentence is on the page as it opens, no step clicked.
            page.goto(f"{ui.base}/runs/{gated_run}")
            sentence = page.get_by_text(GATE_SENTENCE)
            screens.check("gated-run",
                          lambda: expect(sentence.first).to_be_visible(timeout=timeout),
                          lambda: expect(sentence.last).to_be_in_viewport(timeout=timeout),
                          lambda: expect(page.get_by_text("DagsterAssetCheckFailedError")).to_have_count(0))  # fmt: skip

            # (2) The form type's uploads view: each upload's company, form type and file name.
            page.goto(f"{ui.base}/assets/employee_roster_uploads")
            cell = lambda text: page.get_by_role("cell", name=text, exact=True).first  # noqa: E731
            screens.check("employee_roster_uploads",
                          lambda: expect(cell(good_file.name)).to_be_visible(timeout=timeout),
                          lambda: expect(cell(gated_file.name)).to_be_visible(timeout=timeout),
                          lambda: expect(cell("acme")).to_be_visible(timeout=timeout),
                          lambda: expect(cell("employee_roster")).to_be_visible(timeout=timeout))  # fmt: skip

            # (3) The good run, started on the command line: the UI offers to re-execute it.
            page.goto(f"{ui.base}/runs/{good_run}")
            reexecute = page.get_by_role("button", name=re.compile(r"^Re-execute")).first
            screens.check("good-run",
                          lambda: expect(reexecute).to_be_visible(timeout=timeout),
                          lambda: expect(reexecute).to_be_enabled(timeout=timeout))  # fmt: skip

            # (4) The gated run, started on the command line, re-executed from failure in the UI (the
            # daemon of `ingest-pipeline ui` launches it): its publish step runs again and gates again.
            page.goto(f"{ui.base}/runs/{gated_run}")
            expect(page.get_by_role("button", name=re.compile(r"^Re-execute")).first).to_be_visible(timeout=timeout)
            page.locator("button:right-of(:text('Re-execute all'))").first.click()  # the menu beside it
            page.get_by_role("menuitem", name="From failure").click()
            page.wait_for_url(re.compile(rf"/runs/(?!{gated_run})[0-9a-f-]{{36}}$"), timeout=timeout)
            rerun = page.url.rsplit("/", 1)[-1]
            screens.check("gated-run-re-executed",
                          lambda: expect(page.get_by_text("Failure", exact=True).first).to_be_visible(timeout=timeout),
                          lambda: expect(page.get_by_text(GATE_SENTENCE).first).to_be_visible(timeout=timeout),
                          lambda: expect(page.get_by_text("CheckError")).to_have_count(0))  # fmt: skip
        finally:
            browser.close()
    assert ui.stopped_by_sigterm, f"the UI's processes did not stop on SIGTERM:\n{ui.log_tail()}"
    assert ui.leftovers == [], ui.leftovers

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        run = instance.get_run_by_id(rerun)
        executed = {stat.step_key for stat in instance.get_run_step_stats(rerun)}
    assert run.parent_run_id == gated_run and run.status == DagsterRunStatus.FAILURE, run
    assert executed == {"accepted_rows"}, executed  # what failed, not the stages that had done their work
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        upload = connection.execute("SELECT status, error FROM ingest.uploads WHERE source = ?",
                                    [str(gated_file.resolve())]).fetchall()  # fmt: skip
    assert upload == [("failed", GATE_SENTENCE)]
