"""The HTTP API a client's software talks to: upload a file, follow it, collect its findings.

`create_app(ApiSettings)` builds the FastAPI app; `ingest-pipeline serve` runs it on uvicorn.
The API writes uploads into the landing storage (the sensor and the assets do the rest, so an
upload over HTTP runs exactly like a dropped file) and reads the warehouse as any reader does.
Every route but the docs needs `Authorization: Bearer <key>` (`ingest-pipeline api-key create`);
a key sees its company's uploads only, and another company's upload answers 404 exactly as an
unknown one does. See docs/http-api.md.
"""

import csv
import io
import logging
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ingest_pipeline.api import queries
from ingest_pipeline.api.keys import ApiKeyStore
from ingest_pipeline.api.landing import RECEIVED, LandedRecords, LandedUpload, UploadReceiver
from ingest_pipeline.api.problems import Problem, not_found, problem_response
from ingest_pipeline.api.report_links import AzureReportLinks
from ingest_pipeline.core.chunk_status import as_dicts, chunks_of_upload
from ingest_pipeline.core.errors import ConfigurationError, ReportPeriodError, StorageError
from ingest_pipeline.core.filespec import FORM_TYPE_RE
from ingest_pipeline.core.storage import LandingStorage, LocalLandingStorage
from ingest_pipeline.core.uploads import COMPLETED, FAILED, QUEUED, UPLOAD_ID_LENGTH
from ingest_pipeline.core.warehouse import Warehouse

logger = logging.getLogger("ingest_pipeline.api")

MAX_UPLOAD_BYTES_ENV = "INGEST_API_MAX_UPLOAD_BYTES"
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024**3
WAREHOUSE_WAIT_ENV = "INGEST_API_WAREHOUSE_WAIT_SECONDS"
DEFAULT_WAREHOUSE_WAIT_SECONDS = 10.0
RECEIVED_SHOWN_HOURS = 24  # landed uploads the sensor has not registered are listed this long
UPLOAD_STATUSES = (RECEIVED, QUEUED, "processing", COMPLETED, FAILED)
_UPLOAD_ID_RE = re.compile(rf"[0-9a-f]{{{UPLOAD_ID_LENGTH}}}")
CSV_EXPORT_PAGE = 50_000


def _env_number(name: str, default: float, kind=float):
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise ConfigurationError(f"{name} is {value!r}, not a number") from None
    if number <= 0:
        raise ConfigurationError(f"{name} is {value!r}; it must be above 0")
    return number


@dataclass
class ApiSettings:
    """What the server serves: the pipeline's home, its filespecs, and where uploads land."""

    home: Path
    filespecs: Path
    storage: LandingStorage | None = None  # default: the home's local landing folder
    # With Azure: reports are answered as download links that expire; None: as the workbook itself.
    report_links: AzureReportLinks | None = None
    max_upload_bytes: int = field(default_factory=lambda: _env_number(MAX_UPLOAD_BYTES_ENV, DEFAULT_MAX_UPLOAD_BYTES, int))
    warehouse_wait_seconds: float = field(
        default_factory=lambda: _env_number(WAREHOUSE_WAIT_ENV, DEFAULT_WAREHOUSE_WAIT_SECONDS)
    )

    def __post_init__(self) -> None:
        self.home, self.filespecs = Path(self.home), Path(self.filespecs)
        if self.storage is None:
            self.storage = LocalLandingStorage(self.home / "landing")


_bearer = HTTPBearer(auto_error=False, description="An API key from `ingest-pipeline api-key create --company ID`.")


