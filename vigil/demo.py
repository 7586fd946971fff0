"""A realistic fleet scenario, driven through the public command API.

Registers a model and promotes it to production, creates a fleet of devices,
rolls a new model version out in phases and lets installs fail until the
rollout crosses its failure threshold: the fleet halts and rolls back by
itself. Every step prints the command, the outcome and the events committed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

SIGNATURE = {"images": {"dtype": "float32", "shape": [None, 3, 224, 224]}}
OUTPUT = {"scores": {"dtype": "float32", "shape": [None, 10]}}


class DemoError(RuntimeError):
    """A step the demo relies on was refused."""


@dataclass
class Demo:
    client: httpx.AsyncClient
    token: str
    say: Callable[[str], None]
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    commands: int = 0

    async def send(self, command: str, body: dict[str, Any], *, expect: int = 201) -> Any:
        response = await self.client.post(
            f"/commands/{command}",
            json=body,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Idempotency-Key": f"demo-{self.run}-{self.commands}",
            },
        )
        self.commands += 1
        payload = response.json()
        if response.status_code != expect:
            raise DemoError(f"{command} answered {response.status_code}: {payload}")
        if response.status_code < 300:
            events = ", ".join(payload["events"])
            self.say(
                f"  {command:<22} -> v{payload['version']:<3} @{payload['position']:<6} {events}"
            )
        else:
            self.say(f"  {command:<22} -> {response.status_code} {payload['error']['code']}")
        return payload

    async def model(self, name: str, version: str) -> str:
        digest = hashlib.sha256(f"{name}:{version}".encode()).hexdigest()
        registered = await self.send(
            "RegisterModel",
            {
                "name": name,
                "version": version,
                "sha256": digest,
                "size_bytes": 14_680_064,
                "input_signature": SIGNATURE,
                "output_signature": OUTPUT,
                "artifact_name": f"{name}-{version}.onnx",
            },
        )
        model_id: str = registered["aggregate_id"]
        for stage in ("staging", "production"):
            await self.send("PromoteModel", {"model_id": model_id, "to_stage": stage})
        return model_id


async def run_demo(client: httpx.AsyncClient, token: str, say: Callable[[str], None]) -> int:
    """Play the scenario; returns the number of commands sent."""
    demo = Demo(client, token, say)
    run = demo.run
    say(f"1. Model registry (run {run})")
    stable = await demo.model(f"detector-{run}", "1.0.0")
    candidate = await demo.model(f"detector-{run}", "1.1.0")

    say("2. A fleet of 20 devices, all running 1.0.0")
    fleet = (await demo.send("CreateFleet", {"name": f"warehouse-{run}"}))["aggregate_id"]
    devices = []
    for n in range(20):
        device = (
            await demo.send(
                "RegisterDevice",
                {
                    "serial_number": f"SN-{run}-{n:03d}",
                    "hardware_profile": "jetson-orin-nano",
                    "firmware_version": "5.1.2",
                },
            )
        )["aggregate_id"]
        devices.append(device)
        await demo.send("AssignDeviceToFleet", {"device_id": device, "fleet_id": fleet})
        await demo.send("MarkDeviceOnline", {"device_id": device})
        await demo.send(
            "ReportInstallSucceeded",
            {"device_id": device, "model_id": stable, "model_version": "1.0.0"},
        )

    say("3. Roll 1.1.0 out in phases 10% -> 50% -> 100%, halting above 25% failures")
    await demo.send(
        "StartRollout",
        {
            "fleet_id": fleet,
            "model_id": candidate,
            "model_version": "1.1.0",
            "phases": [10, 50, 100],
            "failure_threshold": 0.25,
        },
    )
    first_phase, second_phase = devices[:2], devices[2:10]
    await demo.send("AdvanceRollout", {"fleet_id": fleet, "device_ids": first_phase})
    for device in first_phase:
        await _install(demo, fleet, device, candidate, ok=True)

    say("4. Second phase: the new model fails on half the boxes")
    await demo.send("AdvanceRollout", {"fleet_id": fleet, "device_ids": second_phase})
    for n, device in enumerate(second_phase):
        halted = await _install(demo, fleet, device, candidate, ok=n % 2 == 0)
        if halted:
            say("   -> failure threshold crossed: the fleet halted and rolled back by itself")
            break

    say("5. A device raises an anomaly; another is decommissioned")
    await demo.send(
        "RaiseAnomaly",
        {
            "device_id": devices[3],
            "kind": "thermal",
            "severity": "critical",
            "detail": "SoC at 97C",
        },
    )
    await demo.send("DecommissionDevice", {"device_id": devices[19], "reason": "water damage"})
    await demo.send("MarkDeviceOnline", {"device_id": devices[19]}, expect=422)
    say(f"Done: {demo.commands} commands.")
    return demo.commands


async def _install(demo: Demo, fleet: str, device: str, model: str, *, ok: bool) -> bool:
    await demo.send(
        "SetDesiredModel", {"device_id": device, "model_id": model, "model_version": "1.1.0"}
    )
    if ok:
        await demo.send(
            "ReportInstallSucceeded",
            {"device_id": device, "model_id": model, "model_version": "1.1.0"},
        )
    else:
        await demo.send(
            "ReportInstallFailed",
            {
                "device_id": device,
                "model_id": model,
                "model_version": "1.1.0",
                "reason": "onnxruntime: unsupported opset 21",
            },
        )
    result = await demo.send(
        "RecordRolloutResult", {"fleet_id": fleet, "device_id": device, "succeeded": ok}
    )
    return "RolloutRolledBack" in result["events"]
