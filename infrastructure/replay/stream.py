"""Reading the event stream message by message, below the event store port.

The port hands out decoded commits and stops at the head; replay tools need
more: to follow new commits live, to filter by subject on the server, and to
keep going past a message that is not a valid commit so ``verify`` can report
it. ``StreamReader`` reads raw messages; ``decode_commit`` turns one into a
``RecordedCommit`` exactly as ``JetStreamEventStore`` lays them out (subject
``{prefix}.{tenant}.{type}.{id.hex}``, msgpack ``[topic, version, state]``
triples, version and key in headers), or raises ``CorruptCommit`` naming why.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamInfo
from nats.js.errors import NotFoundError

from infrastructure.eventstore.jetstream import (
    H_COUNT,
    H_VERSION,
    decode_events,
    recorded_commit,
)
from infrastructure.eventstore.port import RecordedCommit, StoreUnavailable, StreamRef
from infrastructure.eventstore.setup import JetStreamConfig


class StreamMissing(StoreUnavailable):
    """The event stream does not exist on this server (nothing was ever written)."""


class CorruptCommit(Exception):
    """A message in the event stream that is not a readable Vigil commit."""

    def __init__(self, position: int, subject: str, reason: str) -> None:
        super().__init__(f"position {position} ({subject}): {reason}")
        self.position = position
        self.subject = subject
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RawCommit:
    """One message of the event stream, undecoded."""

    position: int
    subject: str
    headers: Mapping[str, str]
    body: bytes
    recorded_at: datetime | None = None  # when JetStream stored it


def subject_filter(
    prefix: str, tenant: str | None = None, type: str | None = None, id: UUID | None = None
) -> str:
    """The subject matching every aggregate that fits the given parts (None: any)."""
    return ".".join([prefix, tenant or "*", type or "*", id.hex if id is not None else "*"])


def ref_of(prefix: str, subject: str) -> StreamRef | None:
    """The aggregate a subject belongs to, or None if it is not an aggregate subject."""
    if not subject.startswith(prefix + "."):
        return None
    parts = subject[len(prefix) + 1 :].split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return None
    try:
        return StreamRef(parts[0], parts[1], UUID(hex=parts[2]))
    except ValueError:
        return None


def decode_commit(prefix: str, raw: RawCommit) -> RecordedCommit:
    """The commit in ``raw``; raises ``CorruptCommit`` if it is not one."""
    ref = ref_of(prefix, raw.subject)
    if ref is None:
        raise CorruptCommit(raw.position, raw.subject, "not an aggregate subject")
    try:
        triples = decode_events(raw.body)
    except msgspec.DecodeError as err:
        raise CorruptCommit(raw.position, raw.subject, f"body is not a commit: {err}") from None
    if not triples:
        raise CorruptCommit(raw.position, raw.subject, "commit holds no events")
    headers = raw.headers
    try:
        version, count = int(headers[H_VERSION]), int(headers[H_COUNT])
    except (KeyError, ValueError):
        raise CorruptCommit(
            raw.position, raw.subject, f"missing or bad {H_VERSION}/{H_COUNT} headers"
        ) from None
    first = triples[0][1]
    if [v for _, v, _ in triples] != list(range(first, first + len(triples))):
        raise CorruptCommit(raw.position, raw.subject, "event versions are not contiguous")
    if (version, count) != (triples[-1][1], len(triples)):
        raise CorruptCommit(
            raw.position,
            raw.subject,
            f"headers say {count} events up to version {version}, the body holds "
            f"{len(triples)} up to version {triples[-1][1]}",
        )
    return recorded_commit(ref, raw.position, headers, triples)


class StreamReader:
    """Raw reads of the event stream: bounded scans, live follows, subject counts."""

    def __init__(self, nc: Client, config: JetStreamConfig, *, timeout: float = 5.0) -> None:
        self._js = nc.jetstream(timeout=timeout)
        self.config = config
        self._timeout = timeout

    @property
    def prefix(self) -> str:
        return self.config.subject_prefix

    async def head(self) -> int:
        """Position of the last commit, 0 when the stream is empty."""
        return (await self._info()).state.last_seq

    async def subjects(self, subject: str) -> dict[str, int]:
        """Messages per subject for every subject matching ``subject``."""
        info = await self._info(subjects_filter=subject)
        return dict(info.state.subjects or {})

    async def read(
        self, subject: str | None = None, start: int = 1, until: int | None = None
    ) -> AsyncGenerator[RawCommit, None]:
        """Messages on ``subject`` from position ``start`` in order.

        With ``until`` the read ends after that position (use the head for
        "everything so far"); without it, it follows new messages until the
        caller stops iterating.
        """
        start = max(start, 1)
        if until is not None and start > until:
            return
        try:
            sub = await self._js.subscribe(
                subject or self.config.subjects,
                stream=self.config.stream,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                config=ConsumerConfig(opt_start_seq=start),
            )
        except NotFoundError as err:
            raise self._missing() from err
        except nats.errors.Error as err:
            raise StoreUnavailable(f"cannot read stream {self.config.stream}: {err}") from err
        try:
            if until is not None:
                # A filter may match nothing at all; ask rather than wait for a timeout.
                info = await sub.consumer_info()
                delivered = info.delivered.stream_seq if info.delivered else 0
                if info.num_pending == 0 and not delivered:
                    return
            timeout = None if until is None else self._timeout
            while True:
                try:
                    msg = await sub.next_msg(timeout=timeout)
                except nats.errors.Error as err:
                    raise StoreUnavailable(f"reading {self.config.stream}: {err}") from err
                meta = msg.metadata
                position = meta.sequence.stream
                if until is not None and position > until:
                    return
                yield RawCommit(position, msg.subject, msg.headers or {}, msg.data, meta.timestamp)
                if until is not None and (position >= until or meta.num_pending == 0):
                    return
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _info(self, subjects_filter: str | None = None) -> StreamInfo:
        try:
            return await self._js.stream_info(self.config.stream, subjects_filter=subjects_filter)
        except NotFoundError as err:
            raise self._missing() from err
        except nats.errors.Error as err:
            raise StoreUnavailable(f"cannot read stream {self.config.stream}: {err}") from err

    def _missing(self) -> StreamMissing:
        return StreamMissing(
            f"stream {self.config.stream} does not exist on this NATS server: nothing has "
            "been written yet, or VIGIL_STREAM names another stream"
        )
