"""The demo scenario runs end to end on the real app and reaches the automatic rollback."""

from __future__ import annotations

from infrastructure.eventstore.memory import InMemoryEventStore
from tests.support.api import SECRET, running_app, token
from vigil.bootstrap import build_services
from vigil.demo import run_demo


async def test_the_demo_plays_through_to_the_automatic_rollback():
    store = InMemoryEventStore()
    lines: list[str] = []
    async with running_app(build_services(store, jwt_secret=SECRET)) as client:
        sent = await run_demo(client, token("admin", tenant="demo"), lines.append)
    text = "\n".join(lines)
    assert "RolloutHalted, RolloutRolledBack" in text
    assert "422 device_decommissioned" in text
    assert await store.head_position() == sent - 1  # every command but the refused one
