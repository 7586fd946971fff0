"""Snapshots in a JetStream KV bucket: the latest one per aggregate.

Key ``{tenant}.{type}.{id.hex}``; value msgpack of the record's fields. Writes
are compare-and-set on the key's revision, so two writers racing never replace
a newer snapshot with an older one.
"""

from __future__ import annotations

import logging

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


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Wire).decode


def snapshot_key(ref: StreamRef) -> str:
    """The KV key of ``ref``'s snapshot (tenant and type are checked like subject tokens)."""
    return aggregate_subject("", ref)[1:]


class KeyValueSnapshotStore(SnapshotStore):
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

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
        found = await self._get(snapshot_key(ref))
        return None if found is None else _record(ref, found[0])

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
        for _ in range(_MAX_ATTEMPTS):
            found = await self._get(key)
            if found is not None and found[0].version >= record.version:
                return  # an equal or newer snapshot is already there
            try:
                if found is None:
                    await self._kv.create(key, value)
                else:
                    await self._kv.update(key, value, last=found[1])
                return
            except KeyWrongLastSequenceError:
                continue  # another writer got in first: compare again with theirs
            except nats.errors.Error as err:
                raise StoreUnavailable(f"cannot write snapshot of {record.ref}: {err}") from err
        # Only reachable while others keep writing older snapshots; ours is not needed.
        log.warning("gave up writing snapshot of %s at version %d", record.ref, record.version)

    async def _get(self, key: str) -> tuple[_Wire, int] | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        except nats.errors.Error as err:
            raise StoreUnavailable(f"cannot read snapshot {key}: {err}") from err
        if entry.value is None or entry.revision is None:
            return None
        return _decode(entry.value), entry.revision


def _record(ref: StreamRef, wire: _Wire) -> SnapshotRecord:
    return SnapshotRecord(
        ref=ref,
        version=wire.version,
        position=wire.position,
        topic=wire.topic,
        state=wire.state,
        recent_keys={k: KeyedCommit(*v) for k, v in wire.recent_keys.items()},
    )
