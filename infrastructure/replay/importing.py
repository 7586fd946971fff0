"""Importing an NDJSON export (see ``export``) into an empty event store.

All or nothing up to the store's own limits: the target must be empty and
the whole file is checked before the first append (JSON, fields, types,
positions rising, versions contiguous from 1 per aggregate, idempotency keys
unique per aggregate). Commits are then appended one by one, in file order,
each with the version it expects, so the new store's order is the file's.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent

from infrastructure.eventstore.jetstream import aggregate_subject
from infrastructure.eventstore.port import EventStore, EventStoreError, NewCommit, StreamRef

_FIELDS = ("position", "tenant", "type", "id", "idempotency_key", "metadata", "events")
_EVENT_FIELDS = ("version", "topic", "state")
_MAX_PROBLEMS = 20


class ImportRefused(Exception):
    """Nothing was written: the target is not empty, or the file has problems."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ImportFailed(Exception):
    """The store failed part-way: some commits were written, the rest were not."""


class BadLine(ValueError):
    def __init__(self, number: int, problem: str) -> None:
        super().__init__(f"line {number}: {problem}")


@dataclass
class FileSummary:
    commits: int = 0
    events: int = 0
    versions: dict[StreamRef, int] = field(default_factory=dict)


def parse_line(number: int, line: bytes) -> tuple[int, NewCommit]:
    """The export position and the commit on one line; raises ``BadLine``."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise BadLine(number, f"not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise BadLine(number, "not a JSON object")
    missing = [name for name in _FIELDS if name not in obj]
    if missing:
        raise BadLine(number, f"missing field(s) {', '.join(missing)}")
    extra = sorted(set(obj) - set(_FIELDS))
    if extra:
        raise BadLine(number, f"unexpected field(s) {', '.join(extra)}")
    position, key, metadata = obj["position"], obj["idempotency_key"], obj["metadata"]
    if not _is_int(position) or position < 1:
        raise BadLine(number, f"position must be a positive integer, got {position!r}")
    ref = _ref(number, obj["tenant"], obj["type"], obj["id"])
    if key is not None and (not isinstance(key, str) or not key):
        raise BadLine(number, "idempotency_key must be a non-empty string or null")
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise BadLine(number, "metadata must be an object of strings")
    events = _events(number, ref, obj["events"])
    commit = NewCommit(ref, events[0].originator_version - 1, events, key, metadata)
    return position, commit


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ref(number: int, tenant: Any, type_: Any, id_: Any) -> StreamRef:
    if not isinstance(tenant, str) or not isinstance(type_, str) or not isinstance(id_, str):
        raise BadLine(number, "tenant, type and id must be strings")
    try:
        ref = StreamRef(tenant, type_, UUID(id_))
    except ValueError:
        raise BadLine(number, f"id {id_!r} is not a UUID") from None
    try:
        aggregate_subject("x", ref)
    except ValueError:
        raise BadLine(
            number, f"tenant {tenant!r} and type {type_!r} must match [A-Za-z0-9_-]+"
        ) from None
    return ref


def _events(number: int, ref: StreamRef, raw: Any) -> list[StoredEvent]:
    if not isinstance(raw, list) or not raw:
        raise BadLine(number, "events must be a non-empty list")
    events: list[StoredEvent] = []
    for index, event in enumerate(raw, start=1):
        where = f"event {index}"
        if not isinstance(event, dict) or sorted(event) != sorted(_EVENT_FIELDS):
            raise BadLine(number, f"{where} must have exactly the fields version, topic, state")
        version, topic, state = event["version"], event["topic"], event["state"]
        if not _is_int(version) or version < 1:
            raise BadLine(number, f"{where}: version must be a positive integer")
        if not isinstance(topic, str) or not topic:
            raise BadLine(number, f"{where}: topic must be a non-empty string")
        if not isinstance(state, str):
            raise BadLine(number, f"{where}: state must be a base64 string")
        try:
            data = base64.b64decode(state, validate=True)
        except binascii.Error:
            raise BadLine(number, f"{where}: state is not valid base64") from None
        if events and version != events[-1].originator_version + 1:
            raise BadLine(
                number,
                f"{where} has version {version} after {events[-1].originator_version}: "
                "versions in a commit must be contiguous",
            )
        events.append(StoredEvent(ref.id, version, topic, data))
    return events


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        yield from enumerate(handle, start=1)


def check_file(path: Path, *, on_line: Callable[[int], None] | None = None) -> FileSummary:
    """Check every line; raises ``ImportRefused`` listing the first problems found.

    ``on_line`` gets each line's size in bytes, for progress.
    """
    summary = FileSummary()
    keys: set[tuple[StreamRef, str]] = set()
    problems: list[str] = []
    last_position = 0
    for number, line in _lines(path):
        if on_line is not None:
            on_line(len(line))
        try:
            position, commit = parse_line(number, line)
            if position <= last_position:
                raise BadLine(number, f"position {position} does not follow {last_position}")
            last_position = position
            _check_continues(number, commit, summary.versions, keys)
        except BadLine as err:
            problems.append(str(err))
            if len(problems) >= _MAX_PROBLEMS:
                problems.append("... stopped after the first problems")
                break
            continue
        summary.versions[commit.ref] = commit.expected_version + len(commit.events)
        summary.commits += 1
        summary.events += len(commit.events)
    if problems:
        raise ImportRefused(problems)
    return summary


def _check_continues(
    number: int,
    commit: NewCommit,
    versions: dict[StreamRef, int],
    keys: set[tuple[StreamRef, str]],
) -> None:
    """The commit picks up where its aggregate's last one ended, with a key of its own."""
    ref, current = commit.ref, versions.get(commit.ref, 0)
    if commit.expected_version != current:
        after = f"its last commit ended at {current}" if current else "has no earlier commit"
        raise BadLine(
            number,
            f"{ref} starts at version {commit.expected_version + 1} but {after} "
            "(versions must be contiguous from 1)",
        )
    key = commit.idempotency_key
    if key is not None:
        if (ref, key) in keys:
            raise BadLine(number, f"{ref} uses idempotency key {key!r} twice")
        keys.add((ref, key))


