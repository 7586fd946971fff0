"""Parse and validate each distinct document once, with Vigil's limits applied.

Dashboards send the same few documents over and over; parsing and validating
them costs more than answering them. ``DocumentCache`` keeps an LRU of
``query text -> (document, validation errors)`` per schema, bounded so unique
garbage documents cannot grow memory; ``CachedDocuments`` is the strawberry
extension that consults it.

The limits (``read_api.limits``) ride along: parse options bound length and
tokens, extra validation rules bound depth, aliases and nodes, and
introspection is refused here when it is switched off.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, GraphQLError, ValidationRule
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension

from read_api.limits import QueryLimits

VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"


@dataclass(slots=True)
class Entry:
    document: DocumentNode
    errors: tuple[GraphQLError, ...] | None = None  # None until validated
    planned: bool = False  # whether ``plan`` was worked out yet
    plan: Any = None  # read_api.fastpath.Plan, or None when the executor must run it


class DocumentCache:
    def __init__(self, limits: QueryLimits, *, introspection: bool, size: int = 512) -> None:
        self.limits = limits
        self.parse_options = limits.parse_options()
        rules: tuple[type[ValidationRule], ...] = limits.validation_rules()
        if not introspection:
            rules = (*rules, NoSchemaIntrospectionCustomRule)
        self.extra_rules = rules
        self.size = size
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def get(self, query: str) -> Entry | None:
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
        return entry

    def put(self, query: str, document: DocumentNode) -> Entry:
        entry = Entry(document)
        self._entries[query] = entry
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry

    def __len__(self) -> int:
        return len(self._entries)


def _coded(errors: list[GraphQLError]) -> tuple[GraphQLError, ...]:
    for error in errors:
        if not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": VALIDATION_FAILED}
    return tuple(errors)


class CachedDocuments(SchemaExtension):
    """Serve parse and validation from a ``DocumentCache``; fill it on a miss."""

    def __init__(self, cache: DocumentCache) -> None:
        self.cache = cache
        self._entry: Entry | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        entry = self.cache.get(query) if query else None
        if entry is not None:
            context.graphql_document = entry.document
        else:
            context.parse_options.update(self.cache.parse_options)  # type: ignore[typeddict-item]
        yield
        if entry is None and query and context.graphql_document is not None:
            entry = self.cache.put(query, context.graphql_document)
        self._entry = entry

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        entry = self._entry
        if entry is not None and entry.errors is not None:
            context.pre_execution_errors = list(entry.errors)
            yield
            return
        context.validation_rules = (*context.validation_rules, *self.cache.extra_rules)
        yield
        errors = _coded(context.pre_execution_errors or [])
        context.pre_execution_errors = list(errors)
        if entry is not None:
            entry.errors = errors
