"""What every resolver gets as ``info.context``: who asks, what they may read, how.

``ReadServices`` is built once per app (engine, repository, caches, limits);
``ReadContext`` once per request, around a principal that has already been
authenticated. DataLoaders are made on first use, per request, so batching
never mixes two callers (or two tenants).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commands.auth import AuthError, Principal
from infrastructure.repository import Repository
from read_api.cache import RowCache
from read_api.consistency import CheckpointWatcher
from read_api.errors import BadInput
from read_api.limits import QueryLimits

if TYPE_CHECKING:
    from read_api.loaders import Loaders


@dataclass
class ReadServices:
    engine: AsyncEngine
    repository: Repository | None  # time travel; None refuses it
    watcher: CheckpointWatcher
    cache: RowCache | None  # None: every read goes to the database
    limits: QueryLimits = field(default_factory=QueryLimits)
    consistency_timeout: float = 5.0
    debug: bool = False
    make_loaders: Callable[[ReadContext], Loaders] | None = None
    reader: AsyncEngine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Every read is one statement on a connection of its own, so on
        # PostgreSQL it runs in autocommit: the same snapshot a one-statement
        # transaction gets (READ COMMITTED), minus the BEGIN and ROLLBACK
        # round trips around it. SQLite keeps the engine's own transactions.
        if self.engine.dialect.name == "postgresql":
            self.reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            self.reader = self.engine


class ReadContext:
    """Per-request state; resolvers read the tenant from here and only from here."""

    __slots__ = (
        "_loaders",
        "_principal",
        "_reached",
        "min_position",
        "request",
        "services",
    )

    def __init__(
        self,
        services: ReadServices,
        principal: Principal | None,
        *,
        min_position: int | None = None,
        request: Any = None,
    ) -> None:
        self.services = services
        self._principal = principal
        self.min_position = min_position
        self.request = request
        self._loaders: Loaders | None = None
        self._reached: dict[str, int] = {}

    @property
    def principal(self) -> Principal:
        """The authenticated caller; the view refuses unauthenticated requests earlier."""
        if self._principal is None:
            raise AuthError("not authenticated; send 'Bearer <token>'")
        return self._principal

    @property
    def tenant(self) -> str:
        return self.principal.tenant

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            make = self.services.make_loaders
            assert make is not None, "ReadServices.make_loaders is wired by the app"
            self._loaders = make(self)
        return self._loaders

    def renew(self) -> None:
        """Forget batched loads, so the next result reads the read models afresh.

        A subscription's context lives as long as its websocket; without this,
        nested fields of every pushed update would repeat the first load.
        """
        self._loaders = None

    def connect(self) -> AsyncConnection:
        return self.services.reader.connect()

    @property
    def cacheable(self) -> bool:
        """Cached rows may predate a write this request asked to see: skip them then."""
        return self.min_position is None and self.services.cache is not None

    def require_position(self, position: int | None) -> None:
        """Raise the position this request must see (a ``minPosition`` argument)."""
        if position is None:
            return
        if position < 0:
            raise BadInput(f"minPosition must be >= 0, got {position}")
        if self.min_position is None or position > self.min_position:
            self.min_position = position

    async def reach(self, projection: str) -> None:
        """Return once ``projection`` has applied every commit up to ``min_position``."""
        target = self.min_position
        if target is None or self._reached.get(projection, -1) >= target:
            return
        services = self.services
        await services.watcher.wait((projection,), target, services.consistency_timeout)
        self._reached[projection] = max(target, self._reached.get(projection, -1))
