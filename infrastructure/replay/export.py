"""Exporting the event log to NDJSON: one line per commit, in position order.

Each line is a JSON object with exactly these fields, in this order::

    {"position": 1, "tenant": "acme", "type": "device", "id": "<uuid>",
     "idempotency_key": "k-1" | null, "metadata": {"name": "value", ...},
     "events": [{"version": 1, "topic": "domain.device:Device.Registered",
                 "state": "<base64>"}, ...]}

``state`` is the stored bytes as they are, compressed and encrypted or not, so
exporting needs no key and importing restores exactly what was written.

``position`` is the commit's ordinal in the export (1, 2, 3...), not its
position in the source store: a store can have gaps (JetStream sequences
taken by messages since removed), while an import numbers commits densely.
Renumbering makes the file a pure function of the commits and their order,
so exporting, importing into an empty store and exporting again gives the
same bytes. Metadata keys are sorted for the same reason.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Callable
from typing import BinaryIO

import orjson

from infrastructure.eventstore.port import EventStore, EventStoreError, RecordedCommit


class ExportFailed(Exception):
    """The log holds a commit that cannot be read, so it cannot be exported whole."""


def commit_line(position: int, commit: RecordedCommit) -> bytes:
    """One commit as an NDJSON line (with its newline)."""
    ref = commit.ref
    line = {
        "position": position,
        "tenant": ref.tenant,
        "type": ref.type,
        "id": str(ref.id),
        "idempotency_key": commit.idempotency_key,
        "metadata": dict(sorted(commit.metadata.items())),
        "events": [
            {
                "version": event.originator_version,
                "topic": event.topic,
                "state": base64.b64encode(event.state).decode("ascii"),
            }
            for event in commit.events
        ],
    }
    return orjson.dumps(line) + b"\n"


async def export_commits(
    store: EventStore,
    out: BinaryIO,
    *,
    on_commit: Callable[[RecordedCommit], None] | None = None,
) -> tuple[int, int]:
    """Write every commit up to the current head to ``out``; returns (commits, events)."""
    commits = events = last = 0
    log = store.read_all()
    try:
        while True:
            try:
                commit = await anext(log)
            except StopAsyncIteration:
                break
            except EventStoreError:
                raise
            except Exception as err:  # a message the store cannot decode
                raise ExportFailed(
                    f"the commit after position {last} cannot be read ({err!r}); "
                    "`vigil events verify` lists every bad commit"
                ) from err
            last = commit.position
            commits += 1
            events += len(commit.events)
            out.write(commit_line(commits, commit))
            if on_commit is not None:
                on_commit(commit)
    finally:
        if isinstance(log, AsyncGenerator):
            await log.aclose()
    return commits, events
