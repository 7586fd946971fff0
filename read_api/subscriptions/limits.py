"""How much one connection and one subscriber may hold on the server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SubscriptionLimits:
    """Per-connection and per-subscriber bounds, with the slow-consumer policy they feed.

    * ``per_connection``: operations one websocket may have running; one more
      gets an ``error`` message (code ``TOO_MANY_SUBSCRIPTIONS``) and the
      connection stays open.
    * ``events_queue``: results an ``events`` subscriber may have waiting for
      its socket; one more drops it with ``SLOW_CONSUMER`` (it resubscribes
      with ``after:`` its last position and misses nothing).
      ``deviceUpdated``/``fleetUpdated`` keep one pending snapshot, the latest.
    * ``live_backlog``: commits a shared ``events`` execution may lag behind
      the live feed before it fails with ``SLOW_CONSUMER`` (CPU starvation only).
    """

    per_connection: int = 100
    events_queue: int = 1_000
    live_backlog: int = 10_000

    def __post_init__(self) -> None:
        for name in ("per_connection", "events_queue", "live_backlog"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
