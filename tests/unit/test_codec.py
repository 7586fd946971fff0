"""Event payload codec: msgpack round trips, optional compression and AES-GCM encryption."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent

from domain.device import Device
from infrastructure.eventstore.codec import MsgpackTranscoder, build_mapper, new_cipher_key

AT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def device_events() -> list:
    device = Device.register(
        tenant_id="acme",
        serial_number="SN-SECRET-42",
        hardware_profile="jetson",
        actor="op",
        at=AT,
    )
    device.assign_to_fleet(uuid4(), actor="op", at=AT)
    device.raise_anomaly("thermal", "critical", "fan stopped", actor="dev", at=AT)
    return list(device.collect_events())


def test_the_transcoder_keeps_uuids_datetimes_decimals_tuples_and_bytes():
    value = {
        "id": uuid4(),
        "at": AT,
        "price": Decimal("1.10"),
        "pair": (1, "a"),
        "blob": b"\x00\x01",
        "nested": [{"id": uuid4()}],
        "none": None,
    }
    transcoder = MsgpackTranscoder()
    assert transcoder.decode(transcoder.encode(value)) == value


@pytest.mark.parametrize(
    ("compression", "encrypted"),
    [(None, False), ("zstd", False), ("zlib", False), (None, True), ("zstd", True)],
)
def test_events_round_trip_through_every_codec_setting(compression, encrypted):
    mapper = build_mapper(compression, new_cipher_key() if encrypted else None)
    events = device_events()
    stored = [mapper.to_stored_event(e) for e in events]
    assert [mapper.to_domain_event(s) for s in stored] == events
    if encrypted:
        assert all(b"SN-SECRET-42" not in s.state for s in stored)


def test_compression_shrinks_a_repetitive_payload():
    device = Device.register(
        tenant_id="acme", serial_number="SN-1", hardware_profile="x", actor="op", at=AT
    )
    device.raise_anomaly("thermal", "info", "overheating " * 100, actor="dev", at=AT)
    event = device.collect_events()[-1]
    plain = build_mapper().to_stored_event(event).state
    squeezed = build_mapper("zstd").to_stored_event(event).state
    assert len(squeezed) < len(plain) / 5


def test_a_tampered_ciphertext_is_refused():
    mapper = build_mapper(cipher_key=new_cipher_key())
    stored = mapper.to_stored_event(device_events()[0])
    flipped = bytearray(stored.state)
    flipped[-1] ^= 0xFF
    tampered = StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic, bytes(flipped)
    )
    with pytest.raises(MapperDeserialisationError):
        mapper.to_domain_event(tampered)


def test_another_key_cannot_read_the_events():
    stored = build_mapper(cipher_key=new_cipher_key()).to_stored_event(device_events()[0])
    with pytest.raises(MapperDeserialisationError):
        build_mapper(cipher_key=new_cipher_key()).to_domain_event(stored)


@pytest.mark.parametrize(
    ("compression", "key", "message"),
    [
        ("lz77", None, "unknown compression"),
        (None, "not base64!", "not valid base64"),
        (None, "c2hvcnQ=", "16, 24 or 32 bytes"),
    ],
)
def test_bad_codec_settings_are_named(compression, key, message):
    with pytest.raises(ValueError, match=message):
        build_mapper(compression, key)
