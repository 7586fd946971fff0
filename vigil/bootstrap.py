"""The composition root: every client is built here, opened once and closed once.

Nothing connects at import time. ``open_services`` is called from Starlette's
lifespan (or a CLI command) and hands ready objects to the code that needs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

import nats
import nats.errors
from eventsourcing.persistence import Mapper
from nats.aio.client import Client as NATS

from commands.auth import Authenticator
from commands.catalog import COMMANDS
from commands.metrics import CommandMetrics
from commands.service import CommandService
from commands.spec import CommandSpec
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.port import EventStore
from infrastructure.eventstore.setup import JetStreamConfig, ensure_jetstream
from infrastructure.eventstore.snapshots import SnapshotStore
from infrastructure.eventstore.snapshots_kv import KeyValueSnapshotStore
from infrastructure.repository import Repository
from vigil.config import Settings

if TYPE_CHECKING:  # the read side pulls in SQLAlchemy, strawberry and the projector
    from vigil.readside import ReadSide

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the HTTP layer needs, opened and ready."""

    store: EventStore
    repository: Repository
    service: CommandService
    authenticator: Authenticator
    metrics: CommandMetrics
    commands: dict[str, CommandSpec[Any]] = field(default_factory=lambda: dict(COMMANDS))
    nc: NATS | None = None
    max_body_bytes: int = 64 * 1024
    read: ReadSide | None = None

    async def close(self) -> None:
        if self.read is not None:
            await self.read.close()
        await self.repository.drain()
        await self.store.close()
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.drain()


def build_services(
    store: EventStore,
    *,
    jwt_secret: str,
    mapper: Mapper[UUID] | None = None,
    snapshots: SnapshotStore | None = None,
    snapshot_every: int = 50,
    cache_size: int = 10_000,
    max_body_bytes: int = 64 * 1024,
    nc: NATS | None = None,
) -> Services:
    """Wire the write side around an event store (JetStream in production, memory in tests)."""
    repository = Repository(
        store,
        mapper or build_mapper(),
        snapshots,
        snapshot_every=snapshot_every,
        cache_size=cache_size,
    )
    metrics = CommandMetrics()
    return Services(
        store=store,
        repository=repository,
        service=CommandService(repository, metrics),
        authenticator=Authenticator(jwt_secret),
        metrics=metrics,
        nc=nc,
        max_body_bytes=max_body_bytes,
    )


def jetstream_config(settings: Settings) -> JetStreamConfig:
    return JetStreamConfig(
        stream=settings.stream,
        subject_prefix=settings.subject_prefix,
        duplicate_window=settings.duplicate_window_seconds,
        snapshot_bucket=settings.snapshot_bucket,
    )


class NatsUnreachable(ConnectionError):
    """The first connection to NATS failed; later drops are retried forever."""


async def connect_nats(url: str, *, name: str, first_connect_timeout: float = 10.0) -> NATS:
    """Connect once with a deadline, then reconnect forever after any later drop.

    nats-py applies ``max_reconnect_attempts=-1`` to the first connection too,
    which would make a wrong URL hang start-up silently.
    """

    async def on_error(err: Exception) -> None:
        log.warning("nats: %s", err)

    nc = NATS()
    try:
        await asyncio.wait_for(
            nc.connect(
                url,
                name=name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                error_cb=on_error,
                pending_size=64 * 1024 * 1024,
            ),
            first_connect_timeout,
        )
    except (TimeoutError, OSError, nats.errors.Error) as err:
        with contextlib.suppress(Exception):
            await nc.close()
        raise NatsUnreachable(
            f"cannot reach NATS at {url} within {first_connect_timeout:.0f}s ({err!r}); "
            "check VIGIL_NATS_URL, or unset it to run the embedded server"
        ) from err
    return nc


async def open_services(
    settings: Settings, nats_url: str, *, run_projector: bool = False, migrate: bool = False
) -> Services:
    """Connect to NATS, make sure the stream and buckets exist, wire both sides.

    ``vigil up`` passes ``run_projector`` and ``migrate``; ``vigil api`` leaves
    both to ``vigil migrate`` and separate ``vigil projector`` processes.
    """
    nc = await connect_nats(nats_url, name="vigil-api")
    try:
        js = nc.jetstream()
        config = jetstream_config(settings)
        await ensure_jetstream(js, config)
        services = build_services(
            JetStreamEventStore(nc, config),
            jwt_secret=settings.resolve_jwt_secret(),
            mapper=build_mapper(settings.compression, settings.cipher_key),
            snapshots=await KeyValueSnapshotStore.open(js, config),
            snapshot_every=settings.snapshot_every,
            cache_size=settings.aggregate_cache_size,
            max_body_bytes=settings.max_body_bytes,
            nc=nc,
        )
        from vigil.readside import open_read_side  # only processes that serve need it

        services.read = await open_read_side(
            settings,
            repository=services.repository,
            authenticator=services.authenticator,
            nats_url=nats_url,
            nc=nc,
            config=config,
            registry=services.metrics.registry,
            run_projector=run_projector,
            migrate=migrate,
        )
        return services
    except BaseException:
        await nc.close()
        raise
