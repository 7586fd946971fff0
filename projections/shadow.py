"""Shadow copies of a projection's tables, and the swap that puts them in service.

A rebuild fills ``<table>__rebuild`` tables (same columns, keys and indexes,
their own index names) while the live tables keep answering queries. The
swap, inside one transaction, drops each live table and renames its shadow
into its place, then gives the indexes and key back their canonical names.
Both databases run DDL transactionally, so readers see the old tables until
the commit and the new ones after it, never a missing or empty table:
PostgreSQL makes readers wait on the table locks for the instant of the swap;
SQLite's readers keep reading their snapshot.

PostgreSQL renames indexes in place. SQLite cannot rename an index, so there
the shadow's indexes are dropped and created again under their canonical
names (an embedded database's tables are small; this happens inside the same
transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import conv

from projections.tables import NAMING_CONVENTION

SUFFIX = "__rebuild"


def shadow_tables(live: Iterable[sa.Table]) -> dict[str, sa.Table]:
    """Canonical name -> shadow copy, for each live table."""
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    shadows = {}
    for table in live:
        shadow = table.to_metadata(metadata, name=table.name + SUFFIX)
        for index in shadow.indexes:
            index.name = conv(_renamed(str(index.name), table.name, shadow.name))
        shadow.primary_key.name = conv(
            _renamed(str(table.primary_key.name), table.name, shadow.name)
        )
        shadows[table.name] = shadow
    return shadows


async def create(conn: AsyncConnection, shadows: Mapping[str, sa.Table]) -> None:
    """Create empty shadow tables, dropping any a crashed rebuild left behind."""
    await drop(conn, shadows)
    for shadow in shadows.values():
        await conn.run_sync(shadow.create)


async def drop(conn: AsyncConnection, shadows: Mapping[str, sa.Table]) -> None:
    for shadow in shadows.values():
        await conn.run_sync(shadow.drop, checkfirst=True)


async def swap(conn: AsyncConnection, live: sa.Table, shadow: sa.Table) -> None:
    """Replace ``live`` by ``shadow`` under ``live``'s name, inside the caller's transaction."""
    prep = conn.dialect.identifier_preparer
    live_name, shadow_name = prep.quote(live.name), prep.quote(shadow.name)
    await conn.exec_driver_sql(f"DROP TABLE {live_name}")
    await conn.exec_driver_sql(f"ALTER TABLE {shadow_name} RENAME TO {live_name}")
    if conn.dialect.name == "postgresql":
        for index in shadow.indexes:
            canonical = _renamed(str(index.name), shadow.name, live.name)
            await conn.exec_driver_sql(
                f"ALTER INDEX {prep.quote(str(index.name))} RENAME TO {prep.quote(canonical)}"
            )
        key = prep.quote(str(shadow.primary_key.name))
        canonical_key = prep.quote(str(live.primary_key.name))
        await conn.exec_driver_sql(
            f"ALTER TABLE {live_name} RENAME CONSTRAINT {key} TO {canonical_key}"
        )
        return
    for index in shadow.indexes:
        await conn.exec_driver_sql(f"DROP INDEX {prep.quote(str(index.name))}")
    for index in live.indexes:
        await conn.run_sync(index.create)


def _renamed(name: str, old_table: str, new_table: str) -> str:
    """The name an index or key that embeds ``old_table`` gets on ``new_table``."""
    for prefix in ("ix_", "uq_", "pk_"):
        if name.startswith(prefix + old_table):
            return prefix + new_table + name[len(prefix + old_table) :]
    raise ValueError(f"{name} does not follow the naming convention for {old_table}")
