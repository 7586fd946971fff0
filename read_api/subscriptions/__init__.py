"""GraphQL subscriptions: deviceUpdated, fleetUpdated and events, fanned out by a hub.

Wiring (see ``ws.SubscriptionsMixin`` and ``service.build_hub``):

* the composition root builds one hub per API process with ``build_hub`` and
  keeps it in ``app.state.subscriptions``, ``start()``-ed and ``stop()``-ped by
  the lifespan;
* the GraphQL view puts ``SubscriptionsMixin`` before strawberry's ``GraphQL``
  and overrides ``subscription_context`` to build its own per-connection context
  (which must expose ``principal`` and ``request``).
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
