"""Bulk writes for projections: whole batches of rows per statement, on either database.

Projections hand this module plain dicts; it picks the cheapest correct way
to land them inside the caller's transaction:

* PostgreSQL: binary ``COPY`` through the asyncpg connection underneath
  SQLAlchemy. Appends are copied straight into their table (the timeline's
  rows arrive already encoded, see ``projections.pgcopy``);
  upserts are copied into a per-connection temporary staging table and merged
  with one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``. Per row this costs
  a fraction of an ``executemany`` of single-row upserts, where every row is a
  round of parse/bind/execute on the server. This path is what lets catch-up
  reach tens of thousands of events per second on two cores.
* SQLite (and anything else): the same statements through SQLAlchemy Core,
  ``INSERT ... ON CONFLICT DO UPDATE`` with ``executemany``; SQLite runs in
  process, so there is no round trip to save.

Either way the rows land in the transaction the runner opened, so they commit
with the checkpoint or not at all (invariant 4).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from infrastructure.database import json_dumps
from projections import pgcopy

_FETCH_CHUNK = 5_000  # keys per SELECT, well under PostgreSQL's 32767 parameters


async def upsert(conn: AsyncConnection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (complete rows, unique keys) or overwrite the rows they collide with."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        await _pg_upsert(conn, table, rows)
        return
    statement = _insert(conn, table)
    keys = [c.name for c in table.primary_key.columns]
    statement = statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
    )
    await conn.execute(statement, list(rows))


async def append(conn: AsyncConnection, table: sa.Table, records: Sequence[Sequence[Any]]) -> None:
    """Insert ``records`` (values in column order); an existing key is an error, never skipped."""
    if not records:
        return
    if conn.dialect.name == "postgresql":
        driver = await _driver(conn)
        await driver.copy_records_to_table(
            table.name,
            records=_json_as_text(table, records),
            columns=[c.name for c in table.columns],
        )
        return
    names = [c.name for c in table.columns]
    await conn.execute(table.insert(), [dict(zip(names, r, strict=True)) for r in records])


async def copy_rows(conn: AsyncConnection, table: sa.Table, rows: Sequence[bytes]) -> None:
    """Append rows already in binary COPY form (``projections.pgcopy``), on PostgreSQL only.

    Each row holds every column of ``table``, in order; PostgreSQL rejects the
    whole COPY (and the transaction with it) if one does not fit.
    """
    if not rows:
        return
    driver = await _driver(conn)
    await driver.copy_to_table(
        table.name,
        source=pgcopy.stream(rows),
        columns=[c.name for c in table.columns],
        format="binary",
    )


async def add_counts(
    conn: AsyncConnection, table: sa.Table, deltas: Mapping[tuple[Any, ...], int]
) -> None:
    """Add ``deltas`` (primary key -> change) to ``table.count``; rows reaching 0 are deleted."""
    changes = [(key, delta) for key, delta in deltas.items() if delta]
    if not changes:
        return
    keys = [c.name for c in table.primary_key.columns]
    statement = _insert(conn, table)
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={"count": table.c["count"] + statement.excluded["count"]}
    )
    rows = [{**dict(zip(keys, key, strict=True)), "count": delta} for key, delta in changes]
    await conn.execute(statement, rows)
    await conn.execute(sa.delete(table).where(table.c["count"] == 0))


async def fetch_rows(
    conn: AsyncConnection, table: sa.Table, keys: Sequence[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """The rows of ``table`` with these primary keys (those that exist), as dicts."""
    key_columns = list(table.primary_key.columns)
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), _FETCH_CHUNK):
        chunk = keys[start : start + _FETCH_CHUNK]
        query = sa.select(table).where(sa.tuple_(*key_columns).in_(chunk))
        found.extend(dict(row) for row in (await conn.execute(query)).mappings())
    return found


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn``, which must already be inside a transaction."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if driver is None or not driver.is_in_transaction():
        # COPY outside the transaction would commit on its own: refuse rather than
        # break the rows-and-checkpoint-together rule.
        raise RuntimeError("bulk COPY needs a transaction that has already executed a statement")
    return driver


async def _pg_upsert(
    conn: AsyncConnection, table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    driver = await _driver(conn)
    stage = f"_vigil_stage_{table.name}"
    columns = [c.name for c in table.columns]
    # Temporary: private to this connection, never WAL-logged, gone with it. Made
    # on every call (a catalog lookup once it exists) because a rolled-back
    # transaction takes its creation away with it.
    await driver.execute(
        f'CREATE TEMPORARY TABLE IF NOT EXISTS "{stage}" (LIKE "{table.name}" INCLUDING DEFAULTS);'
        f'TRUNCATE "{stage}"'
    )
    await driver.copy_records_to_table(stage, records=_records(table, rows), columns=columns)
    keys = [c.name for c in table.primary_key.columns]
    quoted = ", ".join(f'"{c}"' for c in columns)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c not in keys)
    await driver.execute(
        f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{stage}" '
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


def _records(table: sa.Table, rows: Iterable[Mapping[str, Any]]) -> Sequence[Sequence[Any]]:
    """Rows as tuples in column order, JSON columns as text (what COPY's json codec takes)."""
    pick = operator.itemgetter(*[c.name for c in table.columns])
    return _json_as_text(table, [pick(row) for row in rows])


def _json_as_text(table: sa.Table, records: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    json_columns = [i for i, c in enumerate(table.columns) if isinstance(c.type, sa.JSON)]
    if not json_columns:
        return records
    converted = []
    for record in records:
        values = list(record)
        for i in json_columns:
            if values[i] is not None:
                values[i] = json_dumps(values[i])
        converted.append(values)
    return converted
