"""Read models as plain data, so two databases (or two builds) can be compared with ``==``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import tables


async def dump(engine: AsyncEngine, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Every read-model row in key order, checkpoints and dead letters (minus run-time stamps)."""
    chosen = [t for t in tables.READ_MODEL_TABLES if names is None or t.name in names]
    out: dict[str, Any] = {}
    async with engine.connect() as conn:
        for table in chosen:
            query = sa.select(table).order_by(*table.primary_key.columns)
            out[table.name] = [dict(row) for row in (await conn.execute(query)).mappings()]
        checkpoints = tables.projection_checkpoints
        out["checkpoints"] = {
            row.name: row.position for row in await conn.execute(sa.select(checkpoints))
        }
        letters = tables.dead_letters
        query = sa.select(*[c for c in letters.columns if c.name not in ("id", "recorded_at")])
        out["dead_letters"] = sorted(
            (dict(row) for row in (await conn.execute(query)).mappings()),
            key=lambda row: (row["projection"], row["position"], row["aggregate_version"]),
        )
    return out


async def count(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())
