"""``create_graphql_app``: the GraphQL endpoint as one ASGI app, ready to mount at /graphql.

Mount it for both HTTP and WebSocket::

    graphql = create_graphql_app(engine=..., repository=..., authenticator=..., bus=...)
    routes = [Route("/graphql", graphql, methods=["GET", "POST"]),
              WebSocketRoute("/graphql", graphql)]

and ``await graphql.start()`` / ``await graphql.close()`` in the lifespan
(``start`` is optional: the first request starts the change feed too).
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from commands.auth import Authenticator
from infrastructure.changes import ChangeBus
from infrastructure.repository import Repository
from read_api.cache import RowCache
from read_api.consistency import CheckpointWatcher
from read_api.context import ReadServices
from read_api.documents import DocumentCache
from read_api.feed import NoticeFeed
from read_api.limits import QueryLimits
from read_api.loaders import make_loaders
from read_api.schema import build_schema
from read_api.view import VigilGraphQL


class GraphQLApp:
    """The endpoint plus what outlives requests: caches, the watcher, the notice feed."""

    def __init__(self, view: VigilGraphQL, services: ReadServices, feed: NoticeFeed | None) -> None:
        self.view = view
        self.services = services
        self.schema = view.schema
        self.feed = feed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.feed is not None:
            self.feed.start()
        await self.view(scope, receive, send)

    async def start(self, within: float = 5.0) -> None:
        """Start listening for change notices; returns once listening."""
        if self.feed is not None:
            self.feed.start()
            await asyncio.wait_for(self.feed.listening.wait(), within)

    async def close(self) -> None:
        if self.feed is not None:
            await self.feed.close()
        await self.services.watcher.close()


def create_graphql_app(
    *,
    engine: AsyncEngine,
    repository: Repository | None,
    authenticator: Authenticator,
    bus: ChangeBus | None = None,
    debug: bool = False,
    introspection: bool = True,
    graphiql: bool | None = None,
    limits: QueryLimits | None = None,
    consistency_timeout: float = 5.0,
    row_cache: bool = True,
    row_cache_ttl: float = 30.0,
) -> GraphQLApp:
    """Build the GraphQL endpoint over the read models in ``engine``.

    ``repository`` serves time travel (``None`` refuses it); ``bus`` feeds the
    row cache and wakes read-your-writes waits (without it the cache is off
    and waits poll). ``debug`` shows bugs' messages; ``introspection`` and
    ``graphiql`` (defaults to ``introspection``) can be switched off.
    """
    limits = limits or QueryLimits()
    watcher = CheckpointWatcher(engine)
    cache = RowCache(ttl=row_cache_ttl) if bus is not None and row_cache else None
    services = ReadServices(
        engine=engine,
        repository=repository,
        watcher=watcher,
        cache=cache,
        limits=limits,
        consistency_timeout=consistency_timeout,
        debug=debug,
        make_loaders=make_loaders,
    )
    documents = DocumentCache(limits, introspection=introspection)
    schema = build_schema(documents, introspection=introspection)
    view = VigilGraphQL(
        schema,
        services,
        authenticator,
        documents,
        graphiql=introspection if graphiql is None else graphiql,
        max_body_bytes=limits.max_length * 2 + 16 * 1024,
    )
    feed = None
    if bus is not None:
        sinks = [watcher.notice] + ([cache.notice] if cache is not None else [])
        feed = NoticeFeed(bus, sinks, on_start=cache.clear if cache is not None else _nothing)
    return GraphQLApp(view, services, feed)


def _nothing() -> None:
    return None
