"""A lean executor for the documents dashboards send most: lookups and pages of plain fields.

graphql-core's executor is general (abstract types, resolvers on every field,
incremental delivery) and costs several microseconds per field; a page of 100
devices has 700 fields. Most dashboard documents need none of that generality:
one or more root lookups (``device(id)``) or pages (``devices(first: 100)``)
selecting plain attributes, objects and lists of them. For such a document a
*plan* is built once, next to its cached validation, and run without the
generic executor: the same root functions (``read_api.roots``), the same
scalar and enum serializers, the same response.

Anything else, or anything unexpected while running a plan (an error, a
null where the schema promises none), goes through strawberry as usual: the
plan only ever answers requests it answers exactly like strawberry would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    get_named_type,
)
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.pyutils import Undefined
from graphql.type.definition import is_required_argument
from graphql.utilities import type_from_ast
from strawberry import Schema

from read_api import roots
from read_api.context import ReadContext
from read_api.errors import ReadApiError, format_error
from read_api.pagination import PageRequest
from read_api.render import Renderer, Selection, compile_renderer, fast_serializer
from read_api.rowpages import RowPagePlan, RowSource, plan_rows
from read_api.types.device import DEVICE_ROWS

Root = Callable[..., Awaitable[Any]]

_LOOKUPS: dict[str, Root] = {"device": roots.device, "fleet": roots.fleet, "model": roots.model}
_PAGES: dict[str, Root] = {"devices": roots.devices, "fleets": roots.fleets, "models": roots.models}
_ROW_SOURCES: dict[str, RowSource] = {"devices": DEVICE_ROWS}
_ARGUMENTS = {"id": "id", "atVersion": "at_version", "atTime": "at_time"}
_PAGE_ARGUMENTS = ("first", "after", "last", "before")


class Unplannable(Exception):
    """The document needs the generic executor."""


@dataclass(frozen=True, slots=True)
class RootSelection:
    key: str
    name: str
    node: FieldNode
    field: GraphQLField
    children: tuple[Selection, ...]
    render: Renderer
    arguments: Arguments | None  # None: graphql-core works them out per request
    rows: RowPagePlan | None = None  # pages whose nodes render straight from their rows


@dataclass(frozen=True, slots=True)
class Arguments:
    """A root field's arguments, worked out once: literals and defaults, then variables."""

    static: dict[str, Any]  # what get_argument_values gives without the variables
    # (out name, variable, required, non-null, default or Undefined)
    variables: tuple[tuple[str, str, bool, bool, Any], ...]

    def values(self, coerced: dict[str, Any]) -> dict[str, Any] | None:
        """The arguments, or None where graphql-core would raise (it reports those)."""
        out = dict(self.static)
        for out_name, variable, required, non_null, default in self.variables:
            value = coerced.get(variable, Undefined)
            if value is Undefined:
                if required:
                    return None
                if default is not Undefined:  # as if the argument were absent
                    out[out_name] = default
                continue
            if value is None and non_null:
                return None
            out[out_name] = value
        return out


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    leaf: GraphQLScalarType | GraphQLEnumType
    non_null: bool


@dataclass(frozen=True, slots=True)
class Plan:
    operation: OperationDefinitionNode
    roots: tuple[RootSelection, ...]
    variables: tuple[Variable, ...] | None  # None: graphql-core coerces them


def plan_document(schema: Schema, document: DocumentNode) -> Plan | None:
    """The plan for ``document``, or None when it needs the generic executor."""
    try:
        return _plan(schema, document)
    except Unplannable:
        return None


