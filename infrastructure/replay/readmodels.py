"""Checking the read models against the event log (the second half of ``verify``).

A projector may be running while we look, so nothing is compared with the
log's head. Each table is compared with the log *as of the position it has
reached*: its checkpoint (``projection_checkpoints`` row named like the
table) or, failing one, the highest ``position`` among its rows. A projection
applies commits in order and commits its rows with its checkpoint, so every
commit up to that position must be reflected and none after it:

* ``devices``, ``fleets``, ``models``: one row per aggregate of that type
  created by then, at the version the log had then;
* ``timeline``: as many rows per aggregate as it had events by then;
* no row for an aggregate the log does not have.

The rows are read in one snapshot (REPEATABLE READ on PostgreSQL; a SQLite
read transaction is one already), so the tables agree with each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from infrastructure.database import is_sqlite
from infrastructure.eventstore.port import StreamRef
from infrastructure.replay.verify import READ_MODEL, AggregateLog, Problem, Report
from projections import tables

ENTITY_TABLES = {"device": tables.devices, "fleet": tables.fleets, "model": tables.models}


@dataclass(slots=True)
class ReadModelRows:
    checkpoints: dict[str, int] = field(default_factory=dict)
    # table name -> {ref: (version, position)}
    entities: dict[str, dict[StreamRef, tuple[int, int]]] = field(default_factory=dict)
    timeline: dict[StreamRef, tuple[int, int]] = field(default_factory=dict)  # (rows, max position)


async def read_rows(engine: AsyncEngine) -> ReadModelRows:
    """Every row ``compare`` needs, from one consistent snapshot."""
    rows = ReadModelRows()
    async with engine.connect() as conn:
        if not is_sqlite(conn):
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            cp = tables.projection_checkpoints
            for name, position in await conn.execute(sa.select(cp.c.name, cp.c.position)):
                rows.checkpoints[name] = position
            for type_, table in ENTITY_TABLES.items():
                found = rows.entities.setdefault(table.name, {})
                query = sa.select(table.c.tenant_id, table.c.id, table.c.version, table.c.position)
                for tenant, id_, version, position in await conn.execute(query):
                    found[StreamRef(tenant, type_, _uuid(id_))] = (version, position)
            t = tables.timeline
            grouped = sa.select(
                t.c.tenant_id,
                t.c.aggregate_type,
                t.c.aggregate_id,
                sa.func.count(),
                sa.func.max(t.c.position),
            ).group_by(t.c.tenant_id, t.c.aggregate_type, t.c.aggregate_id)
            for tenant, type_, id_, count, position in await conn.execute(grouped):
                rows.timeline[StreamRef(tenant, type_, _uuid(id_))] = (count, position)
    return rows


def _uuid(value: object) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def reached(rows: ReadModelRows, name: str, positions: Iterable[int]) -> int:
    """How far the projection behind table ``name`` has got in the log."""
    return max([rows.checkpoints.get(name, 0), *positions], default=0)


def compare(report: Report, rows: ReadModelRows) -> list[Problem]:
    problems: list[Problem] = []
    for type_, table in ENTITY_TABLES.items():
        found = rows.entities.get(table.name, {})
        upto = reached(rows, table.name, (p for _, p in found.values()))
        logs = {ref: log for ref, log in report.aggregates.items() if ref.type == type_}
        for ref, (version, _) in found.items():
            log = logs.get(ref)
            expected = log.as_of(upto)[0] if log is not None else 0
            if version != expected:
                problems.append(_mismatch(table.name, ref, f"version {version}", expected, upto))
        for ref, log in logs.items():
            if ref not in found and log.first_position <= upto:
                expected = log.as_of(upto)[0]
                problems.append(_mismatch(table.name, ref, "no row", expected, upto))
    upto = reached(rows, tables.timeline.name, (p for _, p in rows.timeline.values()))
    # The timeline records the domain's aggregates only.
    logs = {ref: log for ref, log in report.aggregates.items() if ref.type in ENTITY_TABLES}
    problems.extend(_compare_timeline(logs, rows.timeline, upto))
    return problems


def _compare_timeline(
    logs: dict[StreamRef, AggregateLog], timeline: dict[StreamRef, tuple[int, int]], upto: int
) -> list[Problem]:
    problems = []
    for ref, (count, _) in timeline.items():
        log = logs.get(ref)
        expected = log.as_of(upto)[1] if log is not None else 0
        if count != expected:
            problems.append(_mismatch("timeline", ref, f"{count} rows", expected, upto, "events"))
    for ref, log in logs.items():
        if ref not in timeline and log.first_position <= upto:
            expected = log.as_of(upto)[1]
            problems.append(_mismatch("timeline", ref, "no rows", expected, upto, "events"))
    return problems


def _mismatch(
    table: str, ref: StreamRef, has: str, expected: int, upto: int, what: str = "version"
) -> Problem:
    if expected:
        should = (
            f"the log has {expected} {what}"
            if what == "events"
            else f"the log has {what} {expected}"
        )
    else:
        should = "the log has no such aggregate"
    detail = f"{table} has {has}, {should} up to position {upto}"
    return Problem(READ_MODEL, detail, None, ref)
