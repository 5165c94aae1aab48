"""A request's variables coerced once, for both paths, by coercers compiled per operation.

graphql-core coerces every value by walking its type afresh (which wrapper, which kind, which
fields are required) and first walks the whole value once more to bound its nesting: 10 shots in
an input took ~75 µs of a mutation. The coercers here are closures built once per cached
operation from its variables' types, so a request only runs the checks. They accept exactly what
graphql-core accepts and build the same values; whatever they do not accept plainly (a missing or
invalid value, a variable's default, a one-of or recursive input type) goes to graphql-core's own
coercion, which gives the answer, or the errors, as it always has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLID,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    Undefined,
    is_required_input_field,
)
from graphql.execution.get_variable_signature import GraphQLVariableSignature, get_variable_signature
from graphql.execution.values import VariableValues, VariableValueSource, get_variable_values
from graphql.pyutils import is_iterable
from graphql.utilities.coerce_input_value import coerce_default_value

__all__ = ["Coercers", "coerce_variables", "coercers_of"]

Coercer = Callable[[Any], Any]  # the coerced value, or Undefined when graphql-core must decide
Coercers = tuple[tuple[GraphQLVariableSignature, Coercer], ...]

MAX_COERCION_ERRORS = 50  # graphql-core's execute() reports at most this many


class _NotCompiled(Exception):
    """A type the compiled coercers leave to graphql-core."""


def _leaf(kind: Any, nullable: bool) -> Coercer:
    coerce = kind.coerce_input_value
    text = kind in (GraphQLID, GraphQLString)
    null = None if nullable else Undefined

    # Null-ness checked here, not by a wrapper: most variables are one ID or String.
    def leaf(value: Any) -> Any:
        if value is None:
            return null
        if text and type(value) is str:
            return value
        try:
            return coerce(value)
        except Exception:  # graphql-core's own coercion names the problem
            return Undefined

    return leaf


def _list(item: Coercer) -> Coercer:
    def many(value: Any) -> Any:
        if not is_iterable(value):
            value = (value,)  # a single value is a list of one
        result = []
        for given in value:
            coerced = item(given)
            if coerced is Undefined:
                return Undefined
            result.append(coerced)
        return result

    return many


def _object(kind: GraphQLInputObjectType, seen: frozenset[str]) -> Coercer:
    if kind.is_one_of or kind.name in seen:
        raise _NotCompiled(kind.name)
    inner = seen | {kind.name}
    fields = []
    for name, field in kind.fields.items():
        required = is_required_input_field(field)
        # An absent field's default is coerced once, as graphql-core memoizes it on the field.
        default = Undefined if required else coerce_default_value(field)
        fields.append((name, field.out_name or name, _compile(field.type, inner), required, default))
    names = frozenset(kind.fields)
    out_type = kind.out_type

    def input_object(value: Any) -> Any:
        if not isinstance(value, dict) or not names.issuperset(value):
            return Undefined
        result: dict[str, Any] = {}
        for name, out_name, coerce, required, default in fields:
            given = value.get(name, Undefined)
            if given is Undefined:
                if required:
                    return Undefined
                if default is not Undefined:
                    result[out_name] = default
                continue
            coerced = coerce(given)
            if coerced is Undefined:
                return Undefined
            result[out_name] = coerced
        return out_type(result)

    return input_object


def _compile(kind: GraphQLInputType, seen: frozenset[str] = frozenset()) -> Coercer:
    """The coercer of values of `kind`, as graphql-core's coerce_input_value accepts them."""
    nullable = not isinstance(kind, GraphQLNonNull)
    of_type = kind if nullable else kind.of_type  # type: ignore[union-attr]
    if isinstance(of_type, GraphQLList):
        coerce = _list(_compile(of_type.of_type, seen))
    elif isinstance(of_type, GraphQLInputObjectType):
        coerce = _object(of_type, seen)
    else:
        return _leaf(of_type, nullable)
    null = None if nullable else Undefined

    def list_or_object(value: Any) -> Any:
        return null if value is None else coerce(value)

    return list_or_object


def coercers_of(schema: GraphQLSchema, operation: OperationDefinitionNode) -> Coercers | None:
    """The operation's variables with their coercers, or None when graphql-core coerces them all."""
    found = []
    try:
        for node in operation.variable_definitions or ():
            signature = get_variable_signature(schema, node)
            if isinstance(signature, GraphQLError) or signature.default is not None:
                return None
            found.append((signature, _compile(signature.type)))
    except _NotCompiled:
        return None
    return tuple(found)


def coerce_variables(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    coercers: Coercers | None,
    given: dict[str, Any] | None,
) -> VariableValues | list[GraphQLError]:
    """The request's variables as graphql-core's executor takes them, or the errors it reports."""
    inputs = given or {}
    if coercers is not None:
        sources: dict[str, VariableValueSource] = {}
        coerced: dict[str, Any] = {}
        for signature, coerce in coercers:
            name = signature.name
            value = inputs.get(name, Undefined)
            if value is Undefined:
                if isinstance(signature.type, GraphQLNonNull):
                    break
                sources[name] = VariableValueSource(signature)  # absent: not in `coerced`
                continue
            result = coerce(value)
            if result is Undefined:
                break
            sources[name] = VariableValueSource(signature, value)
            coerced[name] = result
        else:
            return VariableValues(sources, coerced)
    return get_variable_values(
        schema, operation.variable_definitions or (), inputs, max_errors=MAX_COERCION_ERRORS
    )
