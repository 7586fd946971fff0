"""Keyset pagination for Relay connections.

A cursor is the sort key of a row (for devices, the serial number), encoded
opaquely; a page is the rows strictly after (or before) that key in the
table's natural order, read through the tenant's index. Unlike offsets,
keyset pages stay stable while rows are inserted in front of them, and cost
the same on page 1,000 as on page 1.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from read_api.errors import BadInput

DEFAULT_PAGE_SIZE = 20
_PREFIX = "vigil:"
_PREFIX_BYTES = _PREFIX.encode()


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def encode_cursor(key: Sequence[Any]) -> str:
    # base64.urlsafe_b64encode, without its two Python-level calls: pages encode a hundred.
    raw = _PREFIX_BYTES + orjson.dumps([str(part) for part in key])
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).decode()


def decode_cursor(cursor: str, width: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode())
        if not raw.startswith(_PREFIX.encode()):
            raise ValueError("foreign cursor")
        key = orjson.loads(raw[len(_PREFIX) :])
    except (ValueError, binascii.Error, orjson.JSONDecodeError) as err:
        raise BadInput(f"cursor {cursor!r} is not one this API issued") from err
    if not isinstance(key, list) or len(key) != width or not all(isinstance(k, str) for k in key):
        raise BadInput(f"cursor {cursor!r} does not belong to this connection")
    return key


@dataclass(frozen=True, slots=True)
class PageRequest:
    """``first``/``after`` or ``last``/``before``, checked against the page cap."""

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None

    def size(self, max_page_size: int) -> int:
        if self.first is not None and self.last is not None:
            raise BadInput("pass either first or last, not both")
        size = self.first if self.first is not None else self.last
        if size is None:
            return min(DEFAULT_PAGE_SIZE, max_page_size)
        if not 0 <= size <= max_page_size:
            raise BadInput(f"first/last must be between 0 and {max_page_size}, got {size}")
        return size

    @property
    def backwards(self) -> bool:
        return self.last is not None or (self.before is not None and self.first is None)


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row[Any]]
    cursors: list[str]
    has_next: bool
    has_previous: bool


async def fetch_page(
    conn: AsyncConnection,
    query: sa.Select[Any],
    key: Sequence[sa.ColumnElement[Any]],
    request: PageRequest,
    *,
    max_page_size: int,
    params: dict[str, Any] | None = None,
    prepared: dict[bool, sa.Select[Any]] | None = None,
) -> Page:
    """One page of ``query`` ordered by ``key`` (unique within the tenant).

    ``params`` are the values of ``query``'s bind parameters. ``prepared``
    keeps, per direction, ``query`` already ordered and limited by a
    ``page_limit`` parameter, for pages without a cursor (built on first use).
    """
    size = request.size(max_page_size)
    backwards = request.backwards
    if prepared is not None and request.after is None and request.before is None:
        statement = prepared.get(backwards)
        if statement is None:
            order = [column.desc() for column in key] if backwards else list(key)
            limit = sa.bindparam("page_limit", type_=sa.Integer())
            statement = prepared[backwards] = query.order_by(*order).limit(limit)
        values = {**(params or {}), "page_limit": size + 1}
        rows = list((await conn.execute(statement, values)).all())
        return _page(rows, key, request, size, backwards)
    if request.after is not None:
        after = decode_cursor(request.after, len(key))
        query = query.where(sa.tuple_(*key) > sa.tuple_(*_typed(key, after)))
    if request.before is not None:
        before = decode_cursor(request.before, len(key))
        query = query.where(sa.tuple_(*key) < sa.tuple_(*_typed(key, before)))
    order = [column.desc() for column in key] if backwards else list(key)
    rows = list((await conn.execute(query.order_by(*order).limit(size + 1), params)).all())
    return _page(rows, key, request, size, backwards)


def _page(
    rows: list[Row[Any]],
    key: Sequence[sa.ColumnElement[Any]],
    request: PageRequest,
    size: int,
    backwards: bool,
) -> Page:
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    names = [_name(c) for c in key]
    if len(names) == 1:
        name = names[0]
        cursors = [encode_cursor((getattr(row, name),)) for row in rows]
    else:
        cursors = [encode_cursor([getattr(row, n) for n in names]) for row in rows]
    if backwards:
        return Page(rows, cursors, has_next=request.before is not None, has_previous=more)
    return Page(rows, cursors, has_next=more, has_previous=request.after is not None)


def _name(column: sa.ColumnElement[Any]) -> str:
    return str(getattr(column, "key", None) or getattr(column, "name", ""))


def _typed(key: Sequence[sa.ColumnElement[Any]], values: list[str]) -> list[Any]:
    typed = []
    for column, value in zip(key, values, strict=True):
        try:
            typed.append(sa.literal(column.type.python_type(value), type_=column.type))
        except ValueError as err:
            raise BadInput("cursor does not belong to this connection") from err
    return typed
