"""Limits against abusive documents: length, tokens, depth, aliases and page volume.

Length and tokens are enforced while parsing (graphql-core stops lexing at the
limit, so an oversized document costs little); depth, aliases and the number
of nodes a document may ask for are validation rules, checked once per
distinct document and cached with it. Every refusal carries the code
``QUERY_TOO_COMPLEX``.

Introspection fields (``__schema``, ``__type``...) are not counted towards
depth: GraphiQL's own introspection query is deeper than any real query, and
introspection as a whole is switched on or off separately.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions.max_aliases import count_fields_with_alias

from read_api.errors import too_complex

Fragments = Mapping[str, FragmentDefinitionNode]

# Fields returning connections: without first/last they still return a page.
CONNECTION_FIELDS = frozenset({"devices", "fleets", "models", "history"})


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_length: int = 20_000  # characters of query text
    max_tokens: int = 2_000  # lexical tokens, comments aside
    max_comments: int = 200
    max_depth: int = 10  # nested fields, leaves included
    max_aliases: int = 20
    max_page_size: int = 100  # largest ``first``/``last`` a connection accepts
    max_nodes: int = 10_000  # product of page sizes along nested connections

    def parse_options(self) -> dict[str, Any]:
        return {
            "max_lexical_tokens": self.max_tokens,
            "max_comments": self.max_comments,
            "max_source_length": self.max_length,
            "no_location": False,
        }

    def validation_rules(self) -> tuple[type[ValidationRule], ...]:
        """Rule classes bound to these limits; built once so validation can be cached."""
        limits = self

        class LimitsRule(ValidationRule):
            def __init__(self, context: ValidationContext) -> None:
                super().__init__(context)
                check_document(context, limits)

        return (LimitsRule,)


def check_document(context: ValidationContext, limits: QueryLimits) -> None:
    document = context.document
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    for operation in document.definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        name = operation.name.value if operation.name else "anonymous"
        aliases = count_fields_with_alias(operation, fragments)
        if aliases > limits.max_aliases:
            context.report_error(
                too_complex(
                    f"operation {name!r} uses {aliases} aliases; at most "
                    f"{limits.max_aliases} are allowed"
                )
            )
        depth = _depth(operation.selection_set, fragments, frozenset())
        if depth > limits.max_depth:
            context.report_error(
                too_complex(
                    f"operation {name!r} is nested {depth} fields deep; at most "
                    f"{limits.max_depth} levels are allowed"
                )
            )
        nodes = _nodes(operation.selection_set, fragments, frozenset(), limits.max_page_size)
        if nodes > limits.max_nodes:
            context.report_error(
                too_complex(
                    f"operation {name!r} may return up to {nodes} nodes through nested "
                    f"connections; at most {limits.max_nodes} are allowed"
                )
            )


def _children(
    selection_set: SelectionSetNode | None, fragments: Fragments, seen: frozenset[str]
) -> list[tuple[FieldNode, frozenset[str]]]:
    """The fields of a selection set, fragments expanded (each at most once per path)."""
    fields: list[tuple[FieldNode, frozenset[str]]] = []
    if selection_set is None:
        return fields
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            fields.append((selection, seen))
        elif isinstance(selection, InlineFragmentNode):
            fields.extend(_children(selection.selection_set, fragments, seen))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                fields.extend(_children(fragment.selection_set, fragments, seen | {name}))
    return fields


def _depth(
    selection_set: SelectionSetNode | None, fragments: Fragments, seen: frozenset[str]
) -> int:
    deepest = 0
    for field, path in _children(selection_set, fragments, seen):
        if field.name.value.startswith("__"):
            continue
        deepest = max(deepest, 1 + _depth(field.selection_set, fragments, path))
    return deepest


def _page_size(field: FieldNode, default: int) -> int:
    """What a connection field may return: its literal ``first``/``last``, else the cap."""
    for argument in field.arguments or ():
        if argument.name.value in ("first", "last"):
            if isinstance(argument.value, IntValueNode):
                return max(1, min(int(argument.value.value), default))
            return default  # a variable: assume the largest page it may ask for
    return default


def _nodes(
    selection_set: SelectionSetNode | None, fragments: Fragments, seen: frozenset[str], cap: int
) -> int:
    total = 0
    for field, path in _children(selection_set, fragments, seen):
        if field.selection_set is None or field.name.value.startswith("__"):
            continue
        below = _nodes(field.selection_set, fragments, path, cap)
        if any(arg.name.value in ("first", "last") for arg in field.arguments or ()) or (
            field.name.value in CONNECTION_FIELDS
        ):
            total += _page_size(field, cap) * max(1, below)
        else:
            total += max(1, below)
    return total
