"""The HTTP and WebSocket endpoint: strawberry's ASGI view, with Vigil's boundary rules.

Before any GraphQL runs, an HTTP request must carry a valid bearer token (the
same JWTs as the command API), a well-formed ``X-Vigil-Min-Position`` if any,
and a body within bounds; otherwise it is answered 401/400/413 with a GraphQL
error body. GET with ``Accept: text/html`` serves GraphiQL, which needs no
token (the queries it sends do). Over WebSocket the token comes with
``connection_init`` (``{"Authorization": "Bearer ..."}``) or the upgrade
request's header.

Results leave through ``process_result``, where every error gets its code
and bugs are masked outside debug mode (``read_api.errors``).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry import Schema
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from commands.auth import Authenticator, AuthError, Principal
from read_api.context import ReadContext, ReadServices
from read_api.documents import DocumentCache
from read_api.errors import format_error
from read_api.fastpath import plan_document, run_plan
from read_api.subscriptions import SubscriptionsMixin

MIN_POSITION_HEADER = "x-vigil-min-position"


class RequestRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        body = {"errors": [{"message": self.message, "extensions": {"code": self.code}}]}
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return Response(
            orjson.dumps(body), self.status, headers=headers, media_type="application/json"
        )


class VigilGraphQL(SubscriptionsMixin, GraphQL[ReadContext, None]):
    def __init__(
        self,
        schema: Schema,
        services: ReadServices,
        authenticator: Authenticator,
        documents: DocumentCache,
        *,
        graphiql: bool = True,
        max_body_bytes: int = 64 * 1024,
    ) -> None:
        super().__init__(schema, graphql_ide="graphiql" if graphiql else None)
        self.services = services
        self.authenticator = authenticator
        self.documents = documents
        self.vigil_schema: Schema = schema
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._wants_ide(scope):
            try:
                scope["vigil.principal"] = self._authenticate(scope)
                scope["vigil.min_position"] = _min_position(scope)
                receive = self._limit_body(scope, receive)
                if scope["method"] == "POST" and _is_json(scope):
                    body = await _read_body(receive)
                    if await self._answer_fast(scope, body, send):
                        return
                    receive = _replay(body, receive)
                await super().__call__(scope, receive, send)
            except RequestRefused as refused:
                await refused.response()(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _answer_fast(self, scope: Scope, body: bytes, send: Send) -> bool:
        """Answer a planned document without the generic executor; False: not this one."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        query = request.get("query") if isinstance(request, dict) else None
        entry = self.documents.get(query) if isinstance(query, str) else None
        if entry is None or entry.errors is None or entry.errors:
            return False  # unseen or invalid: strawberry parses, validates and caches it
        if not entry.planned:
            entry.plan = plan_document(self.vigil_schema, entry.document)
            entry.planned = True
        variables = request.get("variables")
        if (
            entry.plan is None
            or request.get("operationName")
            or not (variables is None or isinstance(variables, dict))
        ):
            return False
        context = ReadContext(
            self.services,
            scope["vigil.principal"],
            min_position=scope["vigil.min_position"],
        )
        result = await run_plan(entry.plan, self.vigil_schema, context, variables)
        if result is None:
            return False
        response = Response(orjson.dumps(result), media_type="application/json")
        await response(scope, _no_body, send)
        return True

    async def get_context(self, request: Request | WebSocket, response: Any) -> ReadContext:
        return ReadContext(
            self.services,
            request.scope.get("vigil.principal"),
            min_position=request.scope.get("vigil.min_position"),
            request=request,
        )

    def subscription_authenticator(self, request: WebSocket) -> Authenticator:
        return self.authenticator

    async def subscription_context(self, request: WebSocket, principal: Principal) -> Any:
        # The hub is found through request.app.state.subscriptions, as the
        # subscriptions package expects.
        return ReadContext(self.services, principal, request=request)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        debug = self.services.debug
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            response["errors"] = [format_error(error, debug=debug) for error in result.errors]
        if result.extensions:
            response["extensions"] = result.extensions
        return response

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def _wants_ide(self, scope: Scope) -> bool:
        if scope["method"] != "GET" or not self.graphql_ide:
            return False
        for name, value in scope["headers"]:
            if name == b"accept":
                return b"text/html" in value
        return False

    def _authenticate(self, scope: Scope) -> Any:
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        try:
            return self.authenticator.authenticate(header)
        except AuthError as err:
            raise RequestRefused(401, "UNAUTHENTICATED", str(err)) from err

    def _limit_body(self, scope: Scope, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                raise RequestRefused(413, "PAYLOAD_TOO_LARGE", f"body exceeds {limit} bytes")
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise RequestRefused(413, "PAYLOAD_TOO_LARGE", f"body exceeds {limit} bytes")
            return message

        return limited


def _min_position(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == MIN_POSITION_HEADER.encode():
            text = value.decode("latin-1").strip()
            if not text.isdigit() or len(text) > 18:
                raise RequestRefused(
                    400,
                    "BAD_USER_INPUT",
                    "X-Vigil-Min-Position must be a commit position (a whole number >= 0)",
                )
            return int(text)
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``body`` once, then the real channel (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
