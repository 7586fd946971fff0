"""``vigil up`` with no configuration: starts nats-server, serves, stops it, keeps events."""

from __future__ import annotations

import signal
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.processes import (
    VIGIL,
    alive,
    children_of,
    free_port,
    spawn_vigil,
    stop,
    wait_gone,
    wait_ready,
)

pytestmark = pytest.mark.integration


def _token(env: dict[str, str]) -> str:
    out = subprocess.run(
        [VIGIL, "token", "--role", "admin", "--tenant", "acme"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _nats_children(pid: int) -> list[int]:
    return [c for c in children_of(pid) if "nats-server" in Path(f"/proc/{c}/cmdline").read_text()]


@pytest.fixture
def embedded(tmp_path: Path):
    port = free_port()
    env = {"VIGIL_DATA_DIR": str(tmp_path / "data"), "VIGIL_PORT": str(port)}
    return env, f"http://127.0.0.1:{port}", tmp_path / "vigil.log"


def test_vigil_up_serves_commands_and_keeps_events_across_restarts(embedded):
    env, base, log = embedded
    proc = spawn_vigil(["up"], env, log)
    try:
        wait_ready(base, proc, log)
        nats_pids = _nats_children(proc.pid)
        assert len(nats_pids) == 1, "vigil up starts exactly one nats-server"
        import os

        token = _token({**os.environ, **env})
        serial = f"SN-{uuid.uuid4().hex[:8]}"
        response = httpx.post(
            f"{base}/commands/RegisterDevice",
            json={"serial_number": serial, "hardware_profile": "jetson"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.text
    finally:
        code = stop(proc, signal.SIGTERM)
    assert code == 0, log.read_text()[-2000:]
    assert wait_gone(nats_pids[0]), "nats-server outlived vigil up"

    again = spawn_vigil(["up"], env, log)
    try:
        ready = wait_ready(base, again, log)
        assert ready["head_position"] == 1, "the event survived the restart"
        duplicate = httpx.post(
            f"{base}/commands/RegisterDevice",
            json={"serial_number": serial, "hardware_profile": "jetson"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert duplicate.status_code == 409
    finally:
        assert stop(again, signal.SIGINT) == 0


def test_kill_9_of_vigil_up_leaves_no_orphan_nats_server(embedded):
    env, base, log = embedded
    proc = spawn_vigil(["up"], env, log)
    try:
        wait_ready(base, proc, log)
        (nats_pid,) = _nats_children(proc.pid)
        assert alive(nats_pid)
    finally:
        stop(proc, signal.SIGKILL)
    assert wait_gone(nats_pid), "nats-server survived the death of its parent"


def test_vigil_api_without_a_nats_url_refuses_to_start(tmp_path: Path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_DATA_DIR"] = str(tmp_path)
    result = subprocess.run([VIGIL, "api"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "VIGIL_NATS_URL" in result.stderr


def test_a_bad_setting_names_the_variable(tmp_path: Path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(VIGIL_DATA_DIR=str(tmp_path), VIGIL_PORT="eighty")
    result = subprocess.run([VIGIL, "up"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "VIGIL_PORT must be an integer" in result.stderr


def test_vigil_api_with_an_unreachable_nats_names_the_url_and_exits(tmp_path: Path):
    import os

    url = f"nats://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(VIGIL_DATA_DIR=str(tmp_path), VIGIL_NATS_URL=url, VIGIL_PORT=str(free_port()))
    result = subprocess.run([VIGIL, "api"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"cannot reach NATS at {url}" in result.stderr
