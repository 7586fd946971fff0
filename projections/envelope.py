"""From a stream message to what projections apply: envelopes of domain events.

A JetStream message is one commit (``infrastructure.eventstore.jetstream``):
subject ``{prefix}.{tenant}.{type}.{id.hex}``, body msgpack ``[topic, version,
state]`` triples. Each commit is decoded once per batch, whatever number of
projections read it, and each of its events becomes an ``Envelope`` carrying
where it came from (tenant, aggregate, stream position).

A commit that cannot be decoded is not an error for the projector: it becomes
a ``BadCommit`` that every projection interested in the aggregate type parks
as a dead letter, and the projection carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Mapper, StoredEvent

from infrastructure.eventstore.port import StreamRef

# The body format of ``jetstream.encode_events``; a contract test encodes with
# one and decodes with the other so the two cannot drift apart.
_decode_body = msgspec.msgpack.Decoder(list[tuple[str, int, bytes]]).decode


@dataclass(frozen=True, slots=True)
class Envelope:
    """One domain event and where it sits: tenant, aggregate and commit position."""

    ref: StreamRef
    position: int
    event: Any  # a domain event: originator_id/_version, timestamp, actor, fields

    @property
    def version(self) -> int:
        return int(self.event.originator_version)

    @property
    def event_type(self) -> str:
        return type(self.event).__name__


@dataclass(frozen=True, slots=True)
class BadCommit:
    """A commit whose body or events would not decode; parked, never applied."""

    ref: StreamRef
    position: int
    version: int  # the first event's version when known, else 0
    topic: str
    error: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class RawCommit:
    """A message as the feed delivers it: subject, stream position and body."""

    subject: str
    position: int
    data: bytes


class CommitDecoder:
    """Turns ``RawCommit`` messages into envelopes with the store's ``Mapper``.

    The mapper must be built like the writers' (same compression and cipher),
    which is why it is passed in rather than built here.
    """

    def __init__(self, mapper: Mapper[UUID], subject_prefix: str) -> None:
        self._mapper = mapper
        self.prefix = subject_prefix + "."
        self._refs: dict[str, StreamRef] = {}

    def ref_of(self, subject: str) -> StreamRef | None:
        """The aggregate a subject names, None when it is not a Vigil commit subject."""
        ref = self._refs.get(subject)
        if ref is None:
            if not subject.startswith(self.prefix):
                return None
            try:
                tenant, type_, hex_id = subject[len(self.prefix) :].split(".")
                ref = StreamRef(tenant, type_, UUID(hex=hex_id))
            except ValueError:
                return None
            if len(self._refs) > 200_000:  # bounded: a cache, not an index
                self._refs.clear()
            self._refs[subject] = ref
        return ref

    def decode(self, raw: RawCommit) -> list[Envelope] | BadCommit | None:
        """The commit's events; ``BadCommit`` if they do not decode; None if not a commit."""
        ref = self.ref_of(raw.subject)
        if ref is None:
            return None  # the stream may carry other subjects; they are not ours to apply
        position = raw.position
        to_domain_event = self._mapper.to_domain_event
        try:
            triples = _decode_body(raw.data)
        except (msgspec.DecodeError, ValueError) as err:
            return BadCommit(ref, position, 0, "", f"undecodable commit body: {err}", raw.data)
        envelopes = []
        for topic, version, state in triples:
            try:
                event = to_domain_event(StoredEvent(ref.id, version, topic, state))
            except Exception as err:  # unknown topic, bad state, failed upcast...
                text = f"{type(err).__name__}: {err}"
                return BadCommit(ref, position, version, topic, text, raw.data)
            envelopes.append(Envelope(ref, position, event))
        return envelopes


def event_fields(event: Any) -> dict[str, Any]:
    """An event's own fields (no id, version, time or actor), as JSON-safe values."""
    state = {
        key: value
        for key, value in event.__dict__.items()
        if key not in _ENVELOPE_FIELDS and not key.startswith("_")
    }
    result: dict[str, Any] = msgspec.to_builtins(state, str_keys=True)
    return result


_ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "actor", "originator_topic"}
)
