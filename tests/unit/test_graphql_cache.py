"""The row cache never puts back a row that a notice retired while it was being read."""

from __future__ import annotations

from uuid import uuid4

from infrastructure.changes import ChangeNotice
from read_api.cache import RowCache


def key(tenant: str = "acme") -> tuple[str, str, object]:
    return ("device", tenant, uuid4())


def test_a_row_read_before_its_invalidation_is_not_cached() -> None:
    cache = RowCache()
    k = key()
    epoch = cache.epoch  # the read starts...
    cache.invalidate(k)  # ...a notice retires the row meanwhile...
    cache.put(k, "stale", epoch)  # ...and the read finishes with the old row.

    assert cache.get(k) is None


def test_invalidating_another_key_does_not_block_filling() -> None:
    cache = RowCache()
    k = key()
    epoch = cache.epoch
    cache.invalidate(key())
    cache.put(k, "row", epoch)

    assert cache.get(k) == "row"


def test_forgotten_invalidations_still_block_fills_that_started_before_them() -> None:
    cache = RowCache(remembered=2)
    k = key()
    epoch = cache.epoch
    cache.invalidate(k)
    for _ in range(5):  # push k's invalidation out of the remembered window
        cache.invalidate(key())
    cache.put(k, "stale", epoch)

    assert cache.get(k) is None


def test_notices_retire_their_aggregate_and_entries_expire() -> None:
    cache = RowCache(ttl=-1.0)
    k = key()
    cache.put(k, "row", cache.epoch)
    assert cache.get(k) is None  # already expired

    live = RowCache()
    tenant, aggregate_id = "acme", uuid4()
    live.put(("device", tenant, aggregate_id), "row", live.epoch)
    live.notice(ChangeNotice("devices", tenant, "device", aggregate_id, 3, 10))
    assert live.get(("device", tenant, aggregate_id)) is None


def test_clearing_blocks_reads_in_flight() -> None:
    cache = RowCache()
    k = key()
    epoch = cache.epoch
    cache.clear()
    cache.put(k, "row", epoch)

    assert cache.get(k) is None
