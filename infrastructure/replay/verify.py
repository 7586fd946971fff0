"""Checking the event log: every commit readable, every event decodable, versions whole.

``verify_log`` reads the raw messages of the stream (so one bad message is
reported and the scan goes on) and checks, per commit:

* it is a Vigil commit: an aggregate subject, a msgpack body whose event
  versions are contiguous and agree with the headers;
* each event decodes through the mapper, so compression and the encryption
  key must be configured as the writers had them;
* per aggregate, versions run 1, 2, 3... with no gap and no repeat.

The report keeps, per aggregate, what the log says at each commit, which is
what ``readmodels.compare`` checks the read models against.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.persistence import Mapper

from infrastructure.eventstore.jetstream import H_VERSION
from infrastructure.eventstore.port import RecordedCommit, StreamRef
from infrastructure.replay.stream import CorruptCommit, RawCommit, decode_commit, ref_of

CORRUPT_COMMIT = "corrupt commit"
UNDECODABLE_EVENT = "undecodable event"
VERSION_GAP = "version gap"
VERSION_REPEAT = "version repeat"
READ_MODEL = "read model"

_CODEC_HINT = (
    "are VIGIL_EVENT_COMPRESSION and VIGIL_CIPHER_KEY set as they were when it was written?"
)


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    detail: str
    position: int | None = None
    ref: StreamRef | None = None

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                f"position {self.position}" if self.position is not None else "",
                str(self.ref) if self.ref is not None else "",
            )
            if part
        )
        return f"{self.kind}: {where + ': ' if where else ''}{self.detail}"


@dataclass(slots=True)
class AggregateLog:
    """One aggregate as the log has it: after each commit, its version and event count."""

    positions: list[int] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    @property
    def version(self) -> int:
        return self.versions[-1] if self.versions else 0

    def add(self, position: int, version: int, events: int) -> None:
        self.positions.append(position)
        self.versions.append(version)
        self.counts.append((self.counts[-1] if self.counts else 0) + events)

    def as_of(self, position: int) -> tuple[int, int]:
        """(version, events so far) after the last commit at or before ``position``."""
        index = bisect.bisect_right(self.positions, position)
        return (self.versions[index - 1], self.counts[index - 1]) if index else (0, 0)

    @property
    def first_position(self) -> int:
        return self.positions[0]


@dataclass(slots=True)
class Report:
    commits: int = 0
    events: int = 0
    head: int = 0
    aggregates: dict[StreamRef, AggregateLog] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_log(
    raws: AsyncIterable[RawCommit],
    prefix: str,
    mapper: Mapper[UUID],
    *,
    on_commit: Callable[[RawCommit], None] | None = None,
) -> Report:
    """Check every message of the stream; problems are collected, never raised."""
    report = Report()
    async for raw in raws:
        report.commits += 1
        report.head = raw.position
        try:
            commit = decode_commit(prefix, raw)
        except CorruptCommit as err:
            _corrupt(report, prefix, raw, err)
        else:
            _check_versions(report, commit)
            _check_events(report, mapper, commit)
        if on_commit is not None:
            on_commit(raw)
    return report


def _corrupt(report: Report, prefix: str, raw: RawCommit, err: CorruptCommit) -> None:
    ref = ref_of(prefix, raw.subject)
    report.problems.append(Problem(CORRUPT_COMMIT, err.reason, raw.position, ref))
    if ref is None:
        return
    # Take the headers' word for where the aggregate stands, so one bad message
    # is one problem rather than a gap reported at the next commit as well.
    try:
        version = int(raw.headers[H_VERSION])
    except (KeyError, ValueError):
        return
    log = report.aggregates.setdefault(ref, AggregateLog())
    if version > log.version:
        log.add(raw.position, version, version - log.version)


def _check_versions(report: Report, commit: RecordedCommit) -> None:
    ref = commit.ref
    log = report.aggregates.setdefault(ref, AggregateLog())
    expected = log.version + 1
    first = commit.first_version
    if first > expected:
        missing = (
            f"version {expected}" if first == expected + 1 else f"versions {expected}-{first - 1}"
        )
        detail = (
            f"{missing} missing: the commit starts at {first}, the aggregate was at {expected - 1}"
        )
        report.problems.append(Problem(VERSION_GAP, detail, commit.position, ref))
    elif first < expected:
        detail = (
            f"the commit starts at version {first}, the aggregate was already at {expected - 1}"
        )
        report.problems.append(Problem(VERSION_REPEAT, detail, commit.position, ref))
    report.events += len(commit.events)
    log.add(commit.position, max(commit.version, log.version), len(commit.events))


def _check_events(report: Report, mapper: Mapper[UUID], commit: RecordedCommit) -> None:
    for stored in commit.events:
        try:
            mapper.to_domain_event(stored)
        except Exception as err:  # codec, cipher, unknown topic: all mean "cannot replay"
            version, topic = stored.originator_version, stored.topic
            detail = f"event version {version} ({topic}): {err!r}; {_CODEC_HINT}"
            report.problems.append(Problem(UNDECODABLE_EVENT, detail, commit.position, commit.ref))
