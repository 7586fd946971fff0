"""``POST /commands/{CommandName}``: parse, authorise, run, answer.

Headers: ``Authorization: Bearer <jwt>`` (required), ``Idempotency-Key``
(optional; a retry with the same key returns the first result and commits
nothing), ``If-Match: <version>`` (optional; 409 with the current version when
the aggregate is elsewhere).
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from commands.auth import Authenticator
from commands.errors import ApiError, JSONResponse, error_response, to_response
from commands.service import CommandService
from commands.spec import CommandSpec, Context

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[A-Za-z0-9._:~+/=-]{1,200}$")
_IF_MATCH_RE = re.compile(r'^(?:W/)?"?(\d{1,18})"?$')


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not _KEY_RE.match(key):
        raise ApiError(
            400,
            "invalid_header",
            "Idempotency-Key must be 1-200 characters of letters, digits and ._:~+/=-",
            field="Idempotency-Key",
        )
    return key


def _expected_version(request: Request) -> int | None:
    value = request.headers.get("if-match")
    if value is None:
        return None
    match = _IF_MATCH_RE.match(value.strip())
    if not match:
        raise ApiError(
            400,
            "invalid_header",
            'If-Match must be an aggregate version, e.g. 3 or "3"',
            field="If-Match",
        )
    return int(match.group(1))


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"request body exceeds {limit} bytes", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413, "body_too_large", f"request body exceeds {limit} bytes", limit=limit
            )
        chunks.append(chunk)
    return b"".join(chunks)


class CommandEndpoint:
    def __init__(
        self,
        commands: dict[str, CommandSpec[Any]],
        service: CommandService,
        authenticator: Authenticator,
        *,
        max_body_bytes: int = 64 * 1024,
    ) -> None:
        self.commands = commands
        self.service = service
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes
        self.decoders = {name: msgspec.json.Decoder(spec.body) for name, spec in commands.items()}

    async def __call__(self, request: Request) -> Response:
        name = request.path_params["name"]
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self._handle(request, name)
            outcome = "ok" if response.status_code < 300 else "rejected"
            return response
        except Exception as exc:
            response_or_none = to_response(exc)
            if response_or_none is None:
                log.exception("command %s failed", name)
                return error_response(500, "internal_error", "internal error; see server logs")
            outcome = "rejected"
            return response_or_none
        finally:
            if name in self.commands:
                metrics = self.service.metrics
                metrics.commands.labels(name, outcome).inc()
                metrics.command_seconds.labels(name, outcome).observe(time.perf_counter() - started)

    async def _handle(self, request: Request, name: str) -> Response:
        principal = self.authenticator.authenticate(request.headers.get("authorization"))
        spec = self.commands.get(name)
        if spec is None:
            raise ApiError(404, "unknown_command", f"no command named {name!r}", command=name)
        principal.require(spec.role)
        key = _idempotency_key(request)
        expected = _expected_version(request)
        raw = await _read_body(request, self.max_body_bytes)
        body = self.decoders[name].decode(raw)
        at = body.occurred_at or datetime.now(UTC)
        ctx = Context(tenant=principal.tenant, actor=principal.subject, at=at)
        metadata = {"command": name}
        request_id = request.headers.get("x-request-id")
        if request_id and _KEY_RE.match(request_id):
            metadata["request_id"] = request_id
        result = await self.service.execute(
            spec, body, ctx, expected_version=expected, idempotency_key=key, metadata=metadata
        )
        status = 200 if result.result.duplicate else 201
        return JSONResponse(
            result.as_json(), status_code=status, headers={"ETag": f'"{result.result.version}"'}
        )
