"""Finding and reaching the NATS server a replay tool should read.

``VIGIL_NATS_URL`` when set; otherwise the nats-server that ``vigil up``
embeds under the same data directory, found through the ports file
nats-server writes next to its store (``NatsServer`` passes
``--ports_file_dir``). A ports file left behind by a killed server is skipped
because its process is gone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nats
import nats.errors
from nats.aio.client import Client

# Where `vigil up` keeps the embedded server's store (see vigil.stack.serve).
EMBEDDED_STORE_DIR = "jetstream"


class NatsNotFound(Exception):
    """No URL configured and no embedded server running."""


class NatsUnreachable(Exception):
    """A URL was found but nothing answers there."""


def embedded_nats_url(store_dir: Path) -> str | None:
    """The client URL of a nats-server running with its store in ``store_dir``, if any."""
    for ports_file in sorted(store_dir.glob("*.ports")):
        try:
            pid = int(ports_file.stem.rsplit("_", 1)[1])
            url = json.loads(ports_file.read_text())["nats"][0]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
        if isinstance(url, str) and _alive(pid):
            return url
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    return True


def resolve_nats_url(nats_url: str | None, data_dir: Path) -> tuple[str, str]:
    """The URL to use and where it came from (for error messages)."""
    if nats_url:
        return nats_url, "VIGIL_NATS_URL"
    url = embedded_nats_url(data_dir / EMBEDDED_STORE_DIR)
    if url is not None:
        return url, f"the embedded nats-server of `vigil up` in {data_dir}"
    raise NatsNotFound(
        f"VIGIL_NATS_URL is not set and no embedded nats-server is running for data "
        f"directory {data_dir}. Start the stack with `vigil up` (with the same "
        "VIGIL_DATA_DIR) and run this again, or set VIGIL_NATS_URL to your NATS server, "
        "e.g. VIGIL_NATS_URL=nats://127.0.0.1:4222"
    )


async def connect(url: str, source: str, *, name: str = "vigil-replay") -> Client:
    """A client for ``url``; raises ``NatsUnreachable`` naming ``source`` if it fails."""

    async def quiet(err: Exception) -> None:
        """Failures surface as exceptions; nats-py would also log each one."""

    try:
        return await nats.connect(
            url,
            name=name,
            connect_timeout=3,
            max_reconnect_attempts=2,
            reconnect_time_wait=0.5,
            error_cb=quiet,
        )
    except (OSError, TimeoutError, nats.errors.Error) as err:
        hint = (
            "check VIGIL_NATS_URL"
            if source == "VIGIL_NATS_URL"
            else "is `vigil up` still running? (or set VIGIL_NATS_URL)"
        )
        raise NatsUnreachable(
            f"cannot reach NATS at {url} (from {source}): {err or type(err).__name__}; {hint}"
        ) from err
