"""One batch through a group of projections, inside one transaction the caller owns.

The live projections share one consumer: a batch is fetched and decoded once,
each projection applies the commits it reads, and every row, dead letter and
checkpoint of the batch is written in the caller's transaction. The caller
commits, then acknowledges, then publishes change notices.

Each projection keeps its own checkpoint and skips commits at or below it.
That is what makes a redelivered batch apply once (invariant 1), lets a new
projection join the group and catch up from 0 while the others skip, and lets
a rebuild swap in tables that are ahead of the group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from infrastructure.changes import ChangeNotice
from projections import checkpoints
from projections.envelope import BadCommit, CommitDecoder, Envelope, RawCommit
from projections.projection import Outcome, Projection


@dataclass(slots=True)
class BatchResult:
    """What a batch did, per projection, once written (not yet committed)."""

    last_position: int
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)  # checkpoint label -> position

    @property
    def applied(self) -> int:
        return sum(outcome.applied for outcome in self.outcomes.values())


class ProjectionGroup:
    """Projections applied together, batch by batch, from one stream of commits."""

    def __init__(self, projections: Sequence[Projection], decoder: CommitDecoder) -> None:
        if not projections:
            raise ValueError("a projection group needs at least one projection")
        self.projections = list(projections)
        self.decoder = decoder
        self.labels = [p.label for p in self.projections]
        self._generations: dict[str, int] = {}

    async def prepare(self, conn: AsyncConnection) -> int:
        """Create missing checkpoints; returns the position the group must resume after."""
        await checkpoints.ensure(conn, self.labels)
        found = await checkpoints.lock(conn, self.labels)
        return min(found[label].position for label in self.labels)

    async def apply(self, conn: AsyncConnection, commits: Sequence[RawCommit]) -> BatchResult:
        """Apply ``commits`` (in stream order) and advance the checkpoints, uncommitted."""
        found = await checkpoints.lock(conn, self.labels)
        for projection in self.projections:
            generation = found[projection.label].generation
            if self._generations.get(projection.label) != generation:
                projection.reset()  # a rebuild swapped its tables: what it remembers is stale
                self._generations[projection.label] = generation
        floor = min(found[label].position for label in self.labels)
        decode = self.decoder.decode
        decoded = [(c.position, decode(c)) for c in commits if c.position > floor]
        result = BatchResult(last_position=commits[-1].position if commits else floor)
        letters = []
        for projection in self.projections:
            own = found[projection.label].position
            envelopes, bad = _select(decoded, own, projection.aggregate_types)
            outcome = await projection.apply(conn, envelopes, bad)
            result.outcomes[projection.label] = outcome
            result.positions[projection.label] = max(own, result.last_position)
            letters.extend(outcome.dead_letters)
        await checkpoints.park(conn, letters)
        await checkpoints.advance(conn, result.positions)
        return result

    def committed(self, result: BatchResult) -> None:
        for projection in self.projections:
            outcome = result.outcomes.get(projection.label)
            if outcome is not None:
                projection.committed(outcome)

    def reset(self) -> None:
        """Forget every projection's remembered rows (after a failed transaction, say)."""
        for projection in self.projections:
            projection.reset()
        self._generations.clear()

    def notices(self, result: BatchResult) -> list[ChangeNotice]:
        """One notice per aggregate and projection the batch changed, in stream order."""
        notices = [
            ChangeNotice(
                projection=projection.name,
                tenant=touched.ref.tenant,
                aggregate_type=touched.ref.type,
                aggregate_id=touched.ref.id,
                version=touched.version,
                position=touched.position,
            )
            for projection in self.projections
            for touched in result.outcomes[projection.label].touched
        ]
        notices.sort(key=lambda notice: notice.position)
        return notices


def _select(
    decoded: Sequence[tuple[int, list[Envelope] | BadCommit | None]],
    after: int,
    types: frozenset[str],
) -> tuple[list[Envelope], list[BadCommit]]:
    envelopes: list[Envelope] = []
    bad: list[BadCommit] = []
    for position, item in decoded:
        if position <= after or item is None:
            continue
        if isinstance(item, BadCommit):
            if item.ref.type in types:
                bad.append(item)
        elif item and item[0].ref.type in types:
            envelopes.extend(item)
    return envelopes, bad
