"""Every read model the projector maintains, by name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from projections import tables
from projections.devices import DevicesProjection
from projections.fleets import FleetsProjection
from projections.models import ModelsProjection
from projections.projection import Projection
from projections.timeline import TimelineProjection

PROJECTIONS: dict[str, type[Projection]] = {
    cls.name: cls
    for cls in (DevicesProjection, FleetsProjection, ModelsProjection, TimelineProjection)
}
LIVE_TABLES: dict[str, sa.Table] = {table.name: table for table in tables.READ_MODEL_TABLES}


def build(
    names: Iterable[str] | None = None,
    *,
    table_map: Mapping[str, sa.Table] | None = None,
    label_suffix: str = "",
    dialect: str = "postgresql",
) -> list[Projection]:
    """Projection instances for ``names`` (all by default) on the live tables or ``table_map``."""
    chosen = list(PROJECTIONS) if names is None else list(names)
    unknown = [name for name in chosen if name not in PROJECTIONS]
    if unknown:
        raise KeyError(f"unknown projection(s) {unknown}; known: {', '.join(PROJECTIONS)}")
    mapping = LIVE_TABLES if table_map is None else table_map
    return [
        PROJECTIONS[name](mapping, label=name + label_suffix, dialect=dialect) for name in chosen
    ]


def tables_of(name: str) -> list[sa.Table]:
    """The live tables projection ``name`` writes."""
    return [LIVE_TABLES[table] for table in PROJECTIONS[name].table_names]
