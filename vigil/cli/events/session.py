"""What every replay command shares: the connection, the mapper, argument checks, exits."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import typer
import uvloop
from eventsourcing.persistence import Mapper
from nats.aio.client import Client

from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.port import EventStoreError
from infrastructure.eventstore.setup import JetStreamConfig
from infrastructure.replay.connect import NatsNotFound, NatsUnreachable, connect, resolve_nats_url
from infrastructure.replay.export import ExportFailed
from infrastructure.replay.history import AGGREGATE_TYPES, ReplayFailed
from infrastructure.replay.importing import ImportFailed, ImportRefused
from infrastructure.replay.stream import StreamReader
from vigil.bootstrap import jetstream_config
from vigil.cli.events import output
from vigil.config import Settings


class UsageError(Exception):
    """Bad arguments or settings: exit code 2."""


@dataclass
class Session:
    nc: Client
    config: JetStreamConfig
    store: JetStreamEventStore
    reader: StreamReader
    mapper: Mapper[UUID]


@contextlib.asynccontextmanager
async def session(settings: Settings, *, need_stream: bool = True) -> AsyncIterator[Session]:
    """Connected to NATS; with ``need_stream``, the event stream is known to exist."""
    try:
        mapper = build_mapper(settings.compression, settings.cipher_key)
    except ValueError as err:
        raise UsageError(f"VIGIL_CIPHER_KEY: {err}") from err
    url, source = resolve_nats_url(settings.nats_url, settings.data_dir)
    nc = await connect(url, source)
    config = jetstream_config(settings)
    store = JetStreamEventStore(nc, config)
    try:
        reader = StreamReader(nc, config)
        if need_stream:
            await reader.head()  # a missing stream fails here, with its own message
        yield Session(nc, config, store, reader, mapper)
    finally:
        await store.close()
        await nc.close()


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main``; every expected failure becomes a message on stderr and an exit code."""
    try:
        uvloop.run(main())
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except UsageError as err:
        output.fail(str(err), 2)
    except ImportRefused as err:
        output.fail("import refused, nothing was written:\n  " + "\n  ".join(err.problems), 1)
    except (
        NatsNotFound,
        NatsUnreachable,
        EventStoreError,
        ImportFailed,
        ExportFailed,
        ReplayFailed,
    ) as err:
        output.fail(str(err), 1)


def aggregate_type(value: str) -> str:
    kind = value.lower()
    if kind not in AGGREGATE_TYPES:
        raise UsageError(f"unknown aggregate type {value!r}; choose {', '.join(AGGREGATE_TYPES)}")
    return kind


def aggregate_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise UsageError(f"bad aggregate id {value!r}: not a UUID") from None


def tenant(value: str) -> str:
    if not value or not value.isascii() or not all(c.isalnum() or c in "_-" for c in value):
        raise UsageError(f"bad tenant {value!r}: use letters, digits, '_' and '-'")
    return value


def moment(value: str) -> datetime:
    """An ISO 8601 time; one without an offset is taken as UTC."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"bad time {value!r}: use ISO 8601, e.g. 2026-03-01T12:30:00Z") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
