"""Pages rendered straight from their rows, for documents that select plain columns.

Through the object path a page of 100 devices reads every column, builds 100
``Device`` objects and 100 edges, then renders each selected field of each.
When a planned document asks a page only for what its table holds as it is
(``edges { cursor node { id serialNumber status } } pageInfo { ... }``),
none of those objects is needed: the page reads just the selected columns
(and its sort key), and each row becomes its part of the response directly,
through the same scalar and enum serializers the executor uses.

A node type opts in with a ``RowSource``: its table, sort key, projection and
which of its fields are columns (and how a column's value becomes the
field's, for enums). Anything a source does not cover leaves the document on
the object path; a value the plan cannot render exactly (an unknown enum
value, a null where the schema promises none) sends the whole request to
strawberry, as elsewhere in ``read_api.fastpath``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from read_api.context import ReadContext
from read_api.pagination import Page, PageRequest, fetch_page
from read_api.render import NotPlainResult, Selection, serialize_string


@dataclass(frozen=True)
class RowSource:
    """How a node type's plain fields are read from its read-model table.

    ``fields`` maps a field's Python name to its column and, where the
    column's value is not the field's value as it is, a table from one to
    the other (an enum stored by its value).
    """

    projection: str
    table: sa.Table
    key: tuple[sa.Column[Any], ...]
    fields: Mapping[str, tuple[str, Mapping[Any, Any] | None]]


@dataclass(eq=False)  # hashed by identity: a key of the page cache
class RowPagePlan:
    source: RowSource
    query: sa.Select[Any]
    render: Callable[[Page], dict[str, Any]]
    prepared: dict[bool, sa.Select[Any]] = field(default_factory=dict)

    async def run(
        self, context: ReadContext, request: PageRequest, min_position: int | None
    ) -> dict[str, Any]:
        context.require_position(min_position)
        cache = context.services.cache if context.cacheable else None
        group = (self.source.projection, context.tenant)
        key = (self, request)
        epoch = (0, 0)
        if cache is not None:
            hit = cache.get_page(group, key)
            if hit is not None:
                return hit
            epoch = cache.page_epoch(group)
        await context.reach(self.source.projection)
        limit = context.services.limits.max_page_size
        async with context.connect() as conn:
            page = await fetch_page(
                conn,
                self.query,
                self.source.key,
                request,
                max_page_size=limit,
                params={"tenant": context.tenant},
                prepared=self.prepared,
            )
        rendered = self.render(page)
        if cache is not None:
            # Shared by every response served from it: only ever read (serialized).
            cache.put_page(group, key, rendered, epoch)
        return rendered


def plan_rows(source: RowSource, selections: tuple[Selection, ...]) -> RowPagePlan | None:
    """The row plan for a connection selecting ``selections``, or None if it needs objects."""
    node: tuple[Selection, ...] = ()
    for selection in selections:
        children = selection.children
        if children is None:
            if selection.attr:  # a connection has no scalar field but __typename
                return None
        elif selection.attr == "edges":
            for child in children:
                if child.children is not None:
                    if child.attr != "node" or node:
                        return None
                    node = child.children
                elif child.attr not in ("", "cursor"):
                    return None
        elif selection.attr != "page_info" or any(
            c.children is not None or (c.attr and c.attr not in _PAGE_INFO) for c in children
        ):
            return None
    columns = [column.name for column in source.key]
    for leaf in node:
        if leaf.children is not None or (leaf.attr and leaf.attr not in source.fields):
            return None  # a nested object, or a field that is no column: objects it is
        if leaf.attr and source.fields[leaf.attr][0] not in columns:
            columns.append(source.fields[leaf.attr][0])
    table = source.table
    query = sa.select(*(table.c[name] for name in columns)).where(
        table.c.tenant_id == sa.bindparam("tenant")
    )
    return RowPagePlan(source, query, _connection_renderer(source, selections, columns))


def _connection_renderer(
    source: RowSource, selections: tuple[Selection, ...], columns: list[str]
) -> Callable[[Page], dict[str, Any]]:
    parts: list[tuple[str, Callable[[Page], Any]]] = []
    for selection in selections:
        if selection.children is None:
            parts.append((selection.key, _constant(selection.typename)))
        elif selection.attr == "edges":
            parts.append((selection.key, _edges_renderer(source, selection, columns)))
        else:
            parts.append((selection.key, _page_info_renderer(selection)))

    def render(page: Page) -> dict[str, Any]:
        return {key: part(page) for key, part in parts}

    return render


def _edges_renderer(
    source: RowSource, edges: Selection, columns: list[str]
) -> Callable[[Page], list[dict[str, Any]]]:
    """Page to edges, as one generated loop: a hundred rows make this the hot spot.

    Each selected column is read from the row by index, checked against the
    schema's nullability, and rendered by its serializer (inlined for
    strings, a table worked out now for enums, so an unknown value raises).
    """
    namespace: dict[str, Any] = {"NotPlainResult": NotPlainResult}
    body: list[str] = []
    items: list[str] = []
    assert edges.children is not None
    for child in edges.children:
        if child.children is not None:
            node = []
            for leaf in child.children:
                node.append(f"{leaf.key!r}: {_leaf(source, leaf, columns, namespace, body)}")
            items.append(f"{child.key!r}: {{{', '.join(node)}}}")
        elif child.attr == "cursor":
            items.append(f"{child.key!r}: cursor")
        else:
            items.append(f"{child.key!r}: {child.typename!r}")
    source_code = "\n".join(
        [
            "def render(page):",
            "    out = []",
            "    append = out.append",
            "    for cursor, row in zip(page.cursors, page.rows, strict=True):",
            *(f"        {line}" for line in body),
            f"        append({{{', '.join(items)}}})",
            "    return out",
        ]
    )
    exec(compile(source_code, f"<row plan for {source.table.name}>", "exec"), namespace)
    render: Callable[[Page], list[dict[str, Any]]] = namespace["render"]
    return render


def _leaf(
    source: RowSource,
    leaf: Selection,
    columns: list[str],
    namespace: dict[str, Any],
    body: list[str],
) -> str:
    """The expression rendering ``leaf`` of ``row``; checks it needs go to ``body``."""
    if not leaf.attr:
        return repr(leaf.typename)
    n = len(namespace)
    value, serialize = f"v{n}", f"s{n}"
    column, converted = source.fields[leaf.attr]
    body.append(f"{value} = row[{columns.index(column)}]")
    assert leaf.serialize is not None
    if converted is not None:
        # Few values: each serialized once, now; an unknown one raises KeyError.
        namespace[serialize] = {raw: leaf.serialize(member) for raw, member in converted.items()}
        expression = f"{serialize}[{value}]"
    elif leaf.serialize is serialize_string:
        namespace[serialize] = serialize_string
        expression = f"{value} if {value}.__class__ is str else {serialize}({value})"
    else:
        namespace[serialize] = leaf.serialize
        expression = f"{serialize}({value})"
    if leaf.non_null:
        body.append(f"if {value} is None: raise NotPlainResult({leaf.key!r})")
        return expression
    return f"None if {value} is None else ({expression})"


_PAGE_INFO: dict[str, Callable[[Page], Any]] = {
    "has_next_page": lambda page: page.has_next,
    "has_previous_page": lambda page: page.has_previous,
    "start_cursor": lambda page: page.cursors[0] if page.cursors else None,
    "end_cursor": lambda page: page.cursors[-1] if page.cursors else None,
}


def _page_info_renderer(info: Selection) -> Callable[[Page], dict[str, Any]]:
    steps: list[tuple[str, Callable[[Page], Any] | None, Any]] = []
    assert info.children is not None
    for leaf in info.children:
        if not leaf.attr:
            steps.append((leaf.key, None, leaf.typename))
            continue
        get = _PAGE_INFO[leaf.attr]
        steps.append((leaf.key, get, leaf.serialize))

    def render(page: Page) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, get, how in steps:
            if get is None:
                out[key] = how
                continue
            value = get(page)
            out[key] = None if value is None else how(value)
        return out

    return render


def _constant(value: Any) -> Callable[[Page], Any]:
    return lambda page: value