def _plan(schema: Schema, document: DocumentNode) -> Plan:
    if len(document.definitions) != 1:
        raise Unplannable
    operation = document.definitions[0]
    if not isinstance(operation, OperationDefinitionNode):
        raise Unplannable
    if operation.operation is not OperationType.QUERY or operation.directives:
        raise Unplannable
    query_type = schema._schema.query_type
    assert query_type is not None
    selected: list[RootSelection] = []
    for node in operation.selection_set.selections:
        if not isinstance(node, FieldNode) or node.directives:
            raise Unplannable
        name = node.name.value
        if (name not in _LOOKUPS and name not in _PAGES) or node.selection_set is None:
            raise Unplannable
        if any(argument.name.value == "filter" for argument in node.arguments or ()):
            raise Unplannable  # input objects need strawberry's conversion
        field = query_type.fields[name]
        object_type = get_named_type(field.type)
        assert isinstance(object_type, GraphQLObjectType)
        children = _selections(schema, object_type, node)
        render = compile_renderer(children)
        arguments = _arguments(field, node)
        rows = plan_rows(_ROW_SOURCES[name], children) if name in _ROW_SOURCES else None
        selected.append(
            RootSelection(_key(node), name, node, field, children, render, arguments, rows)
        )
    return Plan(operation, tuple(selected), _variables(schema, operation))


def _variables(schema: Schema, operation: OperationDefinitionNode) -> tuple[Variable, ...] | None:
    """The operation's variables when all are scalars or enums without defaults."""
    out: list[Variable] = []
    for definition in operation.variable_definitions or ():
        if definition.default_value is not None or definition.directives:
            return None
        gql_type = type_from_ast(schema._schema, definition.type)
        non_null = isinstance(gql_type, GraphQLNonNull)
        leaf = gql_type.of_type if isinstance(gql_type, GraphQLNonNull) else gql_type
        if not isinstance(leaf, GraphQLScalarType | GraphQLEnumType):
            return None
        out.append(Variable(definition.variable.name.value, leaf, non_null))
    return tuple(out)


def _arguments(field: GraphQLField, node: FieldNode) -> Arguments | None:
    """Literals and defaults once and for all; variables named for each request."""
    literal: list[ArgumentNode] = []
    variables: list[tuple[str, str, bool, bool, Any]] = []
    for argument in node.arguments or ():
        name = argument.name.value
        definition = field.args.get(name)
        if definition is None:
            return None
        if isinstance(argument.value, VariableNode):
            out_name = definition.out_name or name
            required = is_required_argument(definition)
            non_null = isinstance(definition.type, GraphQLNonNull)
            default: Any = Undefined
            if not required:
                alone = GraphQLField(field.type, {name: definition})
                try:
                    absent = get_argument_values(alone, FieldNode(name=node.name, arguments=()))
                except Exception:
                    return None
                default = absent.get(out_name, Undefined)
            variables.append((out_name, argument.value.name.value, required, non_null, default))
        else:
            literal.append(argument)
    # The arguments variables give are left out, so that graphql-core works
    # out the others (literals, defaults) exactly as it would per request.
    given = {argument.name.value for argument in node.arguments or ()} - {
        argument.name.value for argument in literal
    }
    rest = GraphQLField(field.type, {k: v for k, v in field.args.items() if k not in given})
    try:
        static = get_argument_values(
            rest,
            FieldNode(
                name=node.name,
                alias=node.alias,
                arguments=tuple(literal),
                directives=(),
                selection_set=node.selection_set,
            ),
        )
    except Exception:
        return None
    return Arguments(static, tuple(variables))


def _coerce(plan: Plan, variables: dict[str, Any]) -> dict[str, Any] | None:
    """The coerced variables, or None when graphql-core must coerce (or report) them."""
    assert plan.variables is not None
    coerced: dict[str, Any] = {}
    for variable in plan.variables:
        value = variables.get(variable.name, Undefined)
        if value is Undefined or value is None:
            if variable.non_null:
                return None
            if value is None:
                coerced[variable.name] = None
            continue
        try:
            result = variable.leaf.coerce_input_value(value)
        except Exception:
            return None
        if result is Undefined:
            return None
        coerced[variable.name] = result
    return coerced


