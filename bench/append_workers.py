"""The write-path benchmark's workers: (a) through the EventStore port, and its raw-publish peer.

``bench.append`` runs each in its own process (``python -m bench.append_workers
--worker append|publish ...``) against its private nats-server; a worker prints
one JSON line of figures for its timed window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import CpuWatch, latency_summary


class Window:
    """The measured stretch of a run: only operations inside it count."""

    def __init__(self) -> None:
        self.start = float("inf")
        self.end = float("inf")
        self.stopping = False
        self.latencies: list[float] = []

    def record(self, began: float, done: float) -> None:
        if began >= self.start and done <= self.end:
            self.latencies.append(done - began)

    async def run(
        self, tasks: list[asyncio.Task[None]], warmup: float, duration: float, nats_pid: int
    ) -> dict[str, Any]:
        watch = CpuWatch({"nats-server": nats_pid} if nats_pid else {})
        await asyncio.sleep(warmup)
        self.start = time.perf_counter()
        cpu = time.process_time()
        watch.start()
        await asyncio.sleep(duration)
        self.end = time.perf_counter()
        cpu = time.process_time() - cpu
        server_cpu = watch.stop()
        self.stopping = True
        await asyncio.gather(*tasks)
        elapsed = self.end - self.start
        count = len(self.latencies)
        return {
            "count": count,
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(count / elapsed, 1),
            "client_cpu": round(cpu / elapsed, 3),
            "server_cpu": server_cpu,
            **latency_summary(self.latencies),
        }


async def _connect(url: str) -> Any:
    import nats

    return await nats.connect(url, name="vigil-bench", pending_size=64 * 1024 * 1024)


def _new_device(serial: str, at: datetime) -> Any:
    from domain.device import Device

    return Device.register(
        tenant_id="bench", serial_number=serial, hardware_profile="orin-nx", actor="bench", at=at
    )


async def append_worker(args: argparse.Namespace) -> dict[str, Any]:
    """(a): ``in_flight`` coroutines appending one-event commits through the EventStore port."""
    from eventsourcing.persistence import StoredEvent

    from domain.device import Device
    from infrastructure.eventstore.codec import build_mapper
    from infrastructure.eventstore.jetstream import JetStreamEventStore
    from infrastructure.eventstore.port import NewCommit, StreamRef
    from infrastructure.eventstore.setup import JetStreamConfig, ensure_jetstream

    nc = await _connect(args.nats_url)
    try:
        js = nc.jetstream()
        config = JetStreamConfig()
        await ensure_jetstream(js, config)
        store = JetStreamEventStore(js, config)
        mapper = build_mapper()
        run_id = secrets.token_hex(4)
        at = datetime.now(UTC)

        async def commit(device: Any, key: str) -> None:
            stored = [mapper.to_stored_event(e) for e in device.collect_events()]
            ref = StreamRef("bench", Device.TYPE, device.id)
            expected = stored[0].originator_version - 1
            await store.append(NewCommit(ref, expected, stored, idempotency_key=key))

        async def create(worker: int) -> list[Any]:
            devices = []
            for k in range(args.devices_per_worker):
                device = _new_device(f"store-{run_id}-{worker}-{k}", at)
                await commit(device, f"{run_id}-c-{worker}-{k}")
                devices.append(device)
            return devices

        t0 = time.perf_counter()
        owned = await asyncio.gather(*(create(w) for w in range(args.in_flight)))
        create_elapsed = time.perf_counter() - t0
        created = args.in_flight * args.devices_per_worker

        window = Window()

        async def decide_and_append(worker: int) -> None:
            # The whole write path minus HTTP: decide, map, append.
            own = owned[worker]
            seq = 0
            while not window.stopping:
                device = own[seq % len(own)]
                began = time.perf_counter()
                device.raise_anomaly(
                    "thermal", "warning", f"npu at 91C, seq {seq}", actor="bench", at=at
                )
                await commit(device, f"{run_id}-{worker}-{seq}")
                window.record(began, time.perf_counter())
                seq += 1

        # The port alone: events mapped beforehand. A stored event's state does
        # not hold its version, so one mapped AnomalyRaised serves every version.
        template = _new_device(f"template-{run_id}", at)
        template.raise_anomaly("thermal", "warning", "npu at 91C", actor="bench", at=at)
        mapped = mapper.to_stored_event(template.collect_events()[-1])

        async def append_only(worker: int) -> None:
            own = [(StreamRef("bench", Device.TYPE, d.id), d.id, d.version) for d in owned[worker]]
            versions = [version for _, _, version in own]
            seq = 0
            while not window.stopping:
                slot = seq % len(own)
                ref, device_id, _ = own[slot]
                version = versions[slot] + 1
                event = StoredEvent(device_id, version, mapped.topic, mapped.state)
                began = time.perf_counter()
                await store.append(
                    NewCommit(ref, version - 1, [event], idempotency_key=f"{run_id}-{worker}-{seq}")
                )
                window.record(began, time.perf_counter())
                versions[slot] = version
                seq += 1

        loop = append_only if args.variant == "port" else decide_and_append
        tasks = [asyncio.create_task(loop(w)) for w in range(args.in_flight)]
        result = await window.run(tasks, args.warmup, args.duration, args.nats_pid)
        result.update(
            variant=args.variant,
            in_flight=args.in_flight,
            aggregates=created,
            create_commits_per_s=round(created / create_elapsed, 1),
        )
        return result
    finally:
        await nc.close()


async def publish_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Peer of (a): raw ``js.publish`` of a commit-sized payload, ``in_flight`` at a time."""
    from infrastructure.eventstore.codec import build_mapper
    from infrastructure.eventstore.jetstream import encode_events
    from infrastructure.eventstore.setup import JetStreamConfig, stream_config

    nc = await _connect(args.nats_url)
    try:
        js = nc.jetstream()
        config = JetStreamConfig(stream="BENCH_RAW", subject_prefix="bench.raw")
        await js.add_stream(stream_config(config))
        at = datetime.now(UTC)
        device = _new_device("raw-payload", at)
        device.raise_anomaly("thermal", "warning", "npu at 91C, seq 1", actor="bench", at=at)
        mapper = build_mapper()
        payload = encode_events([mapper.to_stored_event(device.collect_events()[-1])])
        run_id = secrets.token_hex(4)
        subjects = [
            [
                f"{config.subject_prefix}.bench.device.{run_id}{w:04d}{k:04d}"
                for k in range(args.devices_per_worker)
            ]
            for w in range(args.in_flight)
        ]
        window = Window()

        async def publish(worker: int) -> None:
            own = subjects[worker]
            seq = 0
            while not window.stopping:
                began = time.perf_counter()
                await js.publish(own[seq % len(own)], payload)
                window.record(began, time.perf_counter())
                seq += 1

        tasks = [asyncio.create_task(publish(w)) for w in range(args.in_flight)]
        result = await window.run(tasks, args.warmup, args.duration, args.nats_pid)
        result.update(in_flight=args.in_flight, payload_bytes=len(payload))
        return result
    finally:
        await nc.close()


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    import uvloop

    worker = {"append": append_worker, "publish": publish_worker}[args.worker]
    return uvloop.run(worker(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.append_workers", description=__doc__)
    parser.add_argument("--worker", choices=("append", "publish"), required=True)
    parser.add_argument("--variant", choices=("port", "command"), default="port")
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--nats-pid", type=int, default=0)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--devices-per-worker", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(run_worker(args)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
