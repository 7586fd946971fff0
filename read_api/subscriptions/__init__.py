"""GraphQL subscriptions: deviceUpdated, fleetUpdated and events, fanned out by a hub.

Wiring, once per API process (``service.build_hub``, ``ws.SubscriptionsMixin``):

* The composition root builds the hub with the event store, the mapper, the
  change bus (``infrastructure.changes.LocalChangeBus`` embedded, else
  ``redis_bus.RedisChangeBus`` shared with the projector), the NATS client and
  the read-model engine, keeps it in ``app.state.subscriptions``, and calls
  ``await hub.start()`` / ``await hub.stop()`` in the lifespan.
* The GraphQL view puts ``SubscriptionsMixin`` before strawberry's ``GraphQL``
  and overrides ``subscription_context(request, principal)``; the context it
  returns must expose ``principal`` and ``request`` (the hub is found at
  ``request.app.state.subscriptions``) and may offer ``renew()`` to drop
  per-request caches before each event, since it lives as long as the socket.
"""

from __future__ import annotations

from read_api.subscriptions.limits import SubscriptionLimits
from read_api.subscriptions.schema import Subscription
from read_api.subscriptions.service import SubscriptionHub, build_hub
from read_api.subscriptions.ws import (
    HubTransportWSHandler,
    SubscriptionContext,
    SubscriptionsMixin,
)

__all__ = [
    "HubTransportWSHandler",
    "Subscription",
    "SubscriptionContext",
    "SubscriptionHub",
    "SubscriptionLimits",
    "SubscriptionsMixin",
    "build_hub",
]
