"""Given an aggregate's events, then its read-model row: the pure half of projections.

No database and no NATS: apply functions and folds are plain computation,
which is what makes them deterministic (invariant 5) and cheap to test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from domain import Device, Fleet, Model
from domain.base import VigilAggregate
from infrastructure.eventstore.codec import build_mapper, new_cipher_key
from infrastructure.eventstore.jetstream import aggregate_subject, encode_events
from infrastructure.eventstore.port import StreamRef
from projections import catalog, shadow
from projections.devices import count_deltas
from projections.envelope import BadCommit, CommitDecoder, Envelope, RawCommit
from projections.feed import _sequence_and_pending
from projections.projection import DeadLetter
from projections.rows import RowProjection

AT = datetime(2030, 5, 1, 8, 0, tzinfo=UTC)
MAPPER = build_mapper()
DECODER = CommitDecoder(MAPPER, "vigil.evt")


def at(seconds: int) -> datetime:
    return AT + timedelta(seconds=seconds)


def envelopes(aggregate: VigilAggregate, start: int = 1) -> list[Envelope]:
    """The aggregate's pending events as the projector sees them, one commit each."""
    ref = StreamRef(aggregate.tenant_id, aggregate.TYPE, aggregate.id)
    out = []
    for offset, event in enumerate(aggregate.collect_events()):
        stored = MAPPER.to_stored_event(event)
        raw = RawCommit(
            aggregate_subject("vigil.evt", ref), start + offset, encode_events([stored])
        )
        decoded = DECODER.decode(raw)
        assert isinstance(decoded, list)
        out.extend(decoded)
    return out


def fold(name: str, events: list[Envelope], row: dict | None = None) -> tuple[Any, list]:
    projection = catalog.build([name])[0]
    assert isinstance(projection, RowProjection)
    letters: list[DeadLetter] = []
    new, _ = projection.fold(row, events, letters)
    return new, letters


def a_device() -> Device:
    return Device.register(
        tenant_id="acme", serial_number="SN-1", hardware_profile="orin", actor="prov", at=at(0)
    )


def test_a_registered_device_is_unknown_until_it_comes_online():
    device = a_device()
    row, _ = fold("devices", envelopes(device))
    assert (row["status"], row["health"], row["version"]) == ("registered", "unknown", 1)

    device.come_online(actor="dev", at=at(5))
    row, _ = fold("devices", envelopes(device, start=2), row)

    assert (row["status"], row["health"]) == ("online", "healthy")
    assert row["last_seen_at"] == at(5) and row["updated_at"] == at(5)
    assert row["created_at"] == at(0) and row["version"] == 2 and row["position"] == 2


def test_anomalies_count_and_degrade_health_by_severity():
    device = a_device()
    device.come_online(actor="dev", at=at(1))
    device.raise_anomaly("thermal", "info", "warm", actor="dev", at=at(2))
    device.raise_anomaly("thermal", "critical", "hot", actor="dev", at=at(3))
    device.raise_anomaly("fan", "warning", "slow", actor="dev", at=at(4))

    row, _ = fold("devices", envelopes(device))

    assert row["anomaly_count"] == 3
    assert row["health"] == "critical"  # a warning after a critical does not soften it
    assert (row["last_anomaly_kind"], row["last_anomaly_severity"]) == ("fan", "warning")


def test_a_successful_install_reports_the_model_and_clears_trouble():
    device = a_device()
    model_id = uuid4()
    device.come_online(actor="dev", at=at(1))
    device.report_install_failed(model_id, "1.0.0", "disk full", actor="dev", at=at(2))
    failed, _ = fold("devices", envelopes(device))
    device.report_install_succeeded(model_id, "1.0.0", actor="dev", at=at(3))

    row, _ = fold("devices", envelopes(device, start=4), failed)

    assert (failed["health"], failed["last_install_error"]) == ("degraded", "disk full")
    assert (row["reported_model_version"], row["last_install_error"]) == ("1.0.0", None)
    assert row["health"] == "healthy"


def test_an_event_without_a_row_is_parked_and_the_row_left_alone():
    device = a_device()
    device.collect_events()
    device.raise_anomaly("thermal", "critical", "hot", actor="dev", at=at(1))

    row, letters = fold("devices", envelopes(device, start=2))

    assert row is None
    assert [(x.event_type, x.version) for x in letters] == [("device.AnomalyRaised", 2)]
    assert "no row yet" in letters[0].error


