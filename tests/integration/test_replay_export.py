"""Export and import of the event log: byte-identical round trips, and imports that refuse."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import nats.errors
import orjson
import pytest
from nats.aio.client import Client

from domain.device import Device
from infrastructure.eventstore.codec import build_mapper, new_cipher_key
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.port import EventStore, NewCommit, StreamRef
from infrastructure.eventstore.setup import JetStreamConfig, ensure_jetstream
from infrastructure.replay.export import ExportFailed, export_commits
from infrastructure.replay.importing import ImportRefused, import_file
from infrastructure.repository import Repository
from tests.conftest import unique_jetstream_config
from tests.contract.test_event_store_contract import commit, device, events, history

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@contextlib.asynccontextmanager
async def second_store(nc: Client) -> AsyncIterator[JetStreamEventStore]:
    """Another empty stream on the same server, removed afterwards."""
    js = nc.jetstream()
    config: JetStreamConfig = unique_jetstream_config()
    await ensure_jetstream(js, config)
    store = JetStreamEventStore(nc, config)
    try:
        yield store
    finally:
        await store.close()
        with contextlib.suppress(nats.errors.Error):
            await js.delete_stream(config.stream)
        with contextlib.suppress(nats.errors.Error):
            await js.delete_key_value(config.snapshot_bucket)


async def export_bytes(store: EventStore) -> bytes:
    out = io.BytesIO()
    await export_commits(store, out)
    return out.getvalue()


async def fill_with_a_varied_history(store: EventStore) -> None:
    """Domain events through a compressing, encrypting mapper, plus odd keys and metadata."""
    repo = Repository(store, build_mapper("zstd", new_cipher_key()))
    for n in range(3):
        registered = Device.register(
            tenant_id=f"tenant-{n % 2}",
            serial_number=f"SN-{uuid4().hex[:8]}",
            hardware_profile="jetson",
            actor="op",
            at=AT,
        )
        ref = StreamRef(registered.tenant_id, "device", registered.id)
        loaded = await repo.load(ref)
        loaded.aggregate = registered
        await repo.save(loaded, registered.collect_events(), idempotency_key=f"reg-{n}")
        loaded = await repo.load(ref)
        assert isinstance(loaded.aggregate, Device)
        loaded.aggregate.come_online(actor="device", at=AT)
        loaded.aggregate.raise_anomaly("thermal", "warning", "hot", actor="device", at=AT)
        metadata = {"command": "Report", "unicode": "Zürich → 東京", "percent%": "100%"}
        await repo.save(loaded, loaded.aggregate.collect_events(), metadata=metadata)
    ref = device()
    await store.append(NewCommit(ref, 0, events(ref, 0, 3), " key with spaces ", {"": ""}))


async def test_export_import_export_gives_the_same_bytes(
    nats_client: Client, jetstream_store: JetStreamEventStore, tmp_path: Path
):
    await fill_with_a_varied_history(jetstream_store)
    first = await export_bytes(jetstream_store)
    path = tmp_path / "events.ndjson"
    path.write_bytes(first)

    async with second_store(nats_client) as target:
        summary = await import_file(target, path)
        again = await export_bytes(target)

    assert again == first
    assert (summary.commits, summary.events) == (7, 12)
    lines = [orjson.loads(line) for line in first.splitlines()]
    assert [line["position"] for line in lines] == list(range(1, 8))
    assert lines[0]["idempotency_key"] == "reg-0"
    assert lines[1]["metadata"] == {
        "command": "Report",
        "percent%": "100%",
        "unicode": "Zürich → 東京",
    }


async def test_positions_are_renumbered_so_a_store_with_gaps_round_trips(
    nats_client: Client,
    jetstream_store: JetStreamEventStore,
    jetstream_config: JetStreamConfig,
    tmp_path: Path,
):
    kept, erased = device(), device()
    await history(jetstream_store, kept, [1])
    await history(jetstream_store, erased, [2, 1])
    await history(jetstream_store, kept, [2])
    subject = f"{jetstream_config.subject_prefix}.acme.device.{erased.id.hex}"
    await nats_client.jetstream().purge_stream(jetstream_config.stream, subject=subject)

    first = await export_bytes(jetstream_store)
    assert [orjson.loads(line)["position"] for line in first.splitlines()] == [1, 2]
    path = tmp_path / "events.ndjson"
    path.write_bytes(first)
    async with second_store(nats_client) as target:
        await import_file(target, path)
        assert await target.head_position() == 2
        assert await export_bytes(target) == first


async def test_import_into_a_store_that_holds_commits_is_refused_and_writes_nothing(
    nats_client: Client, jetstream_store: JetStreamEventStore, tmp_path: Path
):
    await history(jetstream_store, device(), [1, 2])
    path = tmp_path / "events.ndjson"
    path.write_bytes(await export_bytes(jetstream_store))

    with pytest.raises(ImportRefused) as refused:
        await import_file(jetstream_store, path)

    assert "not empty" in str(refused.value)
    assert await jetstream_store.head_position() == 2


async def test_a_file_with_bad_lines_is_refused_whole_and_nothing_is_written(
    nats_client: Client, jetstream_store: JetStreamEventStore, tmp_path: Path
):
    ref, other = device(), device()
    await history(jetstream_store, ref, [1, 1])
    await jetstream_store.append(commit(other, 0))
    good = (await export_bytes(jetstream_store)).splitlines()
    skipping = orjson.loads(good[1])
    skipping["events"][0]["version"] = 3  # version 2 never happened
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join([good[0], orjson.dumps(skipping), b"{not json", good[2]]) + b"\n")

    async with second_store(nats_client) as target:
        with pytest.raises(ImportRefused) as refused:
            await import_file(target, path)
        assert await target.head_position() == 0

    problems = refused.value.problems
    assert problems[0].startswith("line 2:") and "versions must be contiguous" in problems[0]
    assert problems[1].startswith("line 3: not valid JSON")
    assert len(problems) == 2


async def test_a_log_with_an_unreadable_commit_is_not_exported_in_part(
    nats_client: Client, jetstream_store: JetStreamEventStore, jetstream_config: JetStreamConfig
):
    await history(jetstream_store, device(), [1, 1])
    subject = f"{jetstream_config.subject_prefix}.acme.device.{uuid4().hex}"
    await nats_client.jetstream().publish(subject, b"garbage")

    with pytest.raises(ExportFailed) as failed:
        await export_bytes(jetstream_store)

    assert "the commit after position 2 cannot be read" in str(failed.value)
