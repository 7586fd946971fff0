"""The composition root: every client is built here, opened once and closed once.

Nothing connects at import time. ``open_services`` is called from Starlette's
lifespan (or a CLI command) and hands ready objects to the code that needs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import nats
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.setup import JetStreamConfig, ensure_jetstream
from infrastructure.eventstore.snapshots_kv import KeyValueSnapshotStore
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from commands.auth import Authenticator
from commands.catalog import COMMANDS
from commands.metrics import CommandMetrics
from commands.service import CommandService
from commands.spec import CommandSpec
from infrastructure.eventstore.codec import build_mapper
from infrastructure.repository import Repository
from vigil.config import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    nc: NATS
    js: JetStreamContext
    store: JetStreamEventStore
    repository: Repository
    commands: dict[str, CommandSpec[Any]]
    service: CommandService
    authenticator: Authenticator
    metrics: CommandMetrics = field(default_factory=CommandMetrics)

    async def close(self) -> None:
        await self.repository.drain()
        await self.store.close()
        if not self.nc.is_closed:
            await self.nc.drain()


def jetstream_config(settings: Settings) -> JetStreamConfig:
    return JetStreamConfig(
        stream=settings.stream,
        subject_prefix=settings.subject_prefix,
        duplicate_window=settings.duplicate_window_seconds,
    )


async def connect_nats(url: str, *, name: str) -> NATS:
    async def on_error(err: Exception) -> None:
        log.warning("nats: %s", err)

    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
        pending_size=64 * 1024 * 1024,
    )


async def open_services(settings: Settings, nats_url: str) -> Services:
    nc = await connect_nats(nats_url, name="vigil-api")
    try:
        js = nc.jetstream()
        config = jetstream_config(settings)
        await ensure_jetstream(js, config)
        store = JetStreamEventStore(js, config)
        snapshots = await KeyValueSnapshotStore.open(js, config)
        mapper = build_mapper(settings.compression, settings.cipher_key)
        repository = Repository(
            store,
            mapper,
            snapshots,
            snapshot_every=settings.snapshot_every,
            cache_size=settings.aggregate_cache_size,
        )
        metrics = CommandMetrics()
        return Services(
            settings=settings,
            nc=nc,
            js=js,
            store=store,
            repository=repository,
            commands=COMMANDS,
            service=CommandService(repository, metrics),
            authenticator=Authenticator(settings.resolve_jwt_secret()),
            metrics=metrics,
        )
    except BaseException:
        await nc.close()
        raise
