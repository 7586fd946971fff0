"""A Starlette app serving only the subscriptions, over graphql-transport-ws at ``/graphql``.

The full API mounts ``Subscription`` in the read API's schema and view; this
app is the same hub and handler with nothing else around them, which is what
the subscription tests and the fan-out benchmark exercise.
"""

from __future__ import annotations

from typing import Any

import strawberry
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from commands.auth import Authenticator
from read_api.subscriptions.schema import Subscription
from read_api.subscriptions.service import SubscriptionHub
from read_api.subscriptions.ws import SubscriptionGraphQL


@strawberry.type
class Query:
    @strawberry.field(description="Whether this process serves subscriptions.")
    def subscriptions(self) -> bool:
        return True


schema = strawberry.Schema(query=Query, subscription=Subscription)


def subscriptions_app(
    hub: SubscriptionHub, authenticator: Authenticator, *, graphql_schema: Any = None
) -> Starlette:
    """The app; the caller starts and stops ``hub`` (it may outlive one app)."""

    class View(SubscriptionGraphQL):
        def subscription_authenticator(self, request: WebSocket) -> Authenticator:
            return authenticator

        def subscription_hub(self, request: WebSocket) -> SubscriptionHub:
            return hub

    view = View(graphql_schema or schema)
    app = Starlette(
        routes=[Route("/graphql", view, methods=["GET", "POST"]), WebSocketRoute("/graphql", view)]
    )
    app.state.subscriptions = hub
    return app