def test_fleet_counts_move_with_a_device_between_fleets_and_statuses():
    red, blue = uuid4(), uuid4()
    before = {
        "k": {"tenant_id": "t", "fleet_id": red, "status": "online", "reported_model_version": None}
    }
    after = {"k": {**before["k"], "fleet_id": blue, "status": "offline"}}

    deltas = count_deltas(before, after)

    assert {k: v for k, v in deltas.items() if v} == {
        ("t", red, "status", "online"): -1,
        ("t", red, "model", ""): -1,
        ("t", blue, "status", "offline"): 1,
        ("t", blue, "model", ""): 1,
    }
    assert not any(count_deltas(after, {"k": {**after["k"], "anomaly_count": 9}}).values())


def test_a_rollout_that_crosses_its_threshold_is_shown_rolled_back():
    fleet = Fleet.create(tenant_id="acme", name="north", actor="ops", at=at(0))
    model_id, device_id = uuid4(), uuid4()
    fleet.start_rollout(model_id, "2.0.0", [50, 100], 0.1, actor="ops", at=at(1))
    fleet.advance_rollout([device_id], actor="ops", at=at(2))
    running, _ = fold("fleets", envelopes(fleet))
    fleet.record_install_result(device_id, False, actor="ops", at=at(3))

    row, letters = fold("fleets", envelopes(fleet, start=4), running)

    assert not letters
    assert (running["rollout_status"], running["rollout_phase"], running["rollout_percent"]) == (
        "running",
        1,
        50,
    )
    assert running["rollout_phases"] == [50, 100] and running["rollout_targeted"] == 1
    assert row["rollout_status"] is None and row["rollout_phases"] is None
    assert (row["last_rollout_outcome"], row["last_rollout_model_version"]) == (
        "rolled_back",
        "2.0.0",
    )
    assert row["last_rollout_ended_at"] == at(3) and row["current_model_version"] is None


def test_a_model_moves_through_its_stages():
    model = Model.register(
        tenant_id="acme",
        name="detector",
        version="1.0.0",
        sha256="a" * 64,
        size_bytes=42,
        input_signature={"x": {"dtype": "float32", "shape": [None, 3]}},
        output_signature={"y": {"dtype": "float32", "shape": [None]}},
        artifact_name=None,
        actor="ml",
        at=at(0),
    )
    model.promote("staging", actor="ml", at=at(1))
    model.deprecate("replaced", actor="ml", at=at(2))

    row, _ = fold("models", envelopes(model))

    assert (row["stage"], row["deprecation_reason"], row["model_version"]) == (
        "deprecated",
        "replaced",
        "1.0.0",
    )
    assert row["input_signature"] == {"x": {"dtype": "float32", "shape": [None, 3]}}


@pytest.mark.parametrize("cipher", [False, True])
def test_the_decoder_gives_the_events_the_mapper_gives(cipher: bool):
    mapper = build_mapper("zstd", new_cipher_key()) if cipher else MAPPER
    device = a_device()
    device.assign_to_fleet(uuid4(), actor="ops", at=at(1))
    device.raise_anomaly("thermal", "warning", "warm", actor="dev", at=at(2))
    stored = [mapper.to_stored_event(e) for e in device.collect_events()]
    ref = StreamRef("acme", "device", device.id)
    raw = RawCommit(aggregate_subject("pfx", ref), 9, encode_events(stored))

    decoded = CommitDecoder(mapper, "pfx").decode(raw)

    assert isinstance(decoded, list)
    expected = [mapper.to_domain_event(s) for s in stored]
    assert [vars(e.event) for e in decoded] == [vars(e) for e in expected]
    assert [type(e.event) for e in decoded] == [type(e) for e in expected]
    assert {(e.ref, e.position, e.key) for e in decoded} == {(ref, 9, raw.subject)}


