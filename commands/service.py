"""Runs one command: load, check, decide, commit. The HTTP layer only translates.

Order matters for the invariants:

1. the per-aggregate lock, so one process never races itself;
2. the idempotency key is looked up *before* deciding: a retry must return the
   first result even if the aggregate has moved on since (invariant 3);
3. ``If-Match`` is checked against the loaded version, and JetStream re-checks
   it on append, so a stale decision can never land (invariant 2);
4. without ``If-Match`` a conflict caused by another process is retried on
   fresh state, because the caller did not ask to pin a version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from commands.metrics import CommandMetrics
from commands.spec import CommandSpec, Context
from domain.errors import AlreadyExists
from infrastructure.eventstore.port import CommitResult, ConcurrencyConflict, StreamRef
from infrastructure.repository import Repository

_CONFLICT_RETRIES = 3


class AggregateNotFound(Exception):
    def __init__(self, ref: StreamRef) -> None:
        super().__init__(f"{ref.type} {ref.id} not found")
        self.ref = ref


class VersionMismatch(Exception):
    """``If-Match`` named a version the aggregate is not at."""

    def __init__(self, ref: StreamRef, expected: int, current: int) -> None:
        super().__init__(f"{ref.type} {ref.id} is at version {current}, not {expected}")
        self.ref = ref
        self.expected = expected
        self.current = current


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    command: str
    result: CommitResult
    events: tuple[str, ...]  # event names; empty for an idempotent replay

    @property
    def aggregate_id(self) -> UUID:
        return self.result.ref.id

    def as_json(self) -> dict[str, Any]:
        """The response body, for orjson (which writes the UUID as its canonical string)."""
        return {
            "command": self.command,
            "aggregate_type": self.result.ref.type,
            "aggregate_id": self.result.ref.id,
            "version": self.result.version,
            "position": self.result.position,
            "event_count": self.result.event_count,
            "events": list(self.events),
            "duplicate": self.result.duplicate,
        }


class CommandService:
    def __init__(self, repository: Repository, metrics: CommandMetrics | None = None) -> None:
        self.repository = repository
        self.metrics = metrics or CommandMetrics()

    async def execute(
        self,
        spec: CommandSpec[Any],
        body: Any,
        ctx: Context,
        *,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> CommandOutcome:
        ref = StreamRef(ctx.tenant, spec.aggregate_type, spec.target(body, ctx.tenant))
        attempts = 0
        while True:
            attempts += 1
            try:
                return await self._attempt(
                    spec, body, ctx, ref, expected_version, idempotency_key, metadata
                )
            except ConcurrencyConflict as conflict:
                self.metrics.conflicts.labels(spec.name).inc()
                if expected_version is not None:
                    raise VersionMismatch(
                        ref, expected_version, conflict.current_version
                    ) from conflict
                if attempts >= _CONFLICT_RETRIES:
                    raise

    async def _attempt(
        self,
        spec: CommandSpec[Any],
        body: Any,
        ctx: Context,
        ref: StreamRef,
        expected_version: int | None,
        idempotency_key: str | None,
        metadata: dict[str, str] | None,
    ) -> CommandOutcome:
        repository = self.repository
        async with repository.lock(ref):
            loaded = await repository.load(ref)
            if idempotency_key is not None:
                earlier = loaded.keyed(idempotency_key)
                if earlier is not None:
                    return CommandOutcome(spec.name, earlier, ())
            if expected_version is not None and expected_version != loaded.version:
                raise VersionMismatch(ref, expected_version, loaded.version)
            if loaded.aggregate is None and not spec.creates:
                raise AggregateNotFound(ref)
            if loaded.aggregate is not None and spec.creates:
                raise AlreadyExists(f"{ref.type} {ref.id} already exists")
            try:
                aggregate = spec.handle(loaded.aggregate, body, ctx)
            except BaseException:
                repository.evict(ref)  # a failed decision may have touched the cached copy
                raise
            if loaded.aggregate is None:
                loaded.aggregate = aggregate
            events = aggregate.collect_events()
            started = time.perf_counter()
            result = await repository.save(
                loaded, events, idempotency_key=idempotency_key, metadata=metadata
            )
            self.metrics.append_seconds.observe(time.perf_counter() - started)
            names = () if result.duplicate else tuple(type(e).__name__ for e in events)
            return CommandOutcome(spec.name, result, names)
