"""Event serialisation: eventsourcing's Mapper with a msgpack transcoder.

The library's JSON transcoder wraps every UUID and datetime in a small dict and
round-trips through the stdlib ``json`` module. msgspec's msgpack codec keeps
datetimes native (msgpack timestamp extension) and lets UUIDs and Decimals ride
as extension types, which is several times faster and smaller on the wire.
"""

from __future__ import annotations

import base64
import zlib
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
import zstandard
from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import Cipher, Compressor, Mapper, Transcoder
from eventsourcing.utils import Environment

_EXT_UUID = 1
_EXT_DECIMAL = 2
_EXT_TUPLE = 3
_EXT_BYTES = 4

_PASSTHROUGH = (str, int, float, bool, type(None))


def _to_wire(obj: Any) -> Any:
    # msgspec encodes UUIDs as plain strings and tuples as lists, which would
    # not decode back to the same types; wrap them so replays see equal values.
    if isinstance(obj, _PASSTHROUGH):
        return obj
    if isinstance(obj, UUID):
        return msgspec.msgpack.Ext(_EXT_UUID, obj.bytes)
    if isinstance(obj, dict):
        return {k: _to_wire(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_wire(v) for v in obj]
    if isinstance(obj, tuple):
        return msgspec.msgpack.Ext(_EXT_TUPLE, _ENCODER.encode([_to_wire(v) for v in obj]))
    if isinstance(obj, Decimal):
        return msgspec.msgpack.Ext(_EXT_DECIMAL, str(obj).encode())
    if isinstance(obj, bytes):
        return msgspec.msgpack.Ext(_EXT_BYTES, obj)
    return obj  # datetimes and anything msgspec knows natively


_UUIDS: dict[bytes, UUID] = {}  # bytes -> UUID, for the ids events keep naming
_UUIDS_MAX = 100_000


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == _EXT_UUID:
        # A fleet's, a model's or a device's id recurs in event after event; making
        # the same UUID again costs more than the rest of a small event's decoding.
        # UUIDs are immutable, so handing out one instance is safe.
        raw = bytes(data)
        uuid = _UUIDS.get(raw)
        if uuid is None:
            if len(_UUIDS) >= _UUIDS_MAX:
                _UUIDS.clear()  # a bound, not an LRU: a miss costs one UUID
            uuid = _UUIDS[raw] = UUID(bytes=raw)
        return uuid
    if code == _EXT_DECIMAL:
        return Decimal(bytes(data).decode())
    if code == _EXT_TUPLE:
        return tuple(_DECODER.decode(data))
    if code == _EXT_BYTES:
        return bytes(data)
    raise ValueError(f"unknown msgpack extension type {code}")


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(ext_hook=_ext_hook)


class MsgpackTranscoder(Transcoder):
    """Encodes event state as msgpack; UUID, Decimal, tuple and bytes survive a round trip."""

    def encode(self, obj: Any) -> bytes:
        return _ENCODER.encode(_to_wire(obj))

    # msgspec's own method, not a Python wrapper around it: decoding runs for every
    # event a projector or a replay reads, and a wrapper's call costs a sixth of it.
    decode = _DECODER.decode  # type: ignore[assignment]


class ZstdCompressor(Compressor):
    """zstandard at a low level: most of zlib's ratio at a fraction of its cost."""

    def __init__(self, level: int = 3) -> None:
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._decompressor = zstandard.ZstdDecompressor()

    def compress(self, data: bytes) -> bytes:
        return self._compressor.compress(data)

    def decompress(self, data: bytes) -> bytes:
        return self._decompressor.decompress(data)


class ZlibCompressor(Compressor):
    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data)

    def decompress(self, data: bytes) -> bytes:
        return zlib.decompress(data)


COMPRESSORS: dict[str, type[Compressor]] = {"zstd": ZstdCompressor, "zlib": ZlibCompressor}


def new_cipher_key() -> str:
    """A fresh AES-256 key, base64-encoded, for ``VIGIL_CIPHER_KEY``."""
    return AESCipher.create_key(32)


def build_mapper(compression: str | None = None, cipher_key: str | None = None) -> Mapper[UUID]:
    """The Mapper every store uses; compression and AES-GCM encryption are opt-in.

    ``compression`` is ``None``, ``"zstd"`` or ``"zlib"``; ``cipher_key`` is a
    base64 AES key of 16, 24 or 32 bytes.
    """
    compressor: Compressor | None = None
    if compression:
        try:
            compressor = COMPRESSORS[compression]()
        except KeyError:
            raise ValueError(
                f"unknown compression {compression!r}; choose one of {sorted(COMPRESSORS)}"
            ) from None
    cipher: Cipher | None = None
    if cipher_key:
        try:
            raw = base64.b64decode(cipher_key, validate=True)
        except ValueError as err:
            raise ValueError("cipher key is not valid base64") from err
        if len(raw) not in (16, 24, 32):
            raise ValueError(f"cipher key must be 16, 24 or 32 bytes, got {len(raw)}")
        cipher = AESCipher(Environment(env={AESCipher.CIPHER_KEY: cipher_key}))
    return Mapper(transcoder=MsgpackTranscoder(), compressor=compressor, cipher=cipher)
