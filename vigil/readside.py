"""Composition of the read side: database, change bus, GraphQL, subscriptions, projector.

Built after the write side (it reuses its mapper, repository and authenticator)
and closed before it. ``vigil up`` runs everything in one process, projector
included; ``vigil api`` serves queries and subscriptions while separate
``vigil projector`` processes keep the read models up to date.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from nats.aio.client import Client
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from commands.auth import Authenticator
from infrastructure.changes import ChangeBus, LocalChangeBus
from infrastructure.database import create_engine, database_url
from infrastructure.eventstore.setup import JetStreamConfig
from infrastructure.repository import Repository
from projections.service import Projector
from read_api.app import GraphQLApp, create_graphql_app
from read_api.subscriptions import SubscriptionHub, build_hub
from read_api.subscriptions.redis_bus import RedisChangeBus
from vigil.config import Settings

log = logging.getLogger(__name__)


@dataclass
class ReadSide:
    engine: AsyncEngine
    bus: ChangeBus
    graphql: GraphQLApp
    hub: SubscriptionHub
    projector: Projector | None = None
    _stop: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None

    def start_projector(self) -> None:
        if self.projector is None:
            return
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self.projector.run(self._stop), name="vigil-projector"
        )

    async def ping(self) -> None:
        """Raise unless the read-model database answers."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._stop is not None and self._task is not None:
            self._stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.hub.stop()
        await self.graphql.close()
        await self.bus.close()
        await self.engine.dispose()


async def open_read_side(
    settings: Settings,
    *,
    repository: Repository,
    authenticator: Authenticator,
    nats_url: str,
    nc: Client,
    config: JetStreamConfig,
    registry: CollectorRegistry,
    run_projector: bool,
    migrate: bool,
) -> ReadSide:
    """Open the read side; ``migrate`` applies alembic migrations first (``vigil up``)."""
    engine = create_engine(database_url(settings), pool_size=settings.database_pool_size)
    try:
        if migrate:
            await migrations.upgrade_async(engine)
        bus: ChangeBus = (
            RedisChangeBus.from_url(settings.redis_url) if settings.redis_url else LocalChangeBus()
        )
        graphql = create_graphql_app(
            engine=engine,
            repository=repository,
            authenticator=authenticator,
            bus=bus,
            debug=settings.debug,
            introspection=settings.graphql_introspection,
            consistency_timeout=settings.consistency_timeout,
        )
        hub = build_hub(repository.store, repository.mapper, bus, nc=nc, engine=engine)
        projector = None
        if run_projector:
            projector = Projector(
                engine, nats_url, config, repository.mapper, bus=bus, registry=registry
            )
        read = ReadSide(engine=engine, bus=bus, graphql=graphql, hub=hub, projector=projector)
        await hub.start()
        await graphql.start()
        read.start_projector()
        return read
    except BaseException:
        await engine.dispose()
        raise
