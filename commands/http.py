"""``POST /commands/{CommandName}``: parse, authorise, run, answer.

Headers: ``Authorization: Bearer <jwt>`` (required), ``Idempotency-Key``
(optional; a retry with the same key returns the first result and commits
nothing), ``If-Match: <version>`` (optional; 409 with the current version when
the aggregate is elsewhere).

The endpoint speaks ASGI itself rather than through Starlette's ``Request`` and
``Response``: it is the one route on the hot path, and the framework's layers
cost more CPU than the command behind them. It reads the few headers it needs
straight from the scope, reads the body from ``receive`` under the size limit
and answers with a pre-built header list. Every error still becomes a response
in ``commands.errors``, so error bodies and status codes are the same as on
every other route.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
from starlette.types import Receive, Scope, Send

from commands.auth import Authenticator
from commands.errors import ApiError, error_response, to_response
from commands.service import CommandOutcome, CommandService
from commands.spec import CommandSpec, Context

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[A-Za-z0-9._:~+/=-]{1,200}$")
_IF_MATCH_RE = re.compile(r'^(?:W/)?"?(\d{1,18})"?$')

# The request headers the endpoint reads, by their index in ``_Headers``.
_AUTHORIZATION, _IDEMPOTENCY_KEY, _IF_MATCH, _REQUEST_ID, _CONTENT_LENGTH = range(5)
_WANTED = {
    b"authorization": _AUTHORIZATION,
    b"idempotency-key": _IDEMPOTENCY_KEY,
    b"if-match": _IF_MATCH,
    b"x-request-id": _REQUEST_ID,
    b"content-length": _CONTENT_LENGTH,
}
_Headers = list[str | None]

_CONTENT_TYPE = (b"content-type", b"application/json")


class _Disconnected(Exception):
    """The client went away before its body arrived: nobody is left to answer."""


def _headers(scope: Scope) -> _Headers:
    """The wanted headers, first occurrence of each, decoded as latin-1 like Starlette."""
    found: _Headers = [None] * len(_WANTED)
    wanted = _WANTED
    for name, value in scope["headers"]:
        index = wanted.get(name)
        if index is not None and found[index] is None:
            found[index] = value.decode("latin-1")
    return found


def _idempotency_key(key: str | None) -> str | None:
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


def _expected_version(value: str | None) -> int | None:
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


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body exceeds {limit} bytes", limit=limit)


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the whole body in one message: the usual case
        if len(body) > limit:
            raise _too_large(limit)
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] != "http.request":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


class CommandEndpoint:
    """The ASGI handler of ``POST /commands/{name}``; ``vigil.app`` routes to it."""

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        started = time.perf_counter()
        outcome = "error"
        try:
            status, body, version = await self._handle(scope, receive, name)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-length", b"%d" % len(body)),
                        _CONTENT_TYPE,
                        (b"etag", b'"%d"' % version),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            outcome = "ok"
        except _Disconnected:
            return
        except Exception as exc:
            response = to_response(exc)
            if response is None:
                log.exception("command %s failed", name)
                response = error_response(500, "internal_error", "internal error; see server logs")
            else:
                outcome = "rejected"
            await response(scope, receive, send)
        finally:
            if name in self.commands:
                self.service.metrics.record(name, outcome, time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, name: str) -> tuple[int, bytes, int]:
        """(status, JSON body, aggregate version) of a command that was accepted."""
        headers = _headers(scope)
        principal = self.authenticator.authenticate(headers[_AUTHORIZATION])
        spec = self.commands.get(name)
        if spec is None:
            raise ApiError(404, "unknown_command", f"no command named {name!r}", command=name)
        principal.require(spec.role)
        key = _idempotency_key(headers[_IDEMPOTENCY_KEY])
        expected = _expected_version(headers[_IF_MATCH])
        raw = await _read_body(receive, headers[_CONTENT_LENGTH], self.max_body_bytes)
        body = self.decoders[name].decode(raw)
        at = body.occurred_at or datetime.now(UTC)
        ctx = Context(tenant=principal.tenant, actor=principal.subject, at=at)
        metadata = {"command": name}
        request_id = headers[_REQUEST_ID]
        if request_id and _KEY_RE.match(request_id):
            metadata["request_id"] = request_id
        outcome = await self.service.execute(
            spec, body, ctx, expected_version=expected, idempotency_key=key, metadata=metadata
        )
        return _answer(outcome)


def _answer(outcome: CommandOutcome) -> tuple[int, bytes, int]:
    result = outcome.result
    return (
        200 if result.duplicate else 201,
        orjson.dumps(outcome.as_json()),
        result.version,
    )