def test_an_old_event_shape_is_upcast_on_decoding():
    device_id = uuid4()
    state = MAPPER.transcoder.encode(
        {"tenant_id": "acme", "serial_number": "S", "hardware_profile": "h", "actor": "a",
         "timestamp": AT, "originator_topic": "domain.device:Device"}
    )  # fmt: skip
    stored = StoredEvent(device_id, 1, "domain.device:Device.Registered", state)  # v1: no firmware
    raw = RawCommit(f"vigil.evt.acme.device.{device_id.hex}", 1, encode_events([stored]))

    [envelope] = DECODER.decode(raw)  # type: ignore[misc]

    assert envelope.event.firmware_version is None


def test_a_commit_that_will_not_decode_is_reported_not_raised():
    ref = StreamRef("acme", "device", uuid4())
    subject = aggregate_subject("vigil.evt", ref)

    garbage = DECODER.decode(RawCommit(subject, 3, b"\xc1 not msgpack"))
    unknown = DECODER.decode(
        RawCommit(subject, 4, encode_events([StoredEvent(ref.id, 1, "domain.device:Nope", b"")]))
    )

    assert isinstance(garbage, BadCommit) and garbage.position == 3
    assert isinstance(unknown, BadCommit) and unknown.topic == "domain.device:Nope"
    assert DECODER.decode(RawCommit("other.subject", 5, b"")) is None


def test_ack_subjects_give_the_stream_sequence_and_what_is_pending():
    assert _sequence_and_pending(b"$JS.ACK.S.C.1.42.40.1700000000.7") == (42, 7)
    assert _sequence_and_pending(b"$JS.ACK.hub.acct.S.C.1.42.40.1700000000.7.tok") == (42, 7)


def test_shadow_tables_keep_columns_and_keys_under_their_own_names():
    shadows = shadow.shadow_tables(catalog.tables_of("devices"))

    copy = shadows["devices"]
    live = catalog.LIVE_TABLES["devices"]
    assert copy.name == "devices__rebuild"
    assert [c.name for c in copy.columns] == [c.name for c in live.columns]
    assert str(copy.primary_key.name) == "pk_devices__rebuild"
    assert {str(ix.name) for ix in copy.indexes} == {
        str(ix.name).replace("ix_devices_", "ix_devices__rebuild_") for ix in live.indexes
    }


def test_a_creation_that_fails_to_apply_leaves_no_row_behind():
    device = a_device()
    [registered] = envelopes(device)
    registered.event.__dict__.pop("serial_number")  # an event its apply function cannot read
    device.come_online(actor="dev", at=at(1))

    row, letters = fold("devices", [registered, *envelopes(device, start=2)])

    assert row is None
    assert [letter.event_type for letter in letters] == ["device.Registered", "device.CameOnline"]


def test_folding_never_changes_the_row_it_was_given():
    device = a_device()
    row, _ = fold("devices", envelopes(device))
    kept = dict(row)
    device.come_online(actor="dev", at=at(1))
    device.raise_anomaly("thermal", "critical", "hot", actor="dev", at=at(2))

    new, _ = fold("devices", envelopes(device, start=2), row)

    assert row == kept and new is not row and new["anomaly_count"] == 1


def test_a_batch_prepared_slice_by_slice_leaves_the_rows_before_it_untouched():
    projection = catalog.build(["devices"])[0]
    assert isinstance(projection, RowProjection)
    device = a_device()
    device.assign_to_fleet(uuid4(), actor="op", at=at(1))
    first = projection.prepare(envelopes(device), [], None)
    [key] = first.rows
    before = dict(first.rows[key])
    device.come_online(actor="dev", at=at(2))
    device.raise_anomaly("thermal", "critical", "hot", actor="dev", at=at(3))
    second_batch = envelopes(device, start=3)

    batch = projection.prepare(second_batch[:1], [], None)  # one batch, in two slices
    batch = projection.prepare(second_batch[1:], [], batch)

    row = batch.rows[key]
    assert (row["status"], row["health"], row["anomaly_count"], row["version"]) == (
        "online",
        "critical",
        1,
        4,
    )
    assert first.rows[key] == before == batch.before[key]  # the earlier batch's row is intact
    assert batch.outcome.applied == 2
    deltas = count_deltas(batch.before, batch.rows)
    assert {count: delta for count, delta in deltas.items() if delta} == {
        ("acme", before["fleet_id"], "status", "registered"): -1,
        ("acme", before["fleet_id"], "status", "online"): 1,
    }
