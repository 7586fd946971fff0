"""graphql-transport-ws with authentication at connection_init and shared executions.

``SubscriptionsMixin`` goes in front of strawberry's ``GraphQL`` view class:

* ``connection_init`` must carry ``{"authorization": "Bearer <token>"}`` (or
  the handshake an ``Authorization`` header); anything else closes the socket
  with 4403 Forbidden, as the protocol's reference server does. The connection's
  context is then built for that principal by ``subscription_context``.
* ``deviceUpdated``, ``fleetUpdated`` and ``events`` operations join the hub's
  shared execution for their key instead of running one execution each; any
  other operation runs as strawberry runs it.
* A connection may run ``SubscriptionLimits.per_connection`` operations.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import orjson
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.websockets import WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    Message,
    SubscribeMessage,
)
from strawberry.types.execution import PreExecutionError

from commands.auth import Authenticator, AuthError, Principal
from read_api.subscriptions.hub import ExecutionFailed, SubscriptionKey
from read_api.subscriptions.queues import Member, Outbox, Policy, error_payload

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from starlette.websockets import WebSocket

    from read_api.subscriptions.service import SubscriptionHub

SHARED_FIELDS = {"deviceUpdated": Policy.COALESCE, "fleetUpdated": Policy.COALESCE}
SHARED_FIELDS["events"] = Policy.STRICT


class _Documents:
    """Which policy, if any, an operation's text is shared under; parsed once per text."""

    def __init__(self, size: int = 1_000) -> None:
        self._size = size
        self._policies: OrderedDict[tuple[str, str | None], Policy | None] = OrderedDict()

    def policy(self, query: str, operation_name: str | None) -> Policy | None:
        key = (query, operation_name)
        if key in self._policies:
            self._policies.move_to_end(key)
            return self._policies[key]
        policy = _shared_policy(query, operation_name)
        self._policies[key] = policy
        if len(self._policies) > self._size:
            self._policies.popitem(last=False)
        return policy


def _shared_policy(query: str, operation_name: str | None) -> Policy | None:
    try:
        document = parse(query)
    except GraphQLError:
        return None  # strawberry answers syntax errors as the protocol says
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation is not OperationType.SUBSCRIPTION:
        return None
    selections = operations[0].selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    field = selections[0]
    if field.directives:
        return None
    return SHARED_FIELDS.get(field.name.value)


_DOCUMENTS = _Documents()


class HubTransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """strawberry's handler with token auth at connection_init and hub-shared executions."""

    outbox: Outbox | None = None
    hub: SubscriptionHub | None = None

    @property
    def _request(self) -> WebSocket:
        return self.websocket.ws  # type: ignore[attr-defined]

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if self.connection_timed_out:
            return
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
        payload = message.get("payload") or {}
        if not isinstance(payload, dict):
            await self.websocket.close(code=4400, reason="Invalid connection init payload")
            return
        if self.connection_init_received:
            await self.websocket.close(code=4429, reason="Too many initialisation requests")
            return
        self.connection_init_received = True
        view: SubscriptionsMixin = self.view  # type: ignore[assignment]
        request = self._request
        authorization = payload.get("authorization") or payload.get("Authorization")
        if not isinstance(authorization, str):
            authorization = request.headers.get("authorization")
        try:
            principal = view.subscription_authenticator(request).authenticate(authorization)
        except AuthError:
            await self.websocket.close(code=4403, reason="Forbidden")
            return
        self.hub = view.subscription_hub(request)
        self.max_subscriptions_per_connection = None  # the hub's limit, checked first, rules
        self.context = await view.subscription_context(request, principal)
        self.outbox = Outbox(request.send_text)
        self.outbox.start()
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not self.connection_acknowledged or self.hub is None:
            await self.websocket.close(code=4401, reason="Unauthorized")
            return
        op_id = message["id"]
        if op_id in self.operations:
            await self.websocket.close(code=4409, reason=f"Subscriber for {op_id} already exists")
            return
        limit = self.hub.limits.per_connection
        if len(self.operations) >= limit:
            errors = error_payload(
                f"at most {limit} subscriptions per connection", "TOO_MANY_SUBSCRIPTIONS"
            )
            refusal = ErrorMessage(id=op_id, type="error", payload=errors)  # type: ignore[typeddict-item]
            await self.send_message(refusal)
            return
        payload = message["payload"]
        policy = _DOCUMENTS.policy(payload["query"], payload.get("operationName"))
        if policy is None or not self.hub.share_executions:
            await super().handle_subscribe(message)
            return
        operation: Operation[Any, Any] = Operation(
            self, op_id, payload["query"], payload.get("variables"), payload.get("operationName")
        )
        self.operations[op_id] = operation
        # Joined before the next message is read: a client that sends ``ping``
        # after ``subscribe`` knows, on ``pong``, that it is subscribed.
        member = self._join(operation, policy)
        operation.task = asyncio.create_task(self._until_finished(member))
        operation.task.add_done_callback(self._task_done)

    def _join(self, operation: Operation[Any, Any], policy: Policy) -> Member:
        assert self.hub is not None and self.outbox is not None
        principal: Principal = self.context.principal
        member = Member(operation.id, self.outbox, policy, self.hub.limits.events_queue)

        def forget() -> None:  # before the terminal frame goes out: the id is free again
            if self.operations.get(operation.id) is operation:
                del self.operations[operation.id]

        member.on_end = forget
        key = SubscriptionKey.of(
            principal.tenant,
            principal.role.name,
            operation.query,
            operation.operation_name,
            operation.variables,
        )
        context, schema, view, request = self.context, self.schema, self.view, self._request

        async def produce() -> AsyncGenerator[str, None]:
            # Results are formatted by the view's process_result, as over HTTP (error
            # codes, masked bugs), once per event for every subscriber of the key.
            source = await schema.subscribe(
                operation.query,
                variable_values=operation.variables,
                context_value=context,
                operation_name=operation.operation_name,
            )
            async with contextlib.aclosing(source):
                first = True
                async for result in source:
                    payload = await view.process_result(request, result)
                    if first and isinstance(result, PreExecutionError):
                        raise ExecutionFailed(orjson.dumps(payload.get("errors", [])).decode())
                    first = False
                    yield orjson.dumps(payload).decode()

        self.hub.fanout.join(key, member, policy, produce)
        return member

    async def _until_finished(self, member: Member) -> None:
        try:
            await member.finished
        finally:
            member.cancel()  # the client completed or left: nothing more goes out

    async def send_message(self, message: Message) -> None:
        # Always a text frame: the protocol's messages are JSON text, and a view whose
        # encode_json returns bytes (orjson) would otherwise send binary frames.
        try:
            await self._request.send_text(orjson.dumps(message).decode())
        except WebSocketDisconnect as err:
            raise WebSocketDisconnected from err

    async def shutdown(self) -> None:
        await super().shutdown()
        if self.outbox is not None:
            await self.outbox.close()


class SubscriptionContext:
    """The default per-connection context: who subscribes, and the hub serving them."""

    __slots__ = ("principal", "request", "subscriptions")

    def __init__(self, principal: Principal, request: Any, subscriptions: Any) -> None:
        self.principal = principal
        self.request = request
        self.subscriptions = subscriptions

    @property
    def tenant(self) -> str:
        return self.principal.tenant


class SubscriptionsMixin:
    """Put before strawberry's ``GraphQL`` in the view's bases; override the hooks to taste.

    Defaults read ``app.state.subscriptions`` (the hub) and
    ``app.state.services.authenticator`` from the Starlette app.
    """

    graphql_transport_ws_handler_class: type[BaseGraphQLTransportWSHandler[Any, Any]] = (
        HubTransportWSHandler
    )

    def subscription_hub(self, request: WebSocket) -> SubscriptionHub:
        return request.app.state.subscriptions

    async def pick_websocket_subprotocol(self, request: WebSocket) -> str | None:
        # Only graphql-transport-ws: the legacy graphql-ws handler knows nothing
        # of connection_init auth, shared executions or limits (others get 4406).
        offered = request.scope.get("subprotocols", ())
        return GRAPHQL_TRANSPORT_WS_PROTOCOL if GRAPHQL_TRANSPORT_WS_PROTOCOL in offered else None

    def subscription_authenticator(self, request: WebSocket) -> Authenticator:
        return request.app.state.services.authenticator

    async def subscription_context(self, request: WebSocket, principal: Principal) -> Any:
        """The ``info.context`` of this connection's operations; must expose ``principal``."""
        return SubscriptionContext(principal, request, self.subscription_hub(request))
