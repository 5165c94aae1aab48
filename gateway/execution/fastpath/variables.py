"""A request's variables coerced for the compiler, with the operation's variable types read once.

graphql-core's `get_variable_values` resolves each variable's type from the document on every call;
the signatures here are resolved once per cached document. Only operations whose variables are all
scalars or enums are coerced here, and only when each is given plainly; anything else (a default to
apply, a missing or invalid value, lists and input objects with their nesting checks) is left to
graphql-core.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLError,
    GraphQLID,
    GraphQLNonNull,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    Undefined,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution.get_variable_signature import GraphQLVariableSignature, get_variable_signature
from graphql.execution.values import VariableValues, get_variable_values
from graphql.utilities import coerce_input_value

__all__ = ["Signatures", "coerce_variables", "signatures_of"]

Signatures = tuple[GraphQLVariableSignature, ...]

_TEXT = (GraphQLID, GraphQLString)  # a string value is already theirs


def signatures_of(schema: GraphQLSchema, operation: OperationDefinitionNode) -> Signatures | None:
    """The operation's variable signatures, or None unless every variable is a scalar or an enum."""
    found = []
    for node in operation.variable_definitions or ():
        signature = get_variable_signature(schema, node)
        if isinstance(signature, GraphQLError) or not is_leaf_type(get_nullable_type(signature.type)):
            return None
        found.append(signature)
    return tuple(found)


def coerce_variables(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    signatures: Signatures | None,
    given: dict[str, Any] | None,
) -> VariableValues | None:
    """The coerced variables, or None when they do not coerce (the interpreted path reports why)."""
    inputs = given or {}
    coerced: dict[str, Any] = {}
    for signature in signatures if signatures is not None else ():
        value = inputs.get(signature.name, Undefined)
        if value is Undefined or signature.default is not None:
            break  # absent, or defaulted: graphql-core's rules for those
        if value is None:
            if is_non_null_type(signature.type):
                return None
            coerced[signature.name] = None
            continue
        # Most variables are IDs and strings sent as strings: nothing to coerce (~1 us each).
        kind = signature.type
        if type(value) is str and (kind.of_type if type(kind) is GraphQLNonNull else kind) in _TEXT:
            result: Any = value
        else:
            result = coerce_input_value(value, kind)
        if result is Undefined:
            return None
        coerced[signature.name] = result
    else:
        if signatures is not None:
            return VariableValues({}, coerced)
    general = get_variable_values(schema, operation.variable_definitions or (), inputs)
    return general if isinstance(general, VariableValues) else None