async def ensure_empty(store: EventStore) -> None:
    head = await store.head_position()
    if head:
        raise ImportRefused(
            [
                f"the target store is not empty (its last position is {head}); import only "
                "into a new store (for JetStream: new VIGIL_STREAM and VIGIL_SUBJECT_PREFIX "
                "names, or delete the stream first)"
            ]
        )


async def write_commits(
    store: EventStore,
    path: Path,
    summary: FileSummary,
    *,
    on_commit: Callable[[NewCommit], None] | None = None,
) -> None:
    """Append the commits of a file ``check_file`` passed, in order, to the empty ``store``."""
    await ensure_empty(store)  # nobody wrote since we looked
    for written, (number, line) in enumerate(_lines(path)):
        _, commit = parse_line(number, line)
        try:
            result = await store.append(commit)
        except EventStoreError as err:
            raise ImportFailed(
                f"line {number}: {err}; {written} of {summary.commits} commits were written, "
                "so the target holds a partial import: delete it before importing again"
            ) from err
        if result.duplicate:
            raise ImportFailed(f"line {number}: the store answered with an earlier commit")
        if on_commit is not None:
            on_commit(commit)


async def import_file(
    store: EventStore,
    path: Path,
    *,
    on_line: Callable[[int], None] | None = None,
    on_commit: Callable[[NewCommit], None] | None = None,
) -> FileSummary:
    """Refuse a non-empty ``store``, check all of ``path``, then append its commits."""
    await ensure_empty(store)
    summary = check_file(path, on_line=on_line)
    await write_commits(store, path, summary, on_commit=on_commit)
    return summary
