"""The fan-out hub: one shared execution per subscription key.

A *key* is (tenant, role, query, operation name, variables): subscribers with
the same key would compute byte-identical results, so the hub runs the GraphQL
execution for a key once per source event, encodes the result once, and hands
the encoded payload to every subscriber of the key (``queues.Member``). Role is
in the key because two roles may one day see different fields; it costs at
most one execution per role.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import orjson

from read_api.subscriptions.queues import Member, Policy, error_list

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SubscriptionKey:
    tenant: str
    role: str
    query: str
    operation_name: str | None
    variables: str  # canonical JSON

    @classmethod
    def of(
        cls,
        tenant: str,
        role: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> SubscriptionKey:
        canonical = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS).decode()
        return cls(tenant, role, query, operation_name, canonical)


class ExecutionFailed(Exception):
    """The shared execution ended with GraphQL errors (already a JSON list)."""

    def __init__(self, errors_json: str) -> None:
        super().__init__(errors_json)
        self.errors_json = errors_json


Producer = Callable[[], AsyncGenerator[str, None]]


class SharedExecution:
    """One GraphQL execution whose encoded results go to every member of its key."""

    def __init__(self, fanout: FanOut, key: SubscriptionKey, policy: Policy) -> None:
        self.fanout = fanout
        self.key = key
        self.policy = policy
        self.members: dict[Member, None] = {}  # insertion-ordered set
        self.emitted = 0
        self.latest: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def joinable(self) -> bool:
        # A snapshot stream can take members at any time (they get the latest
        # snapshot at once); a log stream only until it has emitted, so every
        # member sees the same complete sequence from its ``after`` position.
        return not self.closed and (self.policy is Policy.COALESCE or self.emitted == 0)

    def join(self, member: Member) -> None:
        member.execution = self
        self.members[member] = None
        if self.latest is not None:
            member.push(self.latest)

    def leave(self, member: Member) -> None:
        self.members.pop(member, None)
        member.execution = None
        if not self.members and not self.closed:
            self.close()

    def close(self) -> None:
        self.closed = True
        self.fanout._forget(self)
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    async def run(self, produce: Producer) -> None:
        try:
            async with contextlib.aclosing(produce()) as results:
                async for payload in results:
                    self.emitted += 1
                    if self.policy is Policy.COALESCE:
                        self.latest = payload
                    for member in list(self.members):
                        member.push(payload)
            ending: Callable[[Member], None] = Member.complete
        except ExecutionFailed as err:
            errors = err.errors_json
            ending = lambda member: member.fail(errors)  # noqa: E731
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("subscription execution failed: %s", self.key.query[:200])
            errors = error_list("subscription failed on the server", "INTERNAL")
            ending = lambda member: member.fail(errors)  # noqa: E731
        finally:
            if not self.closed:
                self.close()
        for member in list(self.members):
            ending(member)


class FanOut:
    """Registry of shared executions, keyed by ``SubscriptionKey``."""

    def __init__(self) -> None:
        self._joinable: dict[SubscriptionKey, SharedExecution] = {}  # the newest per key
        self._running: set[SharedExecution] = set()
        self.executions_started = 0

    def join(
        self, key: SubscriptionKey, member: Member, policy: Policy, produce: Producer
    ) -> SharedExecution:
        """Attach ``member`` to the execution for ``key``, starting one if none can take it."""
        execution = self._joinable.get(key)
        if execution is None or not execution.joinable:
            execution = SharedExecution(self, key, policy)
            self._joinable[key] = execution
            self._running.add(execution)
            self.executions_started += 1
            execution.join(member)
            execution.task = asyncio.create_task(execution.run(produce), name="subscription")
        else:
            execution.join(member)
        return execution

    def _forget(self, execution: SharedExecution) -> None:
        self._running.discard(execution)
        if self._joinable.get(execution.key) is execution:
            del self._joinable[execution.key]

    @property
    def execution_count(self) -> int:
        return len(self._running)

    @property
    def member_count(self) -> int:
        return sum(len(e.members) for e in self._running)

    async def close(self) -> None:
        executions = list(self._running)
        for execution in executions:
            execution.close()
        for execution in executions:
            if execution.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await execution.task
