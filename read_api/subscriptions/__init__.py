"""GraphQL subscriptions: deviceUpdated, fleetUpdated and events().

Skeleton so ``read_api.schema`` can import ``Subscription`` while the fan-out
hub is being built; the fields below are replaced by hub-backed resolvers.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Placeholder until the subscription hub lands.")
    async def heartbeat(self) -> AsyncGenerator[int, None]:
        yield 0


__all__ = ["Subscription"]
