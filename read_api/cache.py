"""A small per-process cache of read-model objects, invalidated by change notices.

``device(id)`` is the hottest query a fleet dashboard sends. Between two
changes to a device its row does not change, and the projector says when it
does: every commit it applies ends in a ``ChangeNotice`` for each aggregate
it touched. So a row read once can be served from memory until the notice
for its aggregate arrives.

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


class RowCache:
    def __init__(self, *, size: int = 50_000, ttl: float = 30.0, remembered: int = 10_000) -> None:
        self.size = size
        self.ttl = ttl
        self.remembered = remembered
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[Any, float]] = OrderedDict()
        self._counter = 0  # invalidations so far
        self._recent: OrderedDict[Hashable, int] = OrderedDict()  # key -> its last one
        self._forgotten = 0  # the newest invalidation no longer in _recent

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

    def clear(self) -> None:
        self._counter += 1
        self._forgotten = self._counter
        self._entries.clear()
        self._recent.clear()

    def notice(self, notice: ChangeNotice) -> None:
        self.invalidate((notice.aggregate_type, notice.tenant, notice.aggregate_id))

    def __len__(self) -> int:
        return len(self._entries)
