"""Timeline rows encoded for binary COPY land in PostgreSQL exactly as their values say."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import Device
from infrastructure.database import json_dumps
from infrastructure.eventstore.port import StreamRef
from projections import catalog, tables
from projections.envelope import Envelope
from projections.timeline import COLUMNS, timeline_row

pytestmark = pytest.mark.integration


def _envelopes() -> list[Envelope]:
    """Events with what is easy to get wrong in a hand-made encoding."""
    times = [
        datetime(2030, 5, 1, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before PostgreSQL's epoch
        datetime(2200, 1, 1, tzinfo=UTC),
    ]
    device = Device.register(
        tenant_id="acme", serial_number="SN-1", hardware_profile="jetson", actor="ops", at=times[0]
    )
    device.raise_anomaly("thermal", "critical", "line\nbreak {}", actor="device", at=times[1])
    device.come_online(actor="device", at=times[2])
    registered, *later = device.collect_events()
    # Stored events are not re-validated: text the commands would refuse still arrives.
    registered.__dict__["serial_number"] = 'SN-Δ-\\-"quoted"-\t-é'
    registered.__dict__["actor"] = "ops \\ Zoë"
    ref = StreamRef(device.tenant_id, Device.TYPE, device.id)
    key = f"vigil.evt.{ref.tenant}.{ref.type}.{ref.id.hex}"
    positions = [1, 2**31 + 7, 2**40]
    return [
        Envelope(key, ref, position, event)
        for position, event in zip(positions, [registered, *later], strict=True)
    ]


async def test_binary_copy_rows_read_back_as_the_values_they_encode(pg_engine: AsyncEngine):
    projection = catalog.build(["timeline"], dialect="postgresql")[0]
    envelopes = _envelopes()
    prepared = projection.prepare(envelopes, [], None)
    assert all(isinstance(row, bytes) for row in prepared.records)  # type: ignore[attr-defined]

    async with pg_engine.begin() as conn:
        await conn.execute(sa.text("SELECT 1"))  # a transaction under way, as the runner's
        await projection.write(conn, prepared)
    async with pg_engine.connect() as conn:
        query = sa.select(tables.timeline).order_by(tables.timeline.c.version)
        stored = [tuple(row) for row in await conn.execute(query)]

    expected = [timeline_row(envelope) for envelope in envelopes]
    for row, want in zip(stored, expected, strict=True):
        as_read = dict(zip(COLUMNS, row, strict=True))
        wanted = dict(zip(COLUMNS, want, strict=True))
        assert as_read.pop("payload") == json.loads(json_dumps(wanted.pop("payload")))
        assert as_read == wanted


async def test_a_row_that_does_not_fit_its_table_fails_the_whole_copy(pg_engine: AsyncEngine):
    projection = catalog.build(["timeline"], dialect="postgresql")[0]
    envelopes = _envelopes()
    envelopes[1].event.__dict__["actor"] = "x" * 201  # the column holds 200 characters
    prepared = projection.prepare(envelopes, [], None)

    with pytest.raises(Exception, match="too long"):
        async with pg_engine.begin() as conn:
            await conn.execute(sa.text("SELECT 1"))
            await projection.write(conn, prepared)
    async with pg_engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(tables.timeline)
        assert (await conn.execute(count)).scalar_one() == 0


def test_a_naive_time_is_parked_not_encoded():
    projection = catalog.build(["timeline"], dialect="postgresql")[0]
    envelopes = _envelopes()
    envelopes[0].event.__dict__["timestamp"] = datetime(2030, 1, 1)  # no zone

    prepared = projection.prepare(envelopes, [], None)

    assert len(prepared.records) == 2  # type: ignore[attr-defined]
    [letter] = prepared.outcome.dead_letters
    assert letter.version == 1 and "naive" in letter.error
