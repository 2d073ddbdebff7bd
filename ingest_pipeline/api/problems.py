"""Errors as RFC 9457 problem documents: `type`, `title`, `status` and `detail`, one sentence.

`type` is `/problems/<kind>` on this server (listed in docs/http-api.md), or `about:blank` for
plain HTTP errors (an unknown path, a method not allowed).
"""

from fastapi.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An answer other than success: `status` the HTTP status, `kind` the problem type, str() one sentence."""

    def __init__(self, status: int, kind: str, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail, self.headers = status, kind, title, detail, headers or {}

    def response(self) -> JSONResponse:
        return problem_response(self.status, self.title, self.detail, f"/problems/{self.kind}", self.headers)


def problem_response(status: int, title: str, detail: str, type_: str = "about:blank",
                     headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    return JSONResponse({"type": type_, "title": title, "status": status, "detail": detail}, status_code=status,
                        media_type=PROBLEM_MEDIA_TYPE, headers=headers)  # fmt: skip


def not_found(upload_id: str) -> Problem:
    """The one answer for an upload that does not exist and for another company's upload."""
    return Problem(404, "upload-not-found", "Upload not found", f"There is no upload {upload_id[:40]!r} for this API key.")
