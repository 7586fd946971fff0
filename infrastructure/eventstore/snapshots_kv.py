"""Snapshots in a JetStream KV bucket: the latest one per aggregate.

Key ``{tenant}.{type}.{id.hex}``; value msgpack of the record's fields. Writes
are compare-and-set on the key's revision, so two writers racing never replace
a newer snapshot with an older one.

Each process remembers the revision and version it last wrote or read per
key, so a snapshot usually costs one conditional write: the previous one is
read (its version only) when that write finds another writer got in first,
or on an aggregate's first snapshot here that is not its first anywhere.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from infrastructure.eventstore.jetstream import aggregate_subject
from infrastructure.eventstore.port import StoreUnavailable, StreamRef
from infrastructure.eventstore.setup import JetStreamConfig
from infrastructure.eventstore.snapshots import KeyedCommit, SnapshotRecord, SnapshotStore

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 16


class _Wire(msgspec.Struct, omit_defaults=True):
    version: int
    position: int
    topic: str
    state: bytes
    recent_keys: dict[str, tuple[int, int, int]] = {}  # key -> (position, version, count)


class _Head(msgspec.Struct):
    version: int  # all a write needs of the snapshot it would replace


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Wire).decode
_decode_head = msgspec.msgpack.Decoder(_Head).decode


def snapshot_key(ref: StreamRef) -> str:
    """The KV key of ``ref``'s snapshot (tenant and type are checked like subject tokens)."""
    return aggregate_subject("", ref)[1:]


class KeyValueSnapshotStore(SnapshotStore):
    def __init__(self, kv: KeyValue, *, remembered: int = 10_000) -> None:
        self._kv = kv
        self._remembered = remembered
        self._heads: OrderedDict[str, tuple[int, int]] = OrderedDict()  # key -> revision, version

    @classmethod
    async def open(
        cls, js: JetStreamContext, config: JetStreamConfig | None = None
    ) -> KeyValueSnapshotStore:
        """Bind to the bucket ``ensure_jetstream`` created."""
        bucket = (config or JetStreamConfig()).snapshot_bucket
        try:
            return cls(await js.key_value(bucket))
        except nats.errors.Error as err:
            raise StoreUnavailable(f"cannot open snapshot bucket {bucket}: {err}") from err

    async def get(self, ref: StreamRef) -> SnapshotRecord | None:
        key = snapshot_key(ref)
        found = await self._get(key)
        if found is None:
            return None
        wire, revision = found
        self._remember(key, revision, wire.version)
        return _record(ref, wire)

    async def put(self, record: SnapshotRecord) -> None:
        key = snapshot_key(record.ref)
        value = _encode(
            _Wire(
                version=record.version,
                position=record.position,
                topic=record.topic,
                state=record.state,
                recent_keys={
                    k: (c.position, c.version, c.event_count) for k, c in record.recent_keys.items()
                },
            )
        )
        head = self._heads.get(key)  # (revision, version), as this process last saw it
        for _ in range(_MAX_ATTEMPTS):
            if head is not None and head[1] >= record.version:
                return  # an equal or newer snapshot is already there
            try:
                if head is None:
                    revision = await self._kv.create(key, value)
                else:
                    revision = await self._kv.update(key, value, last=head[0])
                self._remember(key, revision, record.version)
                return
            except KeyWrongLastSequenceError:
                head = await self._head(key)  # another writer got in first: compare with theirs
            except nats.errors.Error as err:
                raise StoreUnavailable(f"cannot write snapshot of {record.ref}: {err}") from err
        # Only reachable while others keep writing older snapshots; ours is not needed.
        log.warning("gave up writing snapshot of %s at version %d", record.ref, record.version)

    def _remember(self, key: str, revision: int, version: int) -> None:
        self._heads[key] = (revision, version)
        self._heads.move_to_end(key)
        if len(self._heads) > self._remembered:
            self._heads.popitem(last=False)

    async def _head(self, key: str) -> tuple[int, int] | None:
        entry = await self._entry(key)
        if entry is None:
            self._heads.pop(key, None)
            return None
        value, revision = entry
        head = (revision, _decode_head(value).version)
        self._remember(key, *head)
        return head

    async def _get(self, key: str) -> tuple[_Wire, int] | None:
        entry = await self._entry(key)
        return None if entry is None else (_decode(entry[0]), entry[1])

    async def _entry(self, key: str) -> tuple[bytes, int] | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        except nats.errors.Error as err:
            raise StoreUnavailable(f"cannot read snapshot {key}: {err}") from err
        if entry.value is None or entry.revision is None:
            return None
        return entry.value, entry.revision


def _record(ref: StreamRef, wire: _Wire) -> SnapshotRecord:
    return SnapshotRecord(
        ref=ref,
        version=wire.version,
        position=wire.position,
        topic=wire.topic,
        state=wire.state,
        recent_keys={k: KeyedCommit(*v) for k, v in wire.recent_keys.items()},
    )