def _selections(
    schema: Schema, parent: GraphQLObjectType, node: FieldNode
) -> tuple[Selection, ...]:
    assert node.selection_set is not None
    out: list[Selection] = []
    for child in node.selection_set.selections:
        if not isinstance(child, FieldNode) or child.directives or child.arguments:
            raise Unplannable
        name = child.name.value
        if name == "__typename":
            out.append(Selection(_key(child), "", None, None, False, True, parent.name))
            continue
        strawberry_field = schema.get_field_for_type(name, parent.name)
        if strawberry_field is None or strawberry_field.base_resolver is not None:
            raise Unplannable
        gql_type = parent.fields[name].type
        non_null = isinstance(gql_type, GraphQLNonNull)
        inner = gql_type.of_type if isinstance(gql_type, GraphQLNonNull) else gql_type
        is_list = isinstance(inner, GraphQLList)
        if is_list:
            item = inner.of_type
            if not isinstance(item, GraphQLNonNull):
                raise Unplannable
            inner = item.of_type
        attr = strawberry_field.python_name
        if isinstance(inner, GraphQLScalarType | GraphQLEnumType) and not is_list:
            serialize = fast_serializer(inner)
            out.append(Selection(_key(child), attr, serialize, None, False, non_null))
        elif isinstance(inner, GraphQLObjectType) and child.selection_set is not None:
            grandchildren = _selections(schema, inner, child)
            out.append(Selection(_key(child), attr, None, grandchildren, is_list, non_null))
        else:
            raise Unplannable
    return tuple(out)


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


async def run_plan(
    plan: Plan, schema: Schema, context: ReadContext, variables: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The response body, or None to let strawberry answer instead."""
    fast = _coerce(plan, variables or {}) if plan.variables is not None else None
    coerced: Any = None
    if fast is None:
        coerced = get_variable_values(
            schema._schema, plan.operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            return None  # variable errors: strawberry reports them
    data: dict[str, Any] = {}
    for root in plan.roots:
        try:
            arguments = None
            if fast is not None and root.arguments is not None:
                arguments = root.arguments.values(fast)
            if arguments is None:
                if coerced is None:
                    coerced = get_variable_values(
                        schema._schema, plan.operation.variable_definitions or (), variables or {}
                    )
                    if isinstance(coerced, list):
                        return None
                arguments = get_argument_values(root.field, root.node, coerced)
            if root.rows is not None:
                data[root.key] = await root.rows.run(
                    context, _page_request(arguments), arguments.get("minPosition")
                )
                continue
            value = await _call(root.name, context, arguments)
            data[root.key] = _rendered(root, value) if root.name in _LOOKUPS else root.render(value)
        except ReadApiError as err:
            if len(plan.roots) != 1:
                return None  # partial results: let the executor order them
            # Answered here rather than run again: a second consistency wait
            # would double the time the client waits for its error.
            error = GraphQLError(err.message, [root.node], path=[root.key], original_error=err)
            nullable = not isinstance(root.field.type, GraphQLNonNull)
            body: dict[str, Any] = {"data": {root.key: None} if nullable else None}
            body["errors"] = [format_error(error, debug=context.services.debug)]
            return body
        except Exception:
            return None
    return {"data": data}


_MEMO = "vigil:rendered"  # not an identifier: never a field's attribute


def _rendered(root: RootSelection, value: Any) -> dict[str, Any]:
    """``root.render(value)``, remembered on ``value`` for the next request.

    Lookups are served from the row cache, which hands out the same object
    until its row changes; such an object is never modified, so what a plan
    rendered of it stays true. The rendering is only read (serialized into
    the response), never changed.
    """
    attributes = getattr(value, "__dict__", None)
    if attributes is None:
        return root.render(value)
    memo = attributes.get(_MEMO)
    if memo is not None:
        hit = memo.get(root.render)
        if hit is not None:
            return hit
    rendered = root.render(value)
    if memo is None:
        memo = attributes[_MEMO] = {}
    if len(memo) < _MEMO_SIZE:
        memo[root.render] = rendered
    return rendered


_MEMO_SIZE = 16


async def _call(name: str, context: ReadContext, arguments: dict[str, Any]) -> Any:
    min_position = arguments.get("minPosition")
    if name in _LOOKUPS:
        kwargs = {_ARGUMENTS[k]: v for k, v in arguments.items() if k in _ARGUMENTS}
        return await _LOOKUPS[name](context, min_position=min_position, **kwargs)
    return await _PAGES[name](context, _page_request(arguments), None, min_position)


def _page_request(arguments: dict[str, Any]) -> PageRequest:
    return PageRequest(**{k: arguments.get(k) for k in _PAGE_ARGUMENTS})
