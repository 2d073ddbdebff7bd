"""What the HTTP API reads from the warehouse: one company's uploads and their findings.

Every query is parameterised and names its company: an upload of another company is never read.
Connections are the pipeline's readers (`Warehouse.connect(write=False)`), held for one page at a
time, so a client paging through millions of messages never holds a writer up for long.
"""

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

from ingest_pipeline.core.uploads import UPLOAD_COLUMNS
from ingest_pipeline.core.warehouse import Warehouse

UPLOAD_FIELDS = f"{UPLOAD_COLUMNS}, stage, chunks_total, chunks_done, run_id"
MESSAGE_FIELDS = ("row_number", "line_number", "field", "rule", "severity", "value", "message")
REJECT_FIELDS = ("row_number", "line_number", "raw")
SUMMARY_FIELDS = ("field", "rows", "nulls", "distinct_values", "errors", "warnings", "min_value", "max_value")


class BadCursor(ValueError):
    """A cursor the API did not hand out (or from another listing)."""


def encode_cursor(kind: str, *values) -> str:
    raw = json.dumps([kind, *[v.isoformat() if isinstance(v, dt.datetime) else v for v in values]])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, count: int) -> list:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadCursor(f"the cursor {cursor[:40]!r} is not one this API handed out") from None
    if not isinstance(data, list) or len(data) != count + 1 or data[0] != kind:
        raise BadCursor(f"the cursor {cursor[:40]!r} is not one this API handed out for this listing")
    return data[1:]


def _rows(connection, sql: str, parameters: list) -> list[dict]:
    cursor = connection.execute(sql, parameters)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def company_upload(warehouse: Warehouse, company_id: str, upload_id: str) -> dict | None:
    """The upload's row, only if it is this company's."""
    with warehouse.connect(write=False) as connection:
        found = _rows(connection, f"SELECT {UPLOAD_FIELDS} FROM ingest.uploads WHERE upload_id = ? AND company_id = ?",
                      [upload_id, company_id])  # fmt: skip
    return found[0] if found else None


def upload_status_of(warehouse: Warehouse, company_id: str, upload_id: str) -> str | None:
    upload = company_upload(warehouse, company_id, upload_id)
    return upload["status"] if upload else None


@dataclass(frozen=True)
class UploadFilter:
    form_type: str | None = None
    status: str | None = None
    since: dt.datetime | None = None  # received at or after
    until: dt.datetime | None = None  # received before


def company_uploads(warehouse: Warehouse, company_id: str, where: UploadFilter, limit: int, cursor: str | None
                    ) -> tuple[list[dict], str | None]:  # fmt: skip
    """A page of the company's uploads, newest first, and the cursor of the next page (None: the last)."""
    conditions, parameters = ["company_id = ?"], [company_id]
    for column, value, op in (("form_type", where.form_type, "="), ("status", where.status, "="),
                              ("received_at", where.since, ">="), ("received_at", where.until, "<")):  # fmt: skip
        if value is not None:
            conditions.append(f"{column} {op} ?")
            parameters.append(value)
    if cursor is not None:
        received_at, upload_id = decode_cursor("uploads", cursor, 2)
        try:
            received = dt.datetime.fromisoformat(received_at)
        except (TypeError, ValueError):
            raise BadCursor("the cursor is not one this API handed out for this listing") from None
        conditions.append("(received_at < ? OR (received_at = ? AND upload_id < ?))")
        parameters += [received, received, str(upload_id)]
    with warehouse.connect(write=False) as connection:
        rows = _rows(connection, f"SELECT {UPLOAD_FIELDS} FROM ingest.uploads WHERE {' AND '.join(conditions)} "
                                 "ORDER BY received_at DESC, upload_id DESC LIMIT ?", [*parameters, limit + 1])  # fmt: skip
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor("uploads", rows[-1]["received_at"], rows[-1]["upload_id"]) if more else None


@dataclass(frozen=True)
class FindingsFilter:
    rule: str | None = None
    field: str | None = None
    severity: str | None = None


def _row_key() -> str:
    return "coalesce(row_number, 0)"  # upload-level messages (no row) come first, as row 0


def message_page(warehouse: Warehouse, upload_id: str, where: FindingsFilter, limit: int, after_row: int | None
                 ) -> tuple[list[dict], int | None]:  # fmt: skip
    """Messages in row order after row `after_row`: about `limit` of them, never splitting a row's
    messages over two pages; and the row to continue after (None: no more)."""
    conditions, parameters = ["upload_id = ?"], [upload_id]
    for column, value in (("rule", where.rule), ("field", where.field), ("severity", where.severity)):
        if value is not None:
            conditions.append(f"{column} = ?")
            parameters.append(value)
    if after_row is not None:
        conditions.append(f"{_row_key()} > ?")
        parameters.append(after_row)
    condition = " AND ".join(conditions)
    with warehouse.connect(write=False) as connection:
        boundary = connection.execute(
            f"SELECT {_row_key()} FROM ingest.messages WHERE {condition} ORDER BY 1 LIMIT 1 OFFSET ?", [*parameters, limit - 1]
        ).fetchone()
        bound_sql, bound = ("", []) if boundary is None else (f" AND {_row_key()} <= ?", [boundary[0]])
        rows = _rows(connection, f"SELECT {', '.join(MESSAGE_FIELDS)} FROM ingest.messages WHERE {condition}{bound_sql} "
                                 f"ORDER BY {_row_key()}, field NULLS FIRST, rule, message", [*parameters, *bound])  # fmt: skip
        more = boundary is not None and connection.execute(
            f"SELECT 1 FROM ingest.messages WHERE {condition} AND {_row_key()} > ? LIMIT 1", [*parameters, boundary[0]]
        ).fetchone() is not None
    return rows, boundary[0] if more else None


def reject_page(warehouse: Warehouse, upload_id: str, limit: int, after_row: int | None) -> tuple[list[dict], int | None]:
    """Rejected records in row order after row `after_row`, and the row to continue after (None: no more)."""
    with warehouse.connect(write=False) as connection:
        rows = _rows(connection, f"SELECT {', '.join(REJECT_FIELDS)} FROM ingest.rejects WHERE upload_id = ? AND row_number > ? "
                                 "ORDER BY row_number LIMIT ?", [upload_id, after_row or 0, limit + 1])  # fmt: skip
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1]["row_number"] if more else None


def column_summary(warehouse: Warehouse, upload_id: str) -> list[dict]:
    with warehouse.connect(write=False) as connection:
        return _rows(connection, f"SELECT {', '.join(SUMMARY_FIELDS)} FROM ingest.column_summary WHERE upload_id = ? "
                                 "ORDER BY rowid", [upload_id])  # fmt: skip


def all_pages(page, after_row: int | None) -> Iterator[list[dict]]:
    """Every page of `page(after_row) -> (rows, next)`, one connection per page (for CSV downloads)."""
    while True:
        rows, after_row = page(after_row)
        yield rows
        if after_row is None:
            return
