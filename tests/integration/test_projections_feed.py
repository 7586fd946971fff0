"""The projector's pull feed on a real stream: whole batches, asked for a bit at a time."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from infrastructure.eventstore.setup import JetStreamConfig
from projections import feed as feed_module
from projections.feed import ConsumerFeed

pytestmark = pytest.mark.integration


async def test_a_batch_larger_than_the_server_may_queue_arrives_whole_and_in_order(
    nats_client: Client, jetstream_config: JetStreamConfig, monkeypatch: pytest.MonkeyPatch
):
    # Scaled down: pull requests of 50 messages, at most 200 asked for and unread.
    monkeypatch.setattr(feed_module, "_PULL_CHUNK", 50)
    monkeypatch.setattr(feed_module, "_AHEAD", 200)
    js = nats_client.jetstream()
    for n in range(1000):
        await js.publish(f"{jetstream_config.subject_prefix}.acme.device.{n:032x}", b"%d" % n)
    asked: list[int] = []
    all_asked = asyncio.Event()

    async def spy(msg: Msg) -> None:
        asked.append(json.loads(msg.data)["batch"])
        if sum(asked) >= 1000:
            all_asked.set()

    durable = "feed-test"
    next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{jetstream_config.stream}.{durable}"
    watching = await nats_client.subscribe(next_subject, cb=spy)
    feed = ConsumerFeed(nats_client, jetstream_config, durable, batch_size=1000)
    await feed.open(0)
    try:
        delivery = await feed.next()
    finally:
        await feed.close()
        await feed.delete()
    await asyncio.wait_for(all_asked.wait(), 5)  # the spy's copies arrive through a task
    await watching.unsubscribe()

    assert delivery is not None and delivery.lag == 0
    assert [c.position for c in delivery.commits] == list(range(1, 1001))
    assert [c.data for c in delivery.commits] == [b"%d" % n for n in range(1000)]
    assert set(asked) == {50}  # asked for a chunk at a time, as messages were used up
    assert sum(asked) <= 1000 + 200


async def test_lag_counts_each_message_behind_a_batch_once(
    nats_client: Client, jetstream_config: JetStreamConfig
):
    js = nats_client.jetstream()
    for n in range(300):
        await js.publish(f"{jetstream_config.subject_prefix}.acme.device.{n:032x}", b"x")
    feed = ConsumerFeed(nats_client, jetstream_config, "feed-lag", batch_size=100)
    await feed.open(0)
    try:
        lags = []
        for _ in range(3):
            delivery = await feed.next()
            assert delivery is not None and len(delivery.commits) == 100
            lags.append(delivery.lag)
            await feed.ack(delivery)
    finally:
        await feed.close()
        await feed.delete()

    assert lags == [200, 100, 0]  # however much of the rest was already buffered
