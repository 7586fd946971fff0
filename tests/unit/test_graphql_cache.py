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


def page_notice(tenant: str = "acme", projection: str = "devices") -> ChangeNotice:
    return ChangeNotice(projection, tenant, "device", uuid4(), 2, 7)


def test_a_notice_retires_every_page_of_its_projection_and_tenant_only() -> None:
    cache = RowCache()
    ours, theirs, other_table = ("devices", "acme"), ("devices", "globex"), ("fleets", "acme")
    for group in (ours, theirs, other_table):
        cache.put_page(group, "first 100", f"page of {group}", cache.page_epoch(group))

    cache.notice(page_notice("acme", "devices"))

    assert cache.get_page(ours, "first 100") is None
    assert cache.get_page(theirs, "first 100") == "page of ('devices', 'globex')"
    assert cache.get_page(other_table, "first 100") == "page of ('fleets', 'acme')"


def test_a_page_read_before_a_notice_is_not_cached() -> None:
    cache = RowCache()
    group = ("devices", "acme")
    epoch = cache.page_epoch(group)  # the read starts...
    cache.notice(page_notice())  # ...a device changes meanwhile...
    cache.put_page(group, "first 100", "stale", epoch)  # ...and the read finishes.

    assert cache.get_page(group, "first 100") is None
    cache.put_page(group, "first 100", "fresh", cache.page_epoch(group))
    assert cache.get_page(group, "first 100") == "fresh"


def test_clearing_blocks_page_reads_in_flight_and_pages_expire() -> None:
    cache = RowCache()
    group = ("devices", "acme")
    epoch = cache.page_epoch(group)
    cache.clear()
    cache.put_page(group, "first 100", "page", epoch)
    assert cache.get_page(group, "first 100") is None

    expired = RowCache(ttl=-1.0)
    expired.put_page(group, "first 100", "page", expired.page_epoch(group))
    assert expired.get_page(group, "first 100") is None


def test_pages_are_bounded() -> None:
    cache = RowCache(pages=2)
    group = ("devices", "acme")
    for n in range(3):
        cache.put_page(group, n, f"page {n}", cache.page_epoch(group))

    assert [cache.get_page(group, n) for n in range(3)] == [None, "page 1", "page 2"]
