"""Checkpoints and dead letters: the projector's own bookkeeping, in the read-model database.

A checkpoint is the last stream position a projection applied. It is written
in the same transaction as the projection's rows (invariant 4) and locked at
the start of every batch, which serialises a running projector with a rebuild
swapping tables under it. ``generation`` counts those swaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.projection import DeadLetter
from projections.tables import dead_letters, projection_checkpoints


@dataclass(frozen=True, slots=True)
class Checkpoint:
    name: str
    position: int
    generation: int
    updated_at: datetime | None = None


async def ensure(conn: AsyncConnection, names: Iterable[str]) -> None:
    """Create missing checkpoints at position 0 (a new projection starts from the beginning)."""
    existing = set(
        (
            await conn.execute(
                sa.select(projection_checkpoints.c.name).where(
                    projection_checkpoints.c.name.in_(list(names))
                )
            )
        ).scalars()
    )
    now = datetime.now(UTC)
    missing = [
        {"name": name, "position": 0, "generation": 0, "updated_at": now}
        for name in names
        if name not in existing
    ]
    if missing:
        await conn.execute(projection_checkpoints.insert(), missing)


async def lock(conn: AsyncConnection, names: Sequence[str]) -> dict[str, Checkpoint]:
    """Read the checkpoints for update: other writers of them wait for this transaction."""
    query = (
        sa.select(projection_checkpoints)
        .where(projection_checkpoints.c.name.in_(list(names)))
        .order_by(projection_checkpoints.c.name)  # one lock order for everyone: no deadlocks
        .with_for_update()
    )
    found = {row.name: Checkpoint(**row._mapping) for row in await conn.execute(query)}
    missing = set(names) - set(found)
    if missing:
        raise LookupError(f"no checkpoint for {sorted(missing)}; call checkpoints.ensure first")
    return found


async def read(conn: AsyncConnection) -> dict[str, Checkpoint]:
    rows = await conn.execute(sa.select(projection_checkpoints))
    return {row.name: Checkpoint(**row._mapping) for row in rows}


async def advance(conn: AsyncConnection, positions: Mapping[str, int]) -> None:
    now = datetime.now(UTC)
    await conn.execute(
        projection_checkpoints.update()
        .where(projection_checkpoints.c.name == sa.bindparam("p_name"))
        .values(position=sa.bindparam("p_position"), updated_at=now),
        [{"p_name": name, "p_position": position} for name, position in positions.items()],
    )


async def replace(conn: AsyncConnection, name: str, position: int) -> None:
    """Set ``name`` to ``position`` and bump its generation: its tables were just replaced."""
    await conn.execute(
        projection_checkpoints.update()
        .where(projection_checkpoints.c.name == name)
        .values(
            position=position,
            generation=projection_checkpoints.c.generation + 1,
            updated_at=datetime.now(UTC),
        )
    )


async def delete(conn: AsyncConnection, name: str) -> None:
    await conn.execute(projection_checkpoints.delete().where(projection_checkpoints.c.name == name))


async def park(conn: AsyncConnection, letters: Sequence[DeadLetter]) -> None:
    """Keep events that failed to apply, with the error, for a human to look at."""
    if not letters:
        return
    now = datetime.now(UTC)
    await conn.execute(
        dead_letters.insert(),
        [
            {
                "projection": letter.projection,
                "position": letter.position,
                "tenant_id": letter.ref.tenant,
                "aggregate_type": letter.ref.type,
                "aggregate_id": letter.ref.id,
                "aggregate_version": letter.version,
                "event_type": letter.event_type[:200],
                "error": letter.error,
                "payload": letter.payload,
                "recorded_at": now,
            }
            for letter in letters
        ],
    )


async def dead_letter_counts(conn: AsyncConnection) -> dict[str, int]:
    projection = dead_letters.c.projection
    query = sa.select(projection, sa.func.count()).group_by(projection)
    return {name: count for name, count in await conn.execute(query)}


async def move_dead_letters(conn: AsyncConnection, source: str, target: str) -> None:
    """Replace ``target``'s dead letters with ``source``'s (a rebuild parked its own)."""
    await conn.execute(dead_letters.delete().where(dead_letters.c.projection == target))
    await conn.execute(
        dead_letters.update().where(dead_letters.c.projection == source).values(projection=target)
    )


async def drop_dead_letters(conn: AsyncConnection, projection: str) -> None:
    await conn.execute(dead_letters.delete().where(dead_letters.c.projection == projection))
