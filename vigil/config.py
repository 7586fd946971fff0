"""Settings, read once from the environment. Unset means embedded.

Every variable is documented in README's Configuration table; a bad value
stops start-up with a message naming the variable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    nats_url: str | None  # None: start an embedded nats-server under data_dir
    database_url: str | None
    redis_url: str | None
    host: str
    port: int
    jwt_secret: str | None  # None: embedded secret kept in data_dir
    compression: str | None
    cipher_key: str | None
    snapshot_every: int
    aggregate_cache_size: int
    max_body_bytes: int
    stream: str
    subject_prefix: str
    snapshot_bucket: str
    duplicate_window_seconds: int
    nats_sync: str  # "default" or "always": the embedded server's fsync policy
    log_level: str
    debug: bool = False  # GraphQL shows internal error messages
    graphql_introspection: bool = True
    consistency_timeout: float = 5.0  # read-your-writes: longest wait for projections
    database_pool_size: int = 20  # PostgreSQL connections kept open per process

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        compression = _choice(env, "VIGIL_EVENT_COMPRESSION", "none", ("none", "zstd", "zlib"))
        database_url = env.get("VIGIL_DATABASE_URL") or None
        if database_url and not database_url.startswith(
            ("postgresql+asyncpg://", "sqlite+aiosqlite://")
        ):
            raise ConfigError(
                "VIGIL_DATABASE_URL must start with postgresql+asyncpg:// or sqlite+aiosqlite://"
            )
        return cls(
            data_dir=Path(env.get("VIGIL_DATA_DIR") or ".vigil").absolute(),
            nats_url=env.get("VIGIL_NATS_URL") or None,
            database_url=database_url,
            redis_url=env.get("VIGIL_REDIS_URL") or None,
            host=env.get("VIGIL_HOST") or "127.0.0.1",
            port=_int(env, "VIGIL_PORT", 8000, minimum=0),
            jwt_secret=env.get("VIGIL_JWT_SECRET") or None,
            compression=None if compression == "none" else compression,
            cipher_key=env.get("VIGIL_CIPHER_KEY") or None,
            snapshot_every=_int(env, "VIGIL_SNAPSHOT_EVERY", 50),
            aggregate_cache_size=_int(env, "VIGIL_AGGREGATE_CACHE_SIZE", 10_000, minimum=1),
            max_body_bytes=_int(env, "VIGIL_MAX_BODY_BYTES", 64 * 1024, minimum=1024),
            stream=env.get("VIGIL_STREAM") or "VIGIL_EVENTS",
            subject_prefix=env.get("VIGIL_SUBJECT_PREFIX") or "vigil.evt",
            snapshot_bucket=env.get("VIGIL_SNAPSHOT_BUCKET") or "VIGIL_SNAPSHOTS",
            duplicate_window_seconds=_int(env, "VIGIL_DUPLICATE_WINDOW", 120, minimum=1),
            nats_sync=_choice(env, "VIGIL_NATS_SYNC", "default", ("default", "always")),
            log_level=(env.get("VIGIL_LOG_LEVEL") or "info").lower(),
            debug=_bool(env, "VIGIL_DEBUG", False),
            graphql_introspection=_bool(env, "VIGIL_GRAPHQL_INTROSPECTION", True),
            consistency_timeout=_int(env, "VIGIL_CONSISTENCY_TIMEOUT_MS", 5000, minimum=1) / 1000,
            database_pool_size=_int(env, "VIGIL_DATABASE_POOL_SIZE", 20, minimum=1),
        )

    @property
    def embedded(self) -> bool:
        return self.nats_url is None

    def resolve_jwt_secret(self) -> str:
        """The configured secret, or the embedded one (created on first use, mode 0600)."""
        if self.jwt_secret:
            if len(self.jwt_secret) < 32:
                raise ConfigError("VIGIL_JWT_SECRET must be at least 32 characters")
            return self.jwt_secret
        path = self.data_dir / "jwt-secret"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret)
        return secret
