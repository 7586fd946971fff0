"""The HTTP application: command API, OpenAPI document and operational endpoints."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import version

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from commands.errors import JSONResponse, error_response
from commands.http import CommandEndpoint
from commands.openapi import openapi_document
from vigil.bootstrap import Services


class VigilApp(Starlette):
    """Starlette, with ``POST /commands/{name}`` answered ahead of its middleware and router.

    Commands are the hot path: the endpoint handles its own errors, so the
    framework's layers in front of it would only add CPU to every command. Any
    other request, and a command under a ``root_path``, takes the usual way
    (where the same endpoint serves it), so 404s and 405s are Starlette's.
    """

    commands: CommandEndpoint | None = None  # set by the lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.commands
        if endpoint is not None and scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith("/commands/") and not scope.get("root_path"):
                name = path[10:]
                if name and "/" not in name:
                    scope["app"] = self
                    await endpoint(scope, receive, send, name)
                    return
        await super().__call__(scope, receive, send)


class _CommandRoute:
    """The router's way to the command endpoint (e.g. under a ``root_path``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: VigilApp = scope["app"]
        assert app.commands is not None  # the lifespan ran before any request
        await app.commands(scope, receive, send, scope["path_params"]["name"])


class _GraphQLProxy:
    """Forwards /graphql to the read side's app, which exists once the lifespan ran."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = scope["app"].state.services
        if services.read is None:
            response = error_response(404, "not_found", "this process serves no read side")
            if scope["type"] == "http":
                await response(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 4404})
            return
        await services.read.graphql(scope, receive, send)


def create_app(open_services: Callable[[], Awaitable[Services]]) -> VigilApp:
    """Build the app; ``open_services`` runs in the lifespan, so nothing connects at import."""

    @contextlib.asynccontextmanager
    async def lifespan(app: VigilApp) -> AsyncIterator[None]:
        services = await open_services()
        app.state.services = services
        app.commands = CommandEndpoint(
            services.commands,
            services.service,
            services.authenticator,
            max_body_bytes=services.max_body_bytes,
        )
        app.state.openapi = openapi_document(services.commands, version("vigil"))
        if services.read is not None:
            app.state.subscriptions = services.read.hub
        try:
            yield
        finally:
            await services.close()

    async def openapi(request: Request) -> Response:
        return JSONResponse(request.app.state.openapi)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        services: Services = request.app.state.services
        if services.nc is not None and not services.nc.is_connected:
            return error_response(503, "not_ready", "not connected to NATS")
        try:
            head = await services.store.head_position()
        except Exception as err:
            return error_response(503, "not_ready", f"event store unreachable: {err}")
        if services.read is not None:
            try:
                await services.read.ping()
            except Exception as err:
                return error_response(503, "not_ready", f"read-model database unreachable: {err}")
        return JSONResponse({"status": "ready", "head_position": head})

    async def metrics(request: Request) -> Response:
        services: Services = request.app.state.services
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(404, "not_found", f"no route for {request.url.path}")

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return error_response(405, "method_not_allowed", f"{request.method} not allowed here")

    graphql = _GraphQLProxy()
    routes = [
        Route("/commands/{name}", _CommandRoute(), methods=["POST"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return VigilApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: method_not_allowed},
    )
