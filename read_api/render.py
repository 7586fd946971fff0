"""Rendering resolved values as a planned document's selections ask.

A plan (``read_api.fastpath``) turns a document into a tree of ``Selection``s
once; here that tree becomes functions that render a value into its part of
the response, with the schema's own serializers (shortcut where they would
answer the same anyway). Anything these functions cannot render exactly as
graphql-core's executor would raises ``NotPlainResult``, and the request is
answered by strawberry instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from graphql import GraphQLEnumType, GraphQLScalarType, GraphQLString


@dataclass(frozen=True, slots=True)
class Selection:
    key: str  # the response key (alias or name)
    attr: str  # the Python attribute, "" for __typename
    serialize: Callable[[Any], Any] | None  # leaves only
    children: tuple[Selection, ...] | None  # objects and lists of objects
    is_list: bool
    non_null: bool
    typename: str = ""


Renderer = Callable[[Any], dict[str, Any]]


class NotPlainResult(Exception):
    """A value the plan cannot render exactly as the executor would (e.g. a null)."""


_ENUM_MEMO_SIZE = 256


def fast_serializer(gql_type: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """``gql_type.serialize``, with shortcuts that answer exactly as it would.

    Strings serialize to themselves; enums have few members, so their
    serialized names are remembered (keyed by type and value, so ``1`` and
    ``True`` never meet) instead of asked for on every row.
    """
    serialize = gql_type.serialize
    if isinstance(gql_type, GraphQLEnumType):
        memo: dict[tuple[type, Any], Any] = {}

        def enum_serialize(value: Any) -> Any:
            key = (type(value), value)
            try:
                return memo[key]
            except KeyError:
                pass
            except TypeError:  # unhashable: no memo
                return serialize(value)
            result = serialize(value)
            if len(memo) < _ENUM_MEMO_SIZE:
                memo[key] = result
            return result

        return enum_serialize
    if gql_type.name == "String" and serialize is GraphQLString.serialize:
        return serialize_string
    return serialize


def serialize_string(value: Any) -> Any:
    """GraphQL's ``String`` serializer, which gives a ``str`` back as it is."""
    return value if type(value) is str else GraphQLString.serialize(value)


def compile_renderer(selections: tuple[Selection, ...]) -> Renderer:
    """A function rendering an object as ``selections`` ask, built once per plan."""
    steps: list[tuple[int, str, Callable[[Any], Any] | None, Any, bool]] = []
    for selection in selections:
        if selection.serialize is None and selection.children is None:
            steps.append((_TYPENAME, selection.key, None, selection.typename, True))
        elif selection.serialize is not None:
            getter = attrgetter(selection.attr)
            steps.append((_VALUE, selection.key, getter, selection.serialize, selection.non_null))
        else:
            assert selection.children is not None
            getter = attrgetter(selection.attr)
            kind = _LIST if selection.is_list else _VALUE
            child = compile_renderer(selection.children)
            steps.append((kind, selection.key, getter, child, selection.non_null))
    compiled = tuple(steps)

    def render(value: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind, key, get, apply, non_null in compiled:
            if kind == _TYPENAME:
                out[key] = apply
                continue
            assert get is not None
            field = get(value)
            if field is None:
                if non_null:
                    raise NotPlainResult(key)
                out[key] = None
            elif kind == _VALUE:
                out[key] = apply(field)
            else:
                out[key] = [apply(item) for item in field]
        return out

    return render


_TYPENAME, _VALUE, _LIST = 0, 1, 2
