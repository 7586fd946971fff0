"""The read-model half of ``verify``, on PostgreSQL and SQLite: rows against the log.

Hand-made rows pin down each rule; the last test runs the real projector, so
the rules are checked against what it actually writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import Device, Fleet, Model
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.port import StreamRef
from infrastructure.eventstore.setup import JetStreamConfig
from infrastructure.replay.readmodels import compare, read_rows
from infrastructure.replay.stream import StreamReader
from infrastructure.replay.verify import READ_MODEL, AggregateLog, Report, verify_log
from infrastructure.repository import Repository
from projections import tables
from projections.service import Projector

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


# -- against the real projector ----------------------------------------------------------


async def save_new(repo: Repository, aggregate: Any) -> StreamRef:
    ref = StreamRef(aggregate.tenant_id, aggregate.TYPE, aggregate.id)
    loaded = await repo.load(ref)
    loaded.aggregate = aggregate
    await repo.save(loaded, aggregate.collect_events())
    return ref


async def change(repo: Repository, ref: StreamRef, decide: Any) -> None:
    loaded = await repo.load(ref)
    assert loaded.aggregate is not None
    decide(loaded.aggregate)
    await repo.save(loaded, loaded.aggregate.collect_events())


async def a_small_fleet(store: JetStreamEventStore) -> dict[str, StreamRef]:
    repo = Repository(store, build_mapper())
    signature = {"x": {"dtype": "float32", "shape": [None, 3]}}
    model = Model.register(
        tenant_id="acme",
        name="detector",
        version="1.0.0",
        sha256="a" * 64,
        size_bytes=10,
        input_signature=signature,
        output_signature=signature,
        artifact_name=None,
        actor="op",
        at=AT,
    )
    refs = {
        "model": await save_new(repo, model),
        "fleet": await save_new(
            repo, Fleet.create(tenant_id="acme", name="east", actor="op", at=AT)
        ),
    }
    for n in range(3):
        device = Device.register(
            tenant_id="acme", serial_number=f"SN-{n}", hardware_profile="j", actor="op", at=AT
        )
        refs[f"device-{n}"] = ref = await save_new(repo, device)
        await change(repo, ref, lambda d: d.assign_to_fleet(refs["fleet"].id, actor="op", at=AT))
        await change(repo, ref, lambda d: d.come_online(actor="dev", at=AT))
    await change(repo, refs["model"], lambda m: m.promote("staging", actor="op", at=AT))
    return refs


async def test_what_the_projector_writes_agrees_with_the_log(
    db_engine: AsyncEngine,
    nats_server: str,
    nats_client: Client,
    jetstream_config: JetStreamConfig,
    jetstream_store: JetStreamEventStore,
):
    refs = await a_small_fleet(jetstream_store)
    await Projector(db_engine, nats_server, jetstream_config).catch_up()
    reader = StreamReader(nats_client, jetstream_config)
    report = await verify_log(
        reader.read(until=await reader.head()), jetstream_config.subject_prefix, build_mapper()
    )

    assert report.ok and compare(report, await read_rows(db_engine)) == []

    device = refs["device-1"]
    async with db_engine.begin() as conn:
        await conn.execute(
            tables.timeline.delete().where(
                tables.timeline.c.aggregate_id == device.id, tables.timeline.c.version == 2
            )
        )
    [problem] = compare(report, await read_rows(db_engine))
    assert (problem.ref, problem.detail.split(",")[0]) == (device, "timeline has 2 rows")
