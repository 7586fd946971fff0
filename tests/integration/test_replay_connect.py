"""Finding NATS for the replay tools: the configured URL, else the embedded server's ports file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infrastructure.replay.connect import (
    EMBEDDED_STORE_DIR,
    NatsNotFound,
    embedded_nats_url,
    resolve_nats_url,
)


def ports_file(data_dir: Path, pid: int, url: str) -> None:
    store = data_dir / EMBEDDED_STORE_DIR
    store.mkdir(parents=True, exist_ok=True)
    ports = {"nats": [url], "monitoring": ["http://127.0.0.1:1"]}
    (store / f"nats-server_{pid}.ports").write_text(json.dumps(ports))


def a_finished_process() -> int:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped, so its pid names no process
    return child.pid


def test_the_configured_url_wins(tmp_path: Path):
    ports_file(tmp_path, os.getpid(), "nats://127.0.0.1:4999")

    assert resolve_nats_url("nats://nats.internal:4222", tmp_path) == (
        "nats://nats.internal:4222",
        "VIGIL_NATS_URL",
    )


def test_without_one_the_running_embedded_server_is_found(tmp_path: Path):
    ports_file(tmp_path, os.getpid(), "nats://127.0.0.1:4999")

    url, source = resolve_nats_url(None, tmp_path)

    assert url == "nats://127.0.0.1:4999" and "vigil up" in source


def test_a_ports_file_left_by_a_dead_server_is_ignored(tmp_path: Path):
    ports_file(tmp_path, a_finished_process(), "nats://127.0.0.1:4999")
    (tmp_path / EMBEDDED_STORE_DIR / "nats-server_x.ports").write_text("not json")

    assert embedded_nats_url(tmp_path / EMBEDDED_STORE_DIR) is None
    with pytest.raises(NatsNotFound) as not_found:
        resolve_nats_url(None, tmp_path)
    assert "VIGIL_NATS_URL is not set" in str(not_found.value)
    assert f"for data directory {tmp_path}" in str(not_found.value)
    assert "`vigil up`" in str(not_found.value)
