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
from eventsourcing.utils import resolve_topic

from infrastructure.eventstore.jetstream import decode_events
from infrastructure.eventstore.port import StreamRef

# The body format of ``jetstream.encode_events``; a contract test encodes with
# one and decodes with the other so the two cannot drift apart.


@dataclass(slots=True)
class Envelope:
    """One domain event and where it sits: tenant, aggregate and commit position.

    ``key`` names the aggregate (its subject): a string, whose hash Python
    caches, so grouping and caching by aggregate costs no UUID hashing.
    """

    key: str
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


@dataclass(slots=True)  # not frozen: one is made per message, and frozen doubles that cost
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
        # subject -> (the one string used as its key from then on, its aggregate)
        self._refs: dict[str, tuple[str, StreamRef]] = {}
        plain = mapper.cipher is None and mapper.compressor is None
        self._to_event = _PlainEvents(mapper) if plain else self._via_mapper

    def _via_mapper(self, originator_id: UUID, version: int, topic: str, state: bytes) -> Any:
        return self._mapper.to_domain_event(StoredEvent(originator_id, version, topic, state))

    def ref_of(self, subject: str) -> StreamRef | None:
        """The aggregate a subject names, None when it is not a Vigil commit subject."""
        known = self._known(subject)
        return None if known is None else known[1]

    def _known(self, subject: str) -> tuple[str, StreamRef] | None:
        known = self._refs.get(subject)
        if known is None:
            if not subject.startswith(self.prefix):
                return None
            try:
                tenant, type_, hex_id = subject[len(self.prefix) :].split(".")
                ref = StreamRef(tenant, type_, UUID(hex=hex_id))
            except ValueError:
                return None
            if len(self._refs) > 200_000:  # bounded: a cache, not an index
                self._refs.clear()
            known = self._refs[subject] = (subject, ref)
        return known

    def decode(self, raw: RawCommit) -> list[Envelope] | BadCommit | None:
        """The commit's events; ``BadCommit`` if they do not decode; None if not a commit."""
        known = self._known(raw.subject)
        if known is None:
            return None  # the stream may carry other subjects; they are not ours to apply
        # Every envelope of an aggregate carries the same key object: the many dict
        # operations keyed by it then match by identity, without comparing text.
        subject, ref = known
        position = raw.position
        try:
            triples = decode_events(raw.data)
        except (msgspec.DecodeError, ValueError) as err:
            return BadCommit(ref, position, 0, "", f"undecodable commit body: {err}", raw.data)
        to_event = self._to_event
        originator_id = ref.id
        envelopes = []
        for topic, version, state in triples:
            try:
                event = to_event(originator_id, version, topic, state)
            except Exception as err:  # unknown topic, bad state, failed upcast...
                text = f"{type(err).__name__}: {err}"
                return BadCommit(ref, position, version, topic, text, raw.data)
            envelopes.append(Envelope(subject, ref, position, event))
        return envelopes


class _PlainEvents:
    """``Mapper.to_domain_event`` for a mapper with neither cipher nor compressor.

    The same steps (decode the state, add id and version, upcast from the
    stored class version, make the object without calling ``__init__``) minus
    the per-event lookups and the ``StoredEvent`` it takes. This runs for
    every event the projector reads; a test holds it equal to the mapper's.
    """

    def __init__(self, mapper: Mapper[UUID]) -> None:
        self._decode_state = mapper.transcoder.decode
        self._classes: dict[str, tuple[type, int]] = {}

    def __call__(self, originator_id: UUID, version: int, topic: str, state: bytes) -> Any:
        known = self._classes.get(topic)
        if known is None:
            cls = resolve_topic(topic)
            known = self._classes[topic] = (cls, getattr(cls, "class_version", 1))
        cls, class_version = known
        fields = self._decode_state(state)
        fields["originator_id"] = originator_id
        fields["originator_version"] = version
        if "class_version" in fields or class_version > 1:
            stored_version = fields.pop("class_version", 1)
            while stored_version < class_version:
                getattr(cls, f"upcast_v{stored_version}_v{stored_version + 1}")(fields)
                stored_version += 1
        event: Any = _new(cls)
        _set(event, "__dict__", fields)
        return event


_new = object.__new__
_set = object.__setattr__


def event_fields(event: Any) -> dict[str, Any]:
    """An event's own fields: no id, version, time or actor (the envelope has those).

    Values stay as the event holds them (UUIDs, datetimes...); JSON columns
    write them with ``infrastructure.database.json_dumps``.
    """
    fields = event.__dict__.copy()
    pop = fields.pop  # a copy and five pops: half the time of filtering a comprehension
    pop("originator_id", None)
    pop("originator_version", None)
    pop("timestamp", None)
    pop("actor", None)
    pop("originator_topic", None)
    return fields
