"""The JetStream stream and KV bucket the event store lives in, created on every start.

``ensure_jetstream`` is idempotent and never drops data: it creates what is
missing and only ever widens an existing stream towards the settings below,
leaving every limit an operator set by hand alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError

_STREAM_NAME_IN_USE = 10058
_SUBJECTS_OVERLAP = 10065


@dataclass(frozen=True, slots=True)
class JetStreamConfig:
    """Where the event store keeps its data.

    Every aggregate gets the subject ``{subject_prefix}.{tenant}.{type}.{id.hex}``
    in ``stream``; snapshots live in the KV bucket ``snapshot_bucket``. The
    fsync policy (``sync_interval``) is a server setting, see ``NatsServer``.
    """

    stream: str = "VIGIL_EVENTS"
    subject_prefix: str = "vigil.evt"
    duplicate_window: float = 120.0  # seconds; retries beyond it are caught by the store
    replicas: int = 1
    snapshot_bucket: str = "VIGIL_SNAPSHOTS"

    @property
    def subjects(self) -> str:
        return f"{self.subject_prefix}.>"


def stream_config(config: JetStreamConfig) -> StreamConfig:
    """The event stream as Vigil wants it: on disk, kept forever, direct gets allowed."""
    return StreamConfig(
        name=config.stream,
        description="Vigil events: one message per commit, one subject per aggregate",
        subjects=[config.subjects],
        storage=StorageType.FILE,
        num_replicas=config.replicas,
        discard=DiscardPolicy.OLD,
        max_age=0,
        duplicate_window=config.duplicate_window,
        allow_direct=True,
    )


async def ensure_jetstream(js: JetStreamContext, config: JetStreamConfig) -> None:
    """Create or widen the event stream and the snapshot bucket; safe on every start."""
    await _ensure_stream(js, config)
    await _ensure_snapshot_bucket(js, config)


async def _ensure_stream(js: JetStreamContext, config: JetStreamConfig) -> None:
    wanted = stream_config(config)
    try:
        await js.add_stream(wanted)
        return
    except BadRequestError as err:
        if err.err_code == _SUBJECTS_OVERLAP:
            raise RuntimeError(
                f"subjects {config.subjects} already belong to another stream; "
                f"choose another subject prefix for stream {config.stream}"
            ) from err
        # Same name, different config (an earlier version, or an operator's edits).
        if err.err_code != _STREAM_NAME_IN_USE:
            raise
    current = (await js.stream_info(config.stream)).config
    if current.storage != StorageType.FILE:
        raise RuntimeError(
            f"stream {config.stream} uses {current.storage} storage; the event log must be "
            "on file storage, and changing it means recreating the stream"
        )
    subjects = list(current.subjects or [])
    if config.subjects not in subjects:
        subjects.append(config.subjects)  # widen only: old subjects keep their messages
    merged = dataclasses.replace(
        current,
        subjects=subjects,
        num_replicas=config.replicas,
        discard=DiscardPolicy.OLD,
        duplicate_window=config.duplicate_window,
        allow_direct=True,
    )
    if merged != current:
        await js.update_stream(merged)


async def _ensure_snapshot_bucket(js: JetStreamContext, config: JetStreamConfig) -> None:
    try:
        await js.key_value(config.snapshot_bucket)
        return
    except BucketNotFoundError:
        pass
    try:
        await js.create_key_value(
            KeyValueConfig(
                bucket=config.snapshot_bucket,
                description="Vigil aggregate snapshots, latest per aggregate",
                history=1,
                storage=StorageType.FILE,
                replicas=config.replicas,
                direct=True,
            )
        )
    except BadRequestError as err:
        if err.err_code != _STREAM_NAME_IN_USE:  # created concurrently by another process
            raise
        await js.key_value(config.snapshot_bucket)
