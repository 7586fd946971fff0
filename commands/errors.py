"""The one place where exceptions become HTTP responses.

Every error body has the same shape::

    {"error": {"code": "...", "message": "...", "field": "...", ...}}

``code`` is stable for clients to switch on; ``message`` is for people.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import orjson
from starlette.responses import Response

from commands.auth import AuthError, Forbidden
from commands.service import AggregateNotFound, VersionMismatch
from domain.errors import AlreadyExists, DomainError, InvalidValue
from infrastructure.eventstore.port import ConcurrencyConflict, StoreUnavailable


class ApiError(Exception):
    """An error the HTTP layer raises itself (bad header, body too large...)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


def _validation_field(message: str) -> tuple[str | None, str]:
    """Pull the offending field out of msgspec's message (``- at `$.a.b```)."""
    field: str | None = None
    reason = message
    at = _AT_PATH.search(message)
    if at:
        field = at.group(1) or None
        reason = message[: at.start()]
    for pattern in (_MISSING, _UNKNOWN):
        named = pattern.search(reason)
        if named:
            field = f"{field}.{named.group(1)}" if field else named.group(1)
    return field, reason


def to_response(exc: Exception) -> JSONResponse | None:
    """Map a known exception to its response; ``None`` means a real bug (500)."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, **exc.extra)
    if isinstance(exc, AuthError):
        return error_response(401, "unauthenticated", str(exc), {"WWW-Authenticate": "Bearer"})
    if isinstance(exc, Forbidden):
        return error_response(403, "forbidden", str(exc))
    if isinstance(exc, AggregateNotFound):
        return error_response(404, "not_found", str(exc), aggregate_id=str(exc.ref.id))
    if isinstance(exc, VersionMismatch):
        return error_response(
            409,
            "version_mismatch",
            str(exc),
            current_version=exc.current,
            headers={"ETag": f'"{exc.current}"'},
        )
    if isinstance(exc, ConcurrencyConflict):
        return error_response(
            409, "concurrency_conflict", str(exc), current_version=exc.current_version
        )
    if isinstance(exc, AlreadyExists):
        return error_response(409, exc.code, exc.message)
    if isinstance(exc, InvalidValue):
        return error_response(422, exc.code, exc.message, field=exc.field, reason=exc.reason)
    if isinstance(exc, DomainError):
        return error_response(422, exc.code, exc.message)
    if isinstance(exc, msgspec.ValidationError):
        field, reason = _validation_field(str(exc))
        extra: dict[str, Any] = {"field": field} if field else {}
        return error_response(400, "invalid_body", str(exc), reason=reason, **extra)
    if isinstance(exc, msgspec.DecodeError):
        return error_response(400, "malformed_json", f"request body is not valid JSON: {exc}")
    if isinstance(exc, StoreUnavailable):
        return error_response(
            503,
            "store_unavailable",
            "the event store is unavailable; retry with the same Idempotency-Key",
            headers={"Retry-After": "1"},
        )
    return None
