"""``verify_log`` on real JetStream: it reports what is broken and reads on past it."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from nats.aio.client import Client

from domain.device import Device
from infrastructure.eventstore.codec import build_mapper, new_cipher_key
from infrastructure.eventstore.jetstream import (
    H_COUNT,
    H_VERSION,
    JetStreamEventStore,
    encode_events,
)
from infrastructure.eventstore.port import EventStore, NewCommit, StreamRef
from infrastructure.eventstore.setup import JetStreamConfig
from infrastructure.replay.stream import StreamReader
from infrastructure.replay.verify import (
    CORRUPT_COMMIT,
    UNDECODABLE_EVENT,
    VERSION_GAP,
    Report,
    verify_log,
)
from infrastructure.repository import Repository

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAPPER = build_mapper()


async def register(store: EventStore, mapper=MAPPER, tenant: str = "acme") -> StreamRef:
    """A device with two commits: registered, then online and an anomaly."""
    repo = Repository(store, mapper)
    registered = Device.register(
        tenant_id=tenant,
        serial_number=f"SN-{uuid4().hex[:8]}",
        hardware_profile="j",
        actor="op",
        at=AT,
    )
    ref = StreamRef(tenant, "device", registered.id)
    loaded = await repo.load(ref)
    loaded.aggregate = registered
    await repo.save(loaded, registered.collect_events())
    loaded = await repo.load(ref)
    assert isinstance(loaded.aggregate, Device)
    loaded.aggregate.come_online(actor="dev", at=AT)
    loaded.aggregate.raise_anomaly("thermal", "info", "warm", actor="dev", at=AT)
    await repo.save(loaded, loaded.aggregate.collect_events())
    return ref


def subject(config: JetStreamConfig, ref: StreamRef) -> str:
    return f"{config.subject_prefix}.{ref.tenant}.{ref.type}.{ref.id.hex}"


async def verify(nc: Client, config: JetStreamConfig, mapper=MAPPER) -> Report:
    reader = StreamReader(nc, config)
    head = await reader.head()
    return await verify_log(reader.read(until=head), config.subject_prefix, mapper)


def online_event(id: UUID, version: int) -> StoredEvent:
    device = Device.register(
        tenant_id="acme", serial_number="SN-X", hardware_profile="j", actor="op", at=AT
    )
    device.come_online(actor="dev", at=AT)
    stored = MAPPER.to_stored_event(device.collect_events()[-1])
    return StoredEvent(id, version, stored.topic, stored.state)


async def test_a_sound_log_has_no_problems(
    nats_client: Client, jetstream_config: JetStreamConfig, jetstream_store: JetStreamEventStore
):
    refs = [await register(jetstream_store, tenant=t) for t in ("acme", "acme", "globex")]

    report = await verify(nats_client, jetstream_config)

    assert report.ok, report.problems
    assert (report.commits, report.events, report.head) == (6, 9, 6)
    assert {ref: log.version for ref, log in report.aggregates.items()} == dict.fromkeys(refs, 3)


async def test_a_garbage_message_is_reported_and_the_scan_goes_on(
    nats_client: Client, jetstream_config: JetStreamConfig, jetstream_store: JetStreamEventStore
):
    await register(jetstream_store)
    victim = StreamRef("acme", "device", uuid4())
    ack = await nats_client.jetstream().publish(subject(jetstream_config, victim), b"\x00garbage")
    after = await register(jetstream_store)

    report = await verify(nats_client, jetstream_config)

    [problem] = report.problems
    assert (problem.kind, problem.position, problem.ref) == (CORRUPT_COMMIT, ack.seq, victim)
    assert "body is not a commit" in problem.detail
    assert report.commits == 5 and report.aggregates[after].version == 3


async def test_a_version_gap_is_reported_where_it_happens(
    nats_client: Client, jetstream_config: JetStreamConfig, jetstream_store: JetStreamEventStore
):
    ref = await register(jetstream_store)
    # A well-formed commit that skips version 4, published behind the store's back.
    body = encode_events([online_event(ref.id, 5)])
    headers = {H_VERSION: "5", H_COUNT: "1"}
    ack = await nats_client.jetstream().publish(
        subject(jetstream_config, ref), body, headers=headers
    )

    report = await verify(nats_client, jetstream_config)

    [problem] = report.problems
    assert (problem.kind, problem.position, problem.ref) == (VERSION_GAP, ack.seq, ref)
    assert problem.detail.startswith("version 4 missing")


async def test_an_event_that_does_not_decode_is_reported_with_a_hint(
    nats_client: Client, jetstream_config: JetStreamConfig, jetstream_store: JetStreamEventStore
):
    ref = StreamRef("acme", "device", uuid4())
    junk = StoredEvent(ref.id, 1, get_topic(Device.CameOnline), b"\xc1 not msgpack")
    result = await jetstream_store.append(NewCommit(ref, 0, [junk]))

    report = await verify(nats_client, jetstream_config)

    [problem] = report.problems
    assert (problem.kind, problem.position, problem.ref) == (
        UNDECODABLE_EVENT,
        result.position,
        ref,
    )
    assert "VIGIL_CIPHER_KEY" in problem.detail


async def test_events_encrypted_with_another_key_do_not_verify(
    nats_client: Client, jetstream_config: JetStreamConfig, jetstream_store: JetStreamEventStore
):
    await register(jetstream_store, mapper=build_mapper(cipher_key=new_cipher_key()))

    wrong_key = await verify(
        nats_client, jetstream_config, build_mapper(cipher_key=new_cipher_key())
    )

    assert [p.kind for p in wrong_key.problems] == [UNDECODABLE_EVENT] * 3
