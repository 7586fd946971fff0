"""Batches through a group of projections: prepared in memory, written in one transaction.

The live projections share one consumer: a batch is decoded once, each
projection folds the commits it reads (``prepare``, no I/O), and every row,
dead letter and checkpoint of the batch is written in the caller's
transaction (``write``). The caller commits, then acknowledges, then
publishes change notices. Because ``prepare`` needs no database, the caller
can prepare batch N+1 while batch N is still being written.

Each projection keeps its own checkpoint and skips commits at or below it.
That is what makes a redelivered batch apply once (invariant 1), lets a new
projection join the group and catch up from 0 while the others skip, and lets
a rebuild swap in tables that are ahead of the group.

``prepare`` works from the checkpoints the group expects after the batches
before it. ``write`` locks the real ones first and raises ``StaleBatch`` if
they are not what was expected (a rebuild swapped tables in meanwhile): the
caller then starts over from the database, with fresh projections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from infrastructure.changes import ChangeNotice
from projections import checkpoints
from projections.envelope import BadCommit, CommitDecoder, Envelope, RawCommit
from projections.projection import Outcome, Prepared, Projection

_SLICE = 250  # commits folded between two chances for the write and the reader to run


class StaleBatch(Exception):
    """The checkpoints moved under a prepared batch (a rebuild swapped tables in)."""


@dataclass(slots=True)
class PreparedBatch:
    """A batch folded by every projection, with the checkpoints it was folded from."""

    last_position: int
    floors: dict[str, int]  # label -> checkpoint the batch starts after
    parts: dict[str, Prepared] = field(default_factory=dict)


@dataclass(slots=True)
class BatchResult:
    """What a batch did, per projection, once written (not yet committed)."""

    last_position: int
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)  # checkpoint label -> position

    @property
    def applied(self) -> int:
        return sum(outcome.applied for outcome in self.outcomes.values())


@dataclass(slots=True)
class _Decoded:
    envelopes: list[Envelope] = field(default_factory=list)
    bad: list[BadCommit] = field(default_factory=list)


class ProjectionGroup:
    """Projections applied together, batch by batch, from one stream of commits.

    One instance lives for one projector session: it remembers the checkpoints
    and generations it started from and the rows its projections folded.
    """

    def __init__(self, projections: Sequence[Projection], decoder: CommitDecoder) -> None:
        if not projections:
            raise ValueError("a projection group needs at least one projection")
        self.projections = list(projections)
        self.decoder = decoder
        self.labels = [p.label for p in self.projections]
        self._expected: dict[str, int] = {}
        self._generations: dict[str, int] = {}

    async def start(self, conn: AsyncConnection) -> int:
        """Read (creating if missing) the checkpoints; returns the position to resume after."""
        await checkpoints.ensure(conn, self.labels)
        found = await checkpoints.lock(conn, self.labels)
        self._expected = {label: found[label].position for label in self.labels}
        self._generations = {label: found[label].generation for label in self.labels}
        return min(self._expected.values())

    async def prepare(self, commits: Sequence[RawCommit]) -> PreparedBatch:
        """Fold ``commits`` (in stream order) in memory, a slice at a time.

        Between slices the event loop runs whatever else is ready, above all
        the previous batch's write, which then keeps the database busy while
        this batch is computed.
        """
        floors = dict(self._expected)
        floor = min(floors.values())
        last = commits[-1].position if commits else floor
        batch = PreparedBatch(last_position=last, floors=floors)
        for start in range(0, len(commits), _SLICE):
            decoded = self._decode(commits[start : start + _SLICE], floor)
            for projection in self.projections:
                label = projection.label
                envelopes, bad = _select(decoded, floors[label], floor, projection.aggregate_types)
                batch.parts[label] = projection.prepare(envelopes, bad, batch.parts.get(label))
            await asyncio.sleep(0)
        if not commits:
            for projection in self.projections:
                batch.parts[projection.label] = projection.prepare([], [], None)
        self._expected = {label: max(own, last) for label, own in floors.items()}
        return batch

    async def write(self, conn: AsyncConnection, batch: PreparedBatch) -> BatchResult:
        """Write a prepared batch and advance the checkpoints, in the caller's transaction."""
        found = await checkpoints.lock(conn, self.labels)
        for label in self.labels:
            now = found[label]
            if now.position != batch.floors[label] or now.generation != self._generations[label]:
                raise StaleBatch(
                    f"checkpoint {label} is at {now.position} (generation {now.generation}), "
                    f"the batch was prepared after {batch.floors[label]}"
                )
        result = BatchResult(last_position=batch.last_position)
        letters = []
        for projection in self.projections:
            label = projection.label
            outcome = await projection.write(conn, batch.parts[label])
            result.outcomes[label] = outcome
            result.positions[label] = max(batch.floors[label], batch.last_position)
            letters.extend(outcome.dead_letters)
        await checkpoints.park(conn, letters)
        await checkpoints.advance(conn, result.positions)
        return result

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

    def _decode(self, commits: Sequence[RawCommit], floor: int) -> dict[str, _Decoded]:
        """Each commit above ``floor`` decoded once, bucketed by aggregate type in stream order."""
        buckets: dict[str, _Decoded] = {}
        decode = self.decoder.decode
        for commit in commits:
            if commit.position <= floor:
                continue
            item = decode(commit)
            if item is None:
                continue  # not a Vigil commit
            kind = item.ref.type if isinstance(item, BadCommit) else item[0].ref.type
            bucket = buckets.get(kind)
            if bucket is None:
                bucket = buckets[kind] = _Decoded()
            if isinstance(item, BadCommit):
                bucket.bad.append(item)
            else:
                bucket.envelopes.extend(item)
        return buckets


def _select(
    decoded: dict[str, _Decoded], after: int, floor: int, types: frozenset[str]
) -> tuple[list[Envelope], list[BadCommit]]:
    """A projection's share of the batch: its aggregate types, above its own checkpoint."""
    envelopes: list[Envelope] = []
    bad: list[BadCommit] = []
    for kind in sorted(types & decoded.keys()):
        bucket = decoded[kind]
        if after > floor:  # this projection is ahead of the group (a rebuild swapped it in)
            envelopes.extend(e for e in bucket.envelopes if e.position > after)
            bad.extend(b for b in bucket.bad if b.position > after)
        else:
            envelopes.extend(bucket.envelopes)
            bad.extend(bucket.bad)
    return envelopes, bad
