"""What every read-model type shares: scalars, Relay connections, where a value came from."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any, Generic, NewType, TypeVar

import strawberry
from strawberry.relay import PageInfo
from strawberry.types.scalar import ScalarDefinition

from read_api.pagination import Page

T = TypeVar("T")

# Positions and sizes outgrow GraphQL's 32-bit Int; JSON numbers carry them exactly
# up to 2^53, far beyond any stream position or model size.
Long = NewType("Long", int)


def _parse_long(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"Long cannot represent {value!r}")
    number = int(value)
    if not -(2**53) <= number <= 2**53:
        raise ValueError(f"Long cannot represent {value!r}: outside +-2^53")
    return number


SCALARS: dict[object, ScalarDefinition] = {
    Long: strawberry.scalar(
        name="Long",
        description="A whole number up to 2^53 (stream positions, byte sizes).",
        serialize=int,
        parse_value=_parse_long,
    ),
}


@strawberry.enum(description="Where an object was read from.")
class Source(enum.Enum):
    READ_MODEL = "read_model"
    EVENT_LOG = "event_log"  # rebuilt by time travel


@strawberry.type(description="An edge in a connection.")
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A page of a Relay connection.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="The nodes of this page, without their cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="How many nodes match the filter, on every page.")
    async def total_count(self) -> int:
        return await self.count()


def connection(
    page: Page,
    to_node: Callable[[Any], T],
    count: Callable[[], Awaitable[int]],
    *,
    to_nodes: Callable[[list[Any]], list[T]] | None = None,
) -> Connection[T]:
    """The connection for ``page``; ``to_nodes`` converts all rows at once when given."""
    nodes = to_nodes(page.rows) if to_nodes is not None else [to_node(row) for row in page.rows]
    if len(nodes) != len(page.cursors):
        raise ValueError("a page needs one cursor per row")
    edges = [_edge(cursor, node) for cursor, node in zip(page.cursors, nodes, strict=True)]
    info = PageInfo(
        has_next_page=page.has_next,
        has_previous_page=page.has_previous,
        start_cursor=page.cursors[0] if page.cursors else None,
        end_cursor=page.cursors[-1] if page.cursors else None,
    )
    return Connection(edges=edges, page_info=info, count=count)


def _edge(cursor: str, node: Any) -> Edge[Any]:
    # What Edge(cursor=..., node=...) sets, without the dataclass __init__ per row.
    edge: Edge[Any] = Edge.__new__(Edge)
    edge.__dict__.update(cursor=cursor, node=node)
    return edge
