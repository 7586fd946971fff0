"""kill -9 the API mid-traffic, restart it, retry everything: one commit per idempotency key."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import uuid
from pathlib import Path

import httpx
import nats
import pytest

from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.setup import JetStreamConfig
from tests.support.api import SECRET, token
from tests.support.processes import free_port, spawn_vigil, stop, wait_ready

pytestmark = pytest.mark.integration

DEVICES = 24
ANOMALIES_PER_DEVICE = 10
KILL_AFTER = 90  # responses


def planned_commands(run: str) -> list[tuple[str, str, dict]]:
    """(idempotency key, command, body): registrations first, then anomalies."""
    serials = [f"SN-{run}-{i}" for i in range(DEVICES)]
    from domain.identity import device_id

    plan = [
        (f"reg-{s}", "RegisterDevice", {"serial_number": s, "hardware_profile": "jetson"})
        for s in serials
    ]
    for round_ in range(ANOMALIES_PER_DEVICE):
        for s in serials:
            plan.append(
                (
                    f"anomaly-{s}-{round_}",
                    "RaiseAnomaly",
                    {
                        "device_id": str(device_id("acme", s)),
                        "kind": f"k{round_}",
                        "severity": "warning",
                    },
                )
            )
    return plan


async def send_all(
    base: str, plan, results: dict, *, stop_after: int | None = None, on_stop=None
) -> None:
    headers = {"Authorization": f"Bearer {token('operator')}"}
    queue: asyncio.Queue = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    answered = 0
    stopped = asyncio.Event()

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal answered
        while not queue.empty() and not stopped.is_set():
            key, command, body = queue.get_nowait()
            try:
                response = await client.post(
                    f"/commands/{command}", json=body, headers={**headers, "Idempotency-Key": key}
                )
            except httpx.TransportError:
                continue  # the server died under us; the retry pass will resend it
            results[key] = response
            answered += 1
            if stop_after is not None and answered >= stop_after and not stopped.is_set():
                stopped.set()
                on_stop()

    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(16)))


async def test_killing_the_api_mid_traffic_never_commits_a_key_twice(nats_server, tmp_path: Path):
    run = uuid.uuid4().hex[:8]
    config = JetStreamConfig(
        stream=f"CRASH_{run}", subject_prefix=f"crash.{run}", snapshot_bucket=f"CRASH_SNAP_{run}"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "VIGIL_NATS_URL": nats_server,
        "VIGIL_PORT": str(port),
        "VIGIL_JWT_SECRET": SECRET,
        "VIGIL_STREAM": config.stream,
        "VIGIL_SUBJECT_PREFIX": config.subject_prefix,
        "VIGIL_SNAPSHOT_BUCKET": config.snapshot_bucket,
        "VIGIL_SNAPSHOT_EVERY": "4",
        "VIGIL_DATA_DIR": str(tmp_path),
    }
    log = tmp_path / "api.log"
    plan = planned_commands(run)

    api = spawn_vigil(["api"], env, log)
    wait_ready(base, api, log)
    first: dict[str, httpx.Response] = {}
    await send_all(
        base, plan, first, stop_after=KILL_AFTER, on_stop=lambda: os.kill(api.pid, signal.SIGKILL)
    )
    assert api.wait(10) == -signal.SIGKILL
    assert KILL_AFTER <= len(first) < len(plan), "the kill landed mid-traffic"

    restarted = spawn_vigil(["api"], env, log)
    try:
        wait_ready(base, restarted, log)
        retried: dict[str, httpx.Response] = {}
        await send_all(base, plan[:DEVICES], retried)  # registrations before their anomalies
        await send_all(base, plan[DEVICES:], retried)
    finally:
        assert stop(restarted, signal.SIGTERM) == 0

    assert set(retried) == {key for key, _, _ in plan}
    for key, response in retried.items():
        assert response.status_code in (200, 201), (key, response.text)
        earlier = first.get(key)
        if earlier is not None and earlier.status_code == 201:
            assert response.status_code == 200 and response.json()["duplicate"]
            assert response.json()["position"] == earlier.json()["position"]

    nc = await nats.connect(nats_server)
    try:
        store = JetStreamEventStore(nc, config)
        commits = [c async for c in store.read_all()]
        per_key = collections.Counter(c.idempotency_key for c in commits)
        assert per_key == {key: 1 for key, _, _ in plan}, "exactly one commit per key"
        versions = collections.defaultdict(list)
        for c in commits:
            versions[c.ref.id].append(c.version)
        assert all(v == list(range(1, ANOMALIES_PER_DEVICE + 2)) for v in versions.values())
    finally:
        await nc.jetstream().delete_stream(config.stream)
        await nc.jetstream().delete_key_value(config.snapshot_bucket)
        await nc.close()
