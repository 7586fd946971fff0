"""Where each projection stands: position, lag behind the stream and dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import nats
from sqlalchemy.ext.asyncio import AsyncEngine

from infrastructure.eventstore.setup import JetStreamConfig
from projections import catalog, checkpoints, shadow


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    position: int
    lag: int | None  # None when the stream's head is unknown (NATS unreachable)
    dead_letters: int
    updated_at: datetime | None
    generation: int
    rebuilding: bool = False  # a rebuild's shadow, not a live projection


async def read_status(engine: AsyncEngine, head: int | None) -> list[ProjectionStatus]:
    """Every known projection, live ones first, then any rebuild in progress."""
    async with engine.connect() as conn:
        found = await checkpoints.read(conn)
        letters = await checkpoints.dead_letter_counts(conn)
    names = list(catalog.PROJECTIONS) + sorted(n for n in found if n not in catalog.PROJECTIONS)
    statuses = []
    for name in names:
        point = found.get(name)
        position = point.position if point else 0
        statuses.append(
            ProjectionStatus(
                name=name,
                position=position,
                lag=None if head is None else max(0, head - position),
                dead_letters=letters.get(name, 0),
                updated_at=point.updated_at if point else None,
                generation=point.generation if point else 0,
                rebuilding=name.endswith(shadow.SUFFIX),
            )
        )
    return statuses


async def stream_head(nats_url: str, config: JetStreamConfig, wait: float = 5.0) -> int:
    """The position of the last commit in the event stream."""
    nc = await nats.connect(nats_url, name="vigil-status", connect_timeout=wait)
    try:
        info = await nc.jetstream(timeout=wait).stream_info(config.stream)
        return int(info.state.last_seq)
    finally:
        await nc.close()
