"""What ``check_file`` refuses, line by line, before an import writes anything (no server)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from uuid import uuid4

import orjson
import pytest

from infrastructure.eventstore.memory import InMemoryEventStore
from infrastructure.replay.importing import ImportRefused, check_file, import_file

ID = str(uuid4())


def line(position: int = 1, first_version: int = 1, count: int = 1, **changes: Any) -> dict:
    obj: dict[str, Any] = {
        "position": position,
        "tenant": "acme",
        "type": "device",
        "id": ID,
        "idempotency_key": None,
        "metadata": {},
        "events": [
            {"version": v, "topic": "t:E", "state": base64.b64encode(b"s").decode()}
            for v in range(first_version, first_version + count)
        ],
    }
    obj.update(changes)
    return obj


def write(tmp_path: Path, *lines: dict | bytes) -> Path:
    path = tmp_path / "events.ndjson"
    raw = [item if isinstance(item, bytes) else orjson.dumps(item) for item in lines]
    path.write_bytes(b"".join(r + b"\n" for r in raw))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ImportRefused) as refused:
        check_file(path)
    return refused.value.problems


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        pytest.param(b"[1, 2]", "not a JSON object", id="not an object"),
        pytest.param(b"", "not valid JSON", id="blank line"),
        pytest.param({"position": 2}, "missing field(s) tenant, type, id", id="missing fields"),
        pytest.param(line(2, 2, extra=1), "unexpected field(s) extra", id="extra field"),
        pytest.param(line(0, 2), "position must be a positive integer", id="position 0"),
        pytest.param(line(2, 2, id="device-7"), "id 'device-7' is not a UUID", id="bad id"),
        pytest.param(line(2, 2, tenant="a.b"), "must match [A-Za-z0-9_-]+", id="tenant with a dot"),
        pytest.param(line(2, 2, type=3), "tenant, type and id must be strings", id="type not text"),
        pytest.param(line(2, 2, events=[]), "events must be a non-empty list", id="no events"),
        pytest.param(
            line(2, 2, metadata={"a": 1}), "metadata must be an object of strings", id="meta"
        ),
        pytest.param(
            line(2, 2, idempotency_key=""), "idempotency_key must be a non-empty", id="key"
        ),
        pytest.param(
            line(2, events=[{"version": 2, "topic": "t:E", "state": "%%%"}]),
            "event 1: state is not valid base64",
            id="bad base64",
        ),
        pytest.param(
            line(2, events=[{"version": 2, "topic": "t:E"}]),
            "event 1 must have exactly the fields version, topic, state",
            id="event without state",
        ),
        pytest.param(
            line(2, 2, id=str(uuid4())),
            "starts at version 2 but has no earlier commit",
            id="not at 1",
        ),
    ],
)
def test_a_bad_line_is_named_with_its_problem(tmp_path: Path, bad: dict | bytes, problem: str):
    path = write(tmp_path, line(), bad)

    [found] = problems_of(path)
    assert found.startswith("line 2: ") and problem in found, found


def test_versions_must_continue_where_the_aggregates_last_commit_ended(tmp_path: Path):
    path = write(tmp_path, line(1, 1, 2), line(2, 4))

    assert problems_of(path) == [
        f"line 2: acme/device/{ID} starts at version 4 but its last commit ended at 2 "
        "(versions must be contiguous from 1)"
    ]


def test_positions_must_rise(tmp_path: Path):
    path = write(tmp_path, line(5, 1), line(5, 2))

    assert problems_of(path) == ["line 2: position 5 does not follow 5"]


def test_an_idempotency_key_may_not_repeat_on_one_aggregate(tmp_path: Path):
    path = write(tmp_path, line(1, 1, idempotency_key="k"), line(2, 2, idempotency_key="k"))

    [problem] = problems_of(path)
    assert problem.startswith("line 2:") and "idempotency key 'k' twice" in problem


def test_a_file_full_of_problems_reports_the_first_twenty(tmp_path: Path):
    path = write(tmp_path, *([b"nope"] * 50))

    problems = problems_of(path)
    assert len(problems) == 21 and problems[-1].startswith("... stopped")


def test_a_good_file_is_summed_up(tmp_path: Path):
    other = str(uuid4())
    path = write(tmp_path, line(1, 1, 2), line(2, 1, 1, id=other), line(3, 3, 3))

    summary = check_file(path)

    assert (summary.commits, summary.events, len(summary.versions)) == (3, 6, 2)


async def test_the_in_memory_store_takes_an_import_too(tmp_path: Path):
    store = InMemoryEventStore()
    path = write(tmp_path, line(1, 1, 2), line(2, 3))

    await import_file(store, path)

    assert [c.version async for c in store.read_all()] == [2, 3]
