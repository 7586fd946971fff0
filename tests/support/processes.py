"""Spawning real ``vigil`` processes for end-to-end and fault tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

VIGIL = str(Path(sys.executable).with_name("vigil"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_vigil(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    full_env.update(env)
    with log.open("ab") as handle:  # the child keeps its own descriptor
        return subprocess.Popen(
            [VIGIL, *args],
            env=full_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def wait_ready(
    base_url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0
) -> dict:
    """Poll ``/ready`` until it answers 200; fail fast if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"vigil exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            response = httpx.get(f"{base_url}/ready", timeout=1.0)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling another process's readiness; there is nothing to await
    raise AssertionError(f"vigil not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def children_of(pid: int) -> list[int]:
    children: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    if not task_dir.exists():
        return children
    for task in task_dir.iterdir():
        with_children = task / "children"
        if with_children.exists():
            children.extend(int(c) for c in with_children.read_text().split())
    return children


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)  # waiting on another process's exit; there is nothing to await
    return False


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
