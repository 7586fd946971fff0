"""PostgreSQL's binary COPY format, written while a batch is prepared rather than when it is sent.

asyncpg encodes ``copy_records_to_table`` records when the batch is written,
seconds after its objects were made and long after they left the CPU's caches;
timestamps, the costliest column to encode, go through several Python-level
datetime operations each. The timeline appends a row per event, so it encodes
its rows here instead, in the slice that decoded the event: one ``bytes`` per
row, parts that repeat (an aggregate's key, an event type, an actor) encoded
once and reused. At write time the rows are only joined and streamed.

The format (PostgreSQL's ``COPY ... FORMAT binary``): a header, then per row
the field count (int16) and per field its length (int32, -1 for NULL) and
bytes, then a trailer. The types used here send: text as UTF-8, ``uuid`` as
16 bytes, integers big-endian, ``timestamptz`` as microseconds since
2000-01-01 UTC (int64), ``json`` as its text. PostgreSQL checks every field's
length against its column's type, so a row that does not fit its table is
rejected, never stored wrong.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # signature, flags, extension
TRAILER = struct.pack(">h", -1)

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

field_count = struct.Struct(">h").pack
int4 = struct.Struct(">ii").pack  # (4, value): length and value of an int4 field
int8 = struct.Struct(">iq").pack  # (8, value): length and value of an int8 field
_length = struct.Struct(">i").pack


def text(value: str) -> bytes:
    """A text (varchar, json) field."""
    data = value.encode()
    return _length(len(data)) + data


def data_field(data: bytes) -> bytes:
    """A field of raw bytes: json text already encoded, say."""
    return _length(len(data)) + data


def uuid(value: UUID) -> bytes:
    return _length(16) + value.bytes


def timestamptz(value: datetime) -> bytes:
    """An aware datetime; a naive one raises (read models store aware times only)."""
    return int8(8, (value - _EPOCH) // _MICROSECOND)


async def stream(rows: Sequence[bytes], chunk: int = 5_000) -> AsyncIterator[bytes]:
    """The COPY data for ``rows``, a few thousand rows at a time."""
    yield HEADER
    for start in range(0, len(rows), chunk):
        yield b"".join(rows[start : start + chunk])
    yield TRAILER
