"""A small per-process cache of read-model rows and pages, invalidated by change notices.

``device(id)`` is the hottest query a fleet dashboard sends. Between two
changes to a device its row does not change, and the projector says when it
does: every commit it applies ends in a ``ChangeNotice`` for each aggregate
it touched. So a row read once can be served from memory until the notice
for its aggregate arrives.

Pages (``devices(first: 100)``) are kept the same way, one level coarser: a
page can change with any row of its table, so any notice from the
projection that writes the table retires every page of that tenant. A fleet
that changes all the time gets few hits from it and loses nothing else; a
dashboard polling a quiet fleet reads it from memory.

Two guards keep that honest:

* a read that started before its key was invalidated may not fill the cache
  after it (each fill carries the invalidation count it started from), so a
  stale row can never be put back after the notice that retired it;
* notices are best effort (a full queue drops the oldest, a reconnect misses
  some), so entries also expire after ``ttl`` seconds, and the whole cache is
  cleared whenever the notice feed (re)starts.

Requests that ask for read-your-writes bypass the cache entirely.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from infrastructure.changes import ChangeNotice

PageGroup = tuple[str, str]  # (projection, tenant): what one notice retires
PageEpoch = tuple[int, int]  # (clears, the group's notices) when a read started


class RowCache:
    def __init__(
        self,
        *,
        size: int = 50_000,
        ttl: float = 30.0,
        remembered: int = 10_000,
        pages: int = 500,
    ) -> None:
        self.size = size
        self.page_size = pages
        self.ttl = ttl
        self.remembered = remembered
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[Any, float]] = OrderedDict()
        self._counter = 0  # invalidations so far
        self._recent: OrderedDict[Hashable, int] = OrderedDict()  # key -> its last one
        self._forgotten = 0  # the newest invalidation no longer in _recent
        self._pages: OrderedDict[tuple[PageGroup, Hashable], tuple[Any, float, PageEpoch]] = (
            OrderedDict()
        )
        self._generations: dict[PageGroup, int] = {}  # notices per group so far
        self._clears = 0

    @property
    def epoch(self) -> int:
        """Take this before reading the database; hand it back to ``put``."""
        return self._counter

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] < time.monotonic():
            self.misses += 1
            return None
        self.hits += 1
        return entry[0]

    def put(self, key: Hashable, value: Any, epoch: int) -> None:
        last = self._recent.get(key)
        if (last if last is not None else self._forgotten) > epoch:
            return  # invalidated while we read: the value may already be stale
        self._entries[key] = (value, time.monotonic() + self.ttl)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def invalidate(self, key: Hashable) -> None:
        self._counter += 1
        self._entries.pop(key, None)
        self._recent[key] = self._counter
        self._recent.move_to_end(key)
        if len(self._recent) > self.remembered:
            self._forgotten = self._recent.popitem(last=False)[1]

    def page_epoch(self, group: PageGroup) -> PageEpoch:
        """Take this before reading a page of ``group``; hand it back to ``put_page``."""
        return (self._clears, self._generations.get(group, 0))

    def get_page(self, group: PageGroup, key: Hashable) -> Any | None:
        entry = self._pages.get((group, key))
        if entry is None or entry[2] != self.page_epoch(group) or entry[1] < time.monotonic():
            self.misses += 1
            return None
        self.hits += 1
        return entry[0]

    def put_page(self, group: PageGroup, key: Hashable, value: Any, epoch: PageEpoch) -> None:
        if self.page_epoch(group) != epoch:
            return  # a notice came while we read: the page may already be stale
        self._pages[(group, key)] = (value, time.monotonic() + self.ttl, epoch)
        self._pages.move_to_end((group, key))
        if len(self._pages) > self.page_size:
            self._pages.popitem(last=False)

    def clear(self) -> None:
        self._counter += 1
        self._forgotten = self._counter
        self._entries.clear()
        self._recent.clear()
        self._pages.clear()
        self._clears += 1  # pages being read now may not be put back

    def notice(self, notice: ChangeNotice) -> None:
        self.invalidate((notice.aggregate_type, notice.tenant, notice.aggregate_id))
        group = (notice.projection, notice.tenant)
        self._generations[group] = self._generations.get(group, 0) + 1

    def __len__(self) -> int:
        return len(self._entries)
