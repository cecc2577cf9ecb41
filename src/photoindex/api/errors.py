"""Every failure of the REST API as one JSON shape: `{"code", "message", "hint"?, "details"}`.

`PhotoindexError`s keep their stable code and get the HTTP status that fits it (`status_for`); the
API's own conditions (authentication, paths outside the allowed roots, bad ranges, payload limits)
are `ApiError`s; request validation and routing errors (404, 405) are rendered the same way. Anything
else is a bug: it is logged with its traceback and answered with a 500 that reveals nothing.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from photoindex.errors import ErrorCode, PhotoindexError

log = logging.getLogger("photoindex.api")

# API-level error codes (not file or catalog conditions, so not in `ErrorCode`)
UNAUTHORIZED = "unauthorized"
PATH_NOT_ALLOWED = "path_not_allowed"
VALIDATION_ERROR = "validation_error"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
INVALID_STATE = "invalid_state"
PAYLOAD_TOO_LARGE = "payload_too_large"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
THUMBNAIL_NOT_FOUND = "thumbnail_not_found"
NOT_READY = "not_ready"

_STATUS: dict[ErrorCode, int] = {
    ErrorCode.FILE_NOT_FOUND: 404,
    ErrorCode.FILE_UNREADABLE: 422,
    ErrorCode.FILE_EMPTY: 422,
    ErrorCode.FILE_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_TYPE: 415,
    ErrorCode.CORRUPT_IMAGE: 422,
    ErrorCode.TRUNCATED_IMAGE: 422,
    ErrorCode.IMAGE_TOO_LARGE: 413,
    ErrorCode.RAW_DECODE_FAILED: 422,
    ErrorCode.DECODER_CRASHED: 422,
    ErrorCode.MODEL_NOT_FOUND: 503,
    ErrorCode.MODEL_INVALID: 503,
    ErrorCode.MODEL_DOWNLOAD_FAILED: 503,
    ErrorCode.UNKNOWN_MODEL: 400,
    ErrorCode.COLLECTION_NOT_FOUND: 404,
    ErrorCode.COLLECTION_EXISTS: 409,
    ErrorCode.INVALID_NAME: 400,
    ErrorCode.ASSET_NOT_FOUND: 404,
    ErrorCode.DIMENSION_MISMATCH: 409,
    ErrorCode.NO_VECTORS: 404,
    ErrorCode.TASK_FAILED: 409,
    ErrorCode.JOB_NOT_FOUND: 404,
    ErrorCode.CACHE_DAMAGED: 500,
    ErrorCode.ARCHIVE_CONFLICT: 409,
    ErrorCode.BATCH_NOT_FOUND: 404,
    ErrorCode.CONFIG_INVALID: 503,
    ErrorCode.BACKEND_UNAVAILABLE: 503,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.INTERNAL: 500,
}

_HTTP_CODES = {400: "bad_request", 401: UNAUTHORIZED, 403: "forbidden", 404: NOT_FOUND, 405: METHOD_NOT_ALLOWED,
               406: "not_acceptable", 409: "conflict", 413: PAYLOAD_TOO_LARGE, 415: UNSUPPORTED_MEDIA_TYPE,
               416: RANGE_NOT_SATISFIABLE, 422: VALIDATION_ERROR, 503: "unavailable"}


def status_for(code: ErrorCode | str) -> int:
    try:
        return _STATUS.get(ErrorCode(code), 500)
    except ValueError:
        return 500


class ApiError(Exception):
    """An HTTP-level failure with a stable code (see the constants above)."""

    def __init__(self, status: int, code: str, message: str, *, hint: str | None = None,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.details = details or {}
        self.headers = headers


def error_body(code: str, message: str, hint: str | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "details": details or {}}
    if hint:
        body["hint"] = hint
    return body


def error_response(status: int, code: str, message: str, *, hint: str | None = None,
                   details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, hint, details), status_code=status, headers=headers)


def _json_safe(value: Any) -> Any:
    """Validation error entries carry the offending input and exception objects: keep them printable."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")[:200]
    if isinstance(value, str):
        return value[:200]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:200]


def allowed_methods(request: Request) -> list[str]:
    """The methods of the most specific path template matching the request: the one the OpenAPI
    schema lists the path under (`/collections/select` rather than `/collections/{name}`)."""
    path = request.url.path
    best, methods = -1, set()
    for route in getattr(request.app.state, "api_routes", ()):
        regex = getattr(route, "path_regex", None)
        if regex is None or not regex.match(path):
            continue
        literal = len(re.sub(r"{[^}]*}", "", getattr(route, "path_format", "")))
        if literal > best:
            best, methods = literal, set()
        if literal == best:
            methods |= set(getattr(route, "methods", ()) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(PhotoindexError)
    async def _photoindex(_request: Request, exc: PhotoindexError) -> JSONResponse:
        status = status_for(exc.code)
        if status >= 500 and status != 503:
            log.error("internal error: %s", exc, exc_info=exc)
        return error_response(status, str(exc.code), exc.message, hint=exc.hint,
                              details=_json_safe(exc.details))

    @app.exception_handler(ApiError)
    async def _api(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, hint=exc.hint, details=_json_safe(exc.details),
                              headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": _json_safe(list(e.get("loc", ()))), "msg": _json_safe(e.get("msg", "")),
             "type": _json_safe(e.get("type", ""))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path", "header"))
        message = f"{where}: {first['msg']}" if where else str(first["msg"])
        return error_response(422, VALIDATION_ERROR, f"invalid request: {message}", details={"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path only; a path served by
            # several routes (GET and POST /collections) allows all of theirs
            allowed = allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return error_response(exc.status_code, code, message, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, str(ErrorCode.INTERNAL), "internal server error; the server log has the details")