def create_app(settings: ApiSettings) -> FastAPI:
    """The API over one home (see the module docstring)."""
    app = FastAPI(
        title="ingest_pipeline",
        version="1",
        summary="Upload client files, follow them through validation, and collect their findings.",
        description="Errors are problem documents (RFC 9457) whose `detail` is one sentence. "
        "Authenticate with `Authorization: Bearer <key>`.",
    )
    keys = ApiKeyStore(settings.home)
    records = LandedRecords(settings.home)
    warehouse = Warehouse(settings.home / "warehouse.duckdb")

    @app.exception_handler(Problem)
    async def _problem(request: Request, problem: Problem) -> Response:
        return problem.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        detail = error.detail if isinstance(error.detail, str) else "The request cannot be answered."
        if error.status_code == 404 and detail == "Not Found":
            detail = f"There is no {request.url.path!r} here; the API's paths are listed at /docs."
        elif not detail.endswith("."):
            detail += "."
        return problem_response(error.status_code, _title(error.status_code), detail, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "path", "header"))
        message = str(first.get("msg", "is not valid")).rstrip(".")
        return problem_response(400, "Bad request", f"The parameter {where!r} is not valid: {message}.",
                                "/problems/bad-parameter")  # fmt: skip

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        logger.exception("unexpected error answering %s %s", request.method, request.url.path)
        return problem_response(500, "Internal server error", "The server failed to answer; the error is in its log.")

    def company(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
        """The company of the request's API key."""
        if credentials is None:
            raise Problem(401, "unauthorized", "Unauthorized", "Send an API key as `Authorization: Bearer <key>`.",
                          {"WWW-Authenticate": "Bearer"})  # fmt: skip
        found = keys.company_of(credentials.credentials)
        if found is None:
            raise Problem(401, "unauthorized", "Unauthorized", "The API key is not valid, or has been revoked.",
                          {"WWW-Authenticate": 'Bearer error="invalid_token"'})  # fmt: skip
        return found

    Company = Annotated[str, Depends(company)]

    def readable() -> None:
        """Waits a little for a writer to let go of the warehouse; 503 (try again) rather than hold a client long."""
        if not warehouse.lock_free_within(settings.warehouse_wait_seconds):
            raise Problem(503, "warehouse-busy", "Busy", "The warehouse is being written; try again in a few seconds.",
                          {"Retry-After": "5"})  # fmt: skip

    Readable = Depends(readable)

    def known_form_type(form_type: str) -> None:
        """400 unless `form_type` names a filespec."""
        if not FORM_TYPE_RE.fullmatch(form_type) or not (settings.filespecs / f"{form_type}.yaml").is_file():
            known = ", ".join(sorted(p.stem for p in settings.filespecs.glob("*.yaml"))) or "none"
            raise Problem(400, "unknown-form-type", "Unknown form type",
                          f"There is no form type {form_type[:60]!r}; the known form types are {known}.")  # fmt: skip

    def own_upload(upload_id: str, company_id: str) -> tuple[dict | None, LandedUpload | None]:
        """(its warehouse row, or None; its landed record) for the company's upload; 404 otherwise."""
        if not _UPLOAD_ID_RE.fullmatch(upload_id):
            raise not_found(upload_id)
        row = queries.company_upload(warehouse, company_id, upload_id)
        landed = records.get(upload_id)
        if landed is not None and landed.company_id != company_id:
            landed = None
        if row is None and landed is None:
            raise not_found(upload_id)
        return row, landed

    # --- uploads --------------------------------------------------------------------------

    @app.post("/v1/uploads", status_code=202, tags=["uploads"], summary="Upload a file (the request body, streamed)")
    async def create_upload(
        request: Request,
        company_id: Company,
        form_type: Annotated[str, Query(description="The form type (filespec) to judge the file by.")],
        filename: Annotated[str | None, Query(description="The file's name, kept in the landed file's name.")] = None,
    ) -> Response:
        """The body is the file, streamed to the landing storage in bounded memory and committed only once
        it has all arrived. 202 with the new upload's id; 200 with the existing one when the same bytes came
        before for this company and form type."""
        known_form_type(form_type)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > settings.max_upload_bytes:
                raise Problem(413, "upload-too-large", "Upload too large",
                              f"The upload is larger than this server's limit of {settings.max_upload_bytes} bytes "
                              f"({MAX_UPLOAD_BYTES_ENV}).", {"Connection": "close"})  # fmt: skip
            if int(declared) == 0:
                raise Problem(400, "empty-upload", "Empty upload", "The request body is empty; send the file's bytes as the body.")
        receiver = UploadReceiver(settings.storage, company_id, form_type, filename, settings.max_upload_bytes)
        try:
            async for piece in request.stream():
                block = receiver.feed(piece)
                if block is not None:
                    await run_in_threadpool(receiver.write, block)
            record, landed = await run_in_threadpool(
                receiver.finish, records, lambda upload_id: queries.upload_status_of(warehouse, company_id, upload_id)
            )
        except ClientDisconnect:
            receiver.abort()
            logger.info("a client of %s went away after %d bytes; nothing was landed", company_id, receiver.size)
            return Response(status_code=400)  # nobody is listening
        except BaseException:
            receiver.abort()
            raise
        status_url = f"/v1/uploads/{record.upload_id}"
        if landed:
            logger.info("landed upload %s (%s, %s, %d bytes) at %s", record.upload_id, company_id, form_type,
                        record.bytes, record.source)  # fmt: skip
        body = {"upload_id": record.upload_id, "status_url": status_url, "duplicate": not landed,
                "bytes": record.bytes, "sha256": record.sha256}  # fmt: skip
        if not landed:
            row = await run_in_threadpool(queries.company_upload, warehouse, company_id, record.upload_id)
            body["status"] = row["status"] if row else RECEIVED
        else:
            body["status"] = RECEIVED
        return JSONResponse(body, status_code=202 if landed else 200, headers={"Location": status_url})

    @app.get("/v1/uploads/{upload_id}", tags=["uploads"], summary="An upload's status, progress and chunks",
             dependencies=[Readable])  # fmt: skip
    def upload_status(upload_id: str, company_id: Company) -> dict:
        row, landed = own_upload(upload_id, company_id)
        if row is None:
            return _received_view(landed)
        from ingest_pipeline.core.progress import progress_of_uploads
        from ingest_pipeline.defs.progress_files import chunks_refresh

        # First: distributed, it brings the chunk steps' files from the work container for both.
        chunks = chunks_of_upload(warehouse, settings.home, row, chunks_refresh())
        progress = progress_of_uploads(warehouse, settings.home, [row])[upload_id]
        view = _upload_view(row, landed)
        view["progress"] = {
            "chunks_done": progress.chunks_done, "chunks_total": progress.chunks_total, "rows_done": progress.rows_done,
            "rows_per_second": _round(progress.rows_per_second), "eta_seconds": _round(progress.eta_seconds),
            "fraction": round(progress.fraction, 4),
        }  # fmt: skip
        view["chunks"] = [{**c, "started_at": _iso_text(c["started_at"]), "finished_at": _iso_text(c["finished_at"])}
                          for c in as_dicts(chunks)]  # fmt: skip
        return view

    @app.get("/v1/uploads", tags=["uploads"], summary="The company's uploads, newest first", dependencies=[Readable])
    def list_uploads(
        company_id: Company,
        form_type: str | None = None,
        status: Annotated[str | None, Query(description=f"One of {', '.join(UPLOAD_STATUSES)}.")] = None,
        since: Annotated[datetime | None, Query(description="Received at or after (ISO date or time, UTC).")] = None,
        until: Annotated[datetime | None, Query(description="Received before (ISO date or time, UTC).")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    ) -> dict:
        if status is not None and status not in UPLOAD_STATUSES:
            raise Problem(400, "bad-parameter", "Bad request", f"The status {status[:40]!r} is not one of {', '.join(UPLOAD_STATUSES)}.")
        since_utc, until_utc = _naive_utc(since), _naive_utc(until)
        received: list[dict] = []
        if cursor is None and status in (None, RECEIVED):
            received = _received_not_registered(company_id, form_type, since_utc, until_utc)
        uploads: list[dict] = []
        next_cursor = None
        if status != RECEIVED:
            try:
                rows, next_cursor = queries.company_uploads(
                    warehouse, company_id, queries.UploadFilter(form_type, status, since_utc, until_utc), limit, cursor
                )
            except queries.BadCursor as error:
                raise Problem(400, "bad-cursor", "Bad cursor", f"{str(error)[0].upper()}{str(error)[1:]}.") from None
            uploads = [_upload_view(row, None) for row in rows]
        return {"uploads": received + uploads, "next_cursor": next_cursor}

    def _received_not_registered(company_id: str, form_type, since, until) -> list[dict]:
        horizon = datetime.now(UTC) - timedelta(hours=RECEIVED_SHOWN_HOURS)
        recent = [r for r in records.all_of(company_id) if datetime.fromisoformat(r.received_at) >= horizon
                  and (form_type is None or r.form_type == form_type)]  # fmt: skip
        recent = [r for r in recent if (since is None or _naive(r.received_at) >= since)
                  and (until is None or _naive(r.received_at) < until)]  # fmt: skip
        unregistered = [r for r in recent if queries.company_upload(warehouse, company_id, r.upload_id) is None]
        return [_received_view(r) for r in sorted(unregistered, key=lambda r: r.received_at, reverse=True)]

    # --- findings -------------------------------------------------------------------------

    def wants_csv(request: Request, format: str | None) -> bool:
        if format is not None:
            if format not in ("json", "csv"):
                raise Problem(400, "bad-parameter", "Bad request", f"The format {format[:20]!r} is neither json nor csv.")
            return format == "csv"
        accept = request.headers.get("accept", "")
        return "text/csv" in accept and "application/json" not in accept

    def row_cursor(kind: str, cursor: str | None) -> int | None:
        if cursor is None:
            return None
        try:
            (after,) = queries.decode_cursor(kind, cursor, 1)
        except queries.BadCursor as error:
            raise Problem(400, "bad-cursor", "Bad cursor", f"{str(error)[0].upper()}{str(error)[1:]}.") from None
        if not isinstance(after, int):
            raise Problem(400, "bad-cursor", "Bad cursor", "The cursor is not one this API handed out for this listing.")
        return after

    def csv_download(pages: Iterator[list[dict]], columns: tuple[str, ...], name: str) -> StreamingResponse:
        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            out = csv.writer(buffer, lineterminator="\n")
            out.writerow(columns)
            for rows in pages:
                out.writerows([row[c] for c in columns] for row in rows)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
            yield buffer.getvalue()

        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip

    @app.get("/v1/uploads/{upload_id}/messages", tags=["findings"], dependencies=[Readable],
             summary="The upload's messages (one per broken rule), in row order")  # fmt: skip
    def messages(
        request: Request,
        upload_id: str,
        company_id: Company,
        rule: str | None = None,
        field: str | None = None,
        severity: Annotated[str | None, Query(description="error or warning")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000, description="About this many (a row's messages stay together).")] = 1000,
        cursor: str | None = None,
        format: Annotated[str | None, Query(description="json (default) or csv (also by `Accept: text/csv`); csv has every page.")] = None,
    ) -> Response:
        own_upload(upload_id, company_id)
        where = queries.FindingsFilter(rule, field, severity)
        after = row_cursor("messages", cursor)
        if wants_csv(request, format):
            pages = queries.all_pages(lambda a: queries.message_page(warehouse, upload_id, where, CSV_EXPORT_PAGE, a), after)
            return csv_download(pages, queries.MESSAGE_FIELDS, f"{upload_id}-messages.csv")
        rows, next_row = queries.message_page(warehouse, upload_id, where, limit, after)
        return JSONResponse({"messages": rows, "next_cursor": None if next_row is None else queries.encode_cursor("messages", next_row)})

    @app.get("/v1/uploads/{upload_id}/rejects", tags=["findings"], dependencies=[Readable],
             summary="The upload's rejected records, as they stood in the file")  # fmt: skip
    def rejects(
        request: Request,
        upload_id: str,
        company_id: Company,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        cursor: str | None = None,
        format: Annotated[str | None, Query(description="json (default) or csv (also by `Accept: text/csv`); csv has every page.")] = None,
    ) -> Response:
        own_upload(upload_id, company_id)
        after = row_cursor("rejects", cursor)
        if wants_csv(request, format):
            pages = queries.all_pages(lambda a: queries.reject_page(warehouse, upload_id, CSV_EXPORT_PAGE, a), after)
            return csv_download(pages, queries.REJECT_FIELDS, f"{upload_id}-rejects.csv")
        rows, next_row = queries.reject_page(warehouse, upload_id, limit, after)
        return JSONResponse({"rejects": rows, "next_cursor": None if next_row is None else queries.encode_cursor("rejects", next_row)})

    @app.get("/v1/uploads/{upload_id}/summary", tags=["findings"], dependencies=[Readable],
             summary="The upload's column summary (rows, nulls, distinct values, errors, warnings, min, max)")  # fmt: skip
    def summary(upload_id: str, company_id: Company) -> dict:
        own_upload(upload_id, company_id)
        return {"columns": queries.column_summary(warehouse, upload_id)}

    @app.get("/v1/uploads/{upload_id}/report.xlsx", tags=["findings"], dependencies=[Readable],
             summary="The client report: summary, problems by rule and field, messages, marked rejects",
             response_class=FileResponse)  # fmt: skip
    def report(upload_id: str, company_id: Company) -> Response:
        row, _ = own_upload(upload_id, company_id)
        if row is None or row["status"] not in (COMPLETED, FAILED):
            raise Problem(409, "upload-not-finished", "Not finished",
                          f"Upload {upload_id} has not finished yet; its report is ready once its status is completed or failed.")  # fmt: skip
        from ingest_pipeline.core.client_report import report_path, write_client_report

        name = f"{upload_id}.xlsx"
        kept = report_path(settings.home, upload_id)
        finished = row["finished_at"].replace(tzinfo=UTC).timestamp() if row["finished_at"] else None
        if kept.exists() and finished is not None and kept.stat().st_mtime >= finished:
            return FileResponse(kept, media_type=_XLSX, filename=name)
        temp = settings.home / "api" / "reports" / f".{upload_id}.{secrets.token_hex(4)}.xlsx"
        temp.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_client_report(warehouse, upload_id, temp, home=settings.home, filespecs=settings.filespecs)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return FileResponse(temp, media_type=_XLSX, filename=name, background=BackgroundTask(temp.unlink, missing_ok=True))

    # --- reports --------------------------------------------------------------------------

    @app.get("/v1/reports", tags=["reports"], dependencies=[Readable],
             summary="One workbook over the company's uploads in a period: each upload, and the problems across them",
             responses={200: {"content": {_XLSX: {}, "application/json": {"example": {
                 "download_url": "https://…/reports/acme/…xlsx?se=…&sig=…", "expires_at": "2024-07-01T10:00:00+00:00",
                 "filename": "report-acme-all-2024-06-01-2024-06-30.xlsx", "uploads": 12}}}}})  # fmt: skip
    def collated_report(
        company_id: Company,
        since: Annotated[str | None, Query(description="The first day of the period, YYYY-MM-DD (UTC).")] = None,
        until: Annotated[str | None, Query(description="The last day of the period, YYYY-MM-DD (UTC), included.")] = None,
        form_type: Annotated[str | None, Query(description="Only uploads of this form type (default: all).")] = None,
    ) -> Response:
        """Local storage: the workbook. Azure storage: JSON with `download_url`, a link that expires at
        `expires_at`."""
        from ingest_pipeline.core.report_collation import CollatedUpload, collate, parse_period, write_collation

        try:
            period = parse_period(since, until)
        except ReportPeriodError as error:
            raise Problem(400, "bad-parameter", "Bad request", str(error)) from None
        if form_type is not None:
            known_form_type(form_type)
        received = [CollatedUpload(r.upload_id, _naive(r.received_at), r.filename, r.form_type, RECEIVED)
                    for r in records.all_of(company_id)]  # fmt: skip
        collation = collate(warehouse, company_id, period, form_type, received=received)
        name = f"report-{company_id}-{form_type or 'all'}-{period.since}-{period.until}.xlsx"
        temp = settings.home / "api" / "reports" / f".collation-{secrets.token_hex(8)}.xlsx"
        try:
            write_collation(collation, temp)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if settings.report_links is None:
            return FileResponse(temp, media_type=_XLSX, filename=name, background=BackgroundTask(temp.unlink, missing_ok=True))
        try:
            link = settings.report_links.publish(temp, company_id, name)
        except StorageError:
            logger.exception("could not publish a report of %s", company_id)
            raise Problem(503, "report-storage-unavailable", "Unavailable",
                          "The report could not be stored for download; try again in a minute.", {"Retry-After": "60"}) from None  # fmt: skip
        finally:
            temp.unlink(missing_ok=True)
        return JSONResponse({"download_url": link.url, "expires_at": link.expires_at.isoformat(timespec="seconds"),
                             "filename": name, "uploads": len(collation.uploads) + collation.uploads_left_out})  # fmt: skip

    return app


_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _naive_utc(value: datetime | None) -> datetime | None:
    """The warehouse's times are naive UTC."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _naive(iso: str) -> datetime:
    return _naive_utc(datetime.fromisoformat(iso))


def _iso(value) -> str | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC).isoformat() if isinstance(value, datetime) and value.tzinfo is None else str(value)


def _iso_text(text: str | None) -> str | None:
    """An ISO time of the work folder's files (naive UTC) with its offset."""
    return None if text is None else _iso(datetime.fromisoformat(text))


def _upload_view(row: dict, landed: LandedUpload | None) -> dict:
    """An upload as the API shows it: no server paths (the source is shown by its file name)."""
    upload_id = row["upload_id"]
    return {
        "upload_id": upload_id,
        "company_id": row["company_id"],
        "form_type": row["form_type"],
        "filename": landed.filename if landed else os.path.basename(str(row["source"]).replace("\\", "/")),
        "status": row["status"],
        "stage": row["stage"],
        "filespec_version": row["filespec_version"],
        "bytes": row["bytes"],
        "sha256": row["sha256"],
        "received_at": _iso(row["received_at"]),
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "rows_total": row["rows_total"],
        "rows_accepted": row["rows_accepted"],
        "rows_rejected": row["rows_rejected"],
        "error": row["error"],
        "links": _links(upload_id),
    }


def _received_view(landed: LandedUpload) -> dict:
    """An upload landed by the API that the sensor has not registered yet."""
    return {
        **{key: value for key, value in asdict(landed).items() if key not in ("path", "source")},
        "status": RECEIVED,
        "stage": None,
        "error": None,
        "progress": None,
        "chunks": [],
        "links": _links(landed.upload_id),
    }


def _links(upload_id: str) -> dict:
    base = f"/v1/uploads/{upload_id}"
    return {"self": base, "messages": f"{base}/messages", "rejects": f"{base}/rejects", "summary": f"{base}/summary",
            "report": f"{base}/report.xlsx"}  # fmt: skip
