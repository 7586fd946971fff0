"""The read-model half of ``verify``, on PostgreSQL and SQLite: rows against the log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from infrastructure.eventstore.port import StreamRef
from infrastructure.replay.readmodels import compare, read_rows
from infrastructure.replay.verify import READ_MODEL, AggregateLog, Report
from projections import tables

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEVICE = StreamRef("acme", "device", uuid4())
FLEET = StreamRef("acme", "fleet", uuid4())
MODEL = StreamRef("globex", "model", uuid4())


def the_log() -> Report:
    """device: v1 @1, v3 @3 (two events), v4 @6; fleet: v1 @2, v2 @5; model: v1 @4."""
    report = Report(commits=6, events=7, head=6)
    for ref, commits in {
        DEVICE: [(1, 1, 1), (3, 3, 2), (6, 4, 1)],
        FLEET: [(2, 1, 1), (5, 2, 1)],
        MODEL: [(4, 1, 1)],
    }.items():
        log = report.aggregates.setdefault(ref, AggregateLog())
        for position, version, events in commits:
            log.add(position, version, events)
    return report


def stamps(version: int, position: int) -> dict[str, Any]:
    return {"created_at": AT, "updated_at": AT, "version": version, "position": position}


def device_row(ref: StreamRef, version: int, position: int) -> dict[str, Any]:
    return {
        "tenant_id": ref.tenant,
        "id": ref.id,
        "serial_number": f"SN-{ref.id.hex[:6]}",
        "hardware_profile": "jetson",
        "status": "online",
        "health": "healthy",
        "anomaly_count": 0,
        **stamps(version, position),
    }


def fleet_row(ref: StreamRef, version: int, position: int) -> dict[str, Any]:
    name = f"fleet-{ref.id.hex[:6]}"
    return {
        "tenant_id": ref.tenant,
        "id": ref.id,
        "name": name,
        "rollout_count": 0,
        **stamps(version, position),
    }


def model_row(ref: StreamRef, version: int, position: int) -> dict[str, Any]:
    return {
        "tenant_id": ref.tenant,
        "id": ref.id,
        "name": "detector",
        "model_version": f"1.{ref.id.hex[:4]}",
        "sha256": "0" * 64,
        "size_bytes": 1,
        "input_signature": {},
        "output_signature": {},
        "stage": "registered",
        **stamps(version, position),
    }


def timeline_rows(ref: StreamRef, positions: list[int]) -> list[dict[str, Any]]:
    """One row per event; ``positions`` gives each event's commit position, in version order."""
    return [
        {
            "tenant_id": ref.tenant,
            "aggregate_id": ref.id,
            "version": version,
            "aggregate_type": ref.type,
            "event_type": "Something",
            "position": position,
            "actor": "op",
            "occurred_at": AT,
            "payload": {},
        }
        for version, position in enumerate(positions, start=1)
    ]


async def fill(
    engine: AsyncEngine, checkpoints: dict[str, int], **rows: list[dict[str, Any]]
) -> None:
    async with engine.begin() as conn:
        for name, position in checkpoints.items():
            await conn.execute(
                tables.projection_checkpoints.insert(),
                {"name": name, "position": position, "generation": 1, "updated_at": AT},
            )
        for table, values in rows.items():
            if values:
                await conn.execute(tables.metadata.tables[table].insert(), values)


CAUGHT_UP = {
    "devices": [device_row(DEVICE, 4, 6)],
    "fleets": [fleet_row(FLEET, 2, 5)],
    "models": [model_row(MODEL, 1, 4)],
    "timeline": [
        *timeline_rows(DEVICE, [1, 3, 3, 6]),
        *timeline_rows(FLEET, [2, 5]),
        *timeline_rows(MODEL, [4]),
    ],
}


async def test_read_models_that_caught_up_with_the_log_agree(db_engine: AsyncEngine):
    names = ("devices", "fleets", "models", "timeline")
    await fill(db_engine, dict.fromkeys(names, 6), **CAUGHT_UP)

    assert compare(the_log(), await read_rows(db_engine)) == []


async def test_a_projection_that_lags_behind_is_compared_where_it_stands(db_engine: AsyncEngine):
    # Applied up to position 3 only, without checkpoints: the rows' positions say how far.
    await fill(
        db_engine,
        {},
        devices=[device_row(DEVICE, 3, 3)],
        fleets=[fleet_row(FLEET, 1, 2)],
        timeline=[*timeline_rows(DEVICE, [1, 3, 3]), *timeline_rows(FLEET, [2])],
    )

    assert compare(the_log(), await read_rows(db_engine)) == []


async def test_stale_missing_and_unknown_rows_are_each_reported(db_engine: AsyncEngine):
    stranger = StreamRef("acme", "model", uuid4())
    await fill(
        db_engine,
        {"devices": 6, "fleets": 6, "models": 6, "timeline": 6},
        devices=[device_row(DEVICE, 3, 3)],
        models=[model_row(MODEL, 1, 4), model_row(stranger, 1, 4)],
        timeline=[*timeline_rows(DEVICE, [1, 3, 3]), *timeline_rows(MODEL, [4])],
    )

    problems = compare(the_log(), await read_rows(db_engine))

    assert {p.kind for p in problems} == {READ_MODEL}
    assert sorted((str(p.ref), p.detail) for p in problems) == sorted(
        [
            (str(DEVICE), "devices has version 3, the log has version 4 up to position 6"),
            (str(FLEET), "fleets has no row, the log has version 2 up to position 6"),
            (str(stranger), "models has version 1, the log has no such aggregate up to position 6"),
            (str(DEVICE), "timeline has 3 rows, the log has 4 events up to position 6"),
            (str(FLEET), "timeline has no rows, the log has 2 events up to position 6"),
        ]
    )


async def test_read_rows_gathers_checkpoints_versions_and_timeline_counts(db_engine: AsyncEngine):
    await fill(db_engine, {"devices": 6}, **CAUGHT_UP)

    rows = await read_rows(db_engine)

    assert rows.checkpoints == {"devices": 6}
    assert rows.entities["devices"] == {DEVICE: (4, 6)}
    assert rows.timeline == {DEVICE: (4, 6), FLEET: (2, 5), MODEL: (1, 4)}
