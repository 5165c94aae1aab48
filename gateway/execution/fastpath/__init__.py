"""The compiled fast path: a query the data source can express in SQL runs as one statement per root field.

The database builds each root field's JSON; the response is those bytes joined, without a
Python object per value. Documents are parsed and validated against the Strawberry schema
once; a compiled plan is cached by document, operation and the shape of the variables
(which are null or absent, and the values of those that change the SQL's text). Whatever
cannot be compiled, or fails here, returns None and runs through Strawberry instead, which
then produces the same answer, or the same errors, the interpreted way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from enum import Enum
from typing import Any, Generic, TypeVar

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    validate,
)
from graphql.execution.values import VariableValues, get_variable_values

from gateway.datasources.protocol import DataSource, DataSourceUnavailable
from gateway.datasources.sql.json_sql import JsonSql
from gateway.datasources.sql.source import SqlDataSource
from gateway.errors import BadUserInput
from gateway.execution.fastpath.compiler import NotCompilable, RootStatement, compile_operation
from gateway.settings import Settings

__all__ = ["FastPath", "fast_path_for"]

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self._size:
            self._items.popitem(last=False)


class _Document:
    """A parsed, validated document: its operations and fragments."""

    def __init__(self, document: DocumentNode) -> None:
        self.operations: dict[str | None, OperationDefinitionNode] = {}
        self.fragments: dict[str, FragmentDefinitionNode] = {}
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                self.operations[definition.name.value if definition.name else None] = definition
            elif isinstance(definition, FragmentDefinitionNode):
                self.fragments[definition.name.value] = definition

    def operation(self, name: str | None) -> OperationDefinitionNode | None:
        if name is None:
            return next(iter(self.operations.values())) if len(self.operations) == 1 else None
        return self.operations.get(name)


_INVALID = object()  # a document that does not parse or validate: Strawberry reports why
_INTERPRETED: list[RootStatement] = []  # an operation the compiler cannot express


def _shape(value: Any) -> Any:
    """What of a variable's value changes the compiled SQL: null-ness, and flags, enums and sizes."""
    if value is None:
        return None
    if isinstance(value, bool | int | Enum):
        return value
    if isinstance(value, dict):
        return tuple((k, _shape(v)) for k, v in value.items())
    return ...


class FastPath:
    """Compiles and runs query operations against one data source's JSON SQL."""

    def __init__(
        self,
        schema: GraphQLSchema,
        source: SqlDataSource,
        sql: JsonSql,
        documents: int = 256,
        plans: int = 512,
    ) -> None:
        self._schema = schema
        self._source = source
        self._sql = sql
        self._documents: _Lru[str, Any] = _Lru(documents)
        self._plans: _Lru[tuple[Any, ...], list[RootStatement]] = _Lru(plans)
        self.answered = 0  # operations this path answered, for tests and benchmarks

    def _document(self, query: str) -> _Document | None:
        cached = self._documents.get(query)
        if cached is None:
            try:
                document = parse(query)
            except GraphQLError:
                cached = _INVALID
            else:
                cached = _INVALID if validate(self._schema, document) else _Document(document)
            self._documents.put(query, cached)
        return cached if isinstance(cached, _Document) else None

    def plan(
        self, query: str, operation_name: str | None, variables: dict[str, Any] | None
    ) -> tuple[tuple[Any, ...], list[RootStatement], VariableValues] | None:
        """The plan's key, its statements and the coerced variables, or None for the interpreted path."""
        document = self._document(query)
        if document is None:
            return None
        operation = document.operation(operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        coerced = get_variable_values(self._schema, operation.variable_definitions or (), variables or {})
        if not isinstance(coerced, VariableValues):
            return None
        key = (query, operation_name, tuple((k, _shape(v)) for k, v in coerced.coerced.items()))
        statements = self._plans.get(key)
        if statements is None:
            try:
                statements = compile_operation(
                    self._schema, document.fragments, operation.selection_set, coerced, self._sql
                )
            except NotCompilable as exc:
                log.debug("interpreted: %s", exc)
                statements = _INTERPRETED
            except (BadUserInput, GraphQLError, ValueError, KeyError):
                return None  # depends on this request's values: not cached
            self._plans.put(key, statements)
        if statements is _INTERPRETED:
            return None
        return key, statements, coerced

    async def execute(
        self,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> bytes | None:
        """The response body, or None when the operation must run through Strawberry.

        Raises DataSourceUnavailable when no connection could be had.
        """
        planned = self.plan(query, operation_name, variables)
        if planned is None:
            return None
        key, statements, coerced = planned
        try:
            bound = [[get(coerced) for get in s.params] for s in statements]
        except (BadUserInput, NotCompilable, GraphQLError, ValueError, KeyError):
            return None
        try:
            if len(statements) == 1:
                values = [await _run(self._source, statements[0], bound[0])]
            else:
                runs = (_run(self._source, s, b) for s, b in zip(statements, bound, strict=True))
                values = list(await asyncio.gather(*runs))
        except DataSourceUnavailable:
            raise  # the door lets the interpreted path report it, without waiting again
        except _RowsRefused:
            return None  # the interpreted path raises the matching error
        except Exception as exc:
            # A statement the database refuses (SQLite's parser has a small stack, say) will
            # be refused again: this operation runs interpreted from now on.
            log.warning("fast path: the database refused a compiled statement (%s); interpreting", exc)
            self._plans.put(key, _INTERPRETED)
            return None
        self.answered += 1
        fields = b",".join(b'"%s":%s' % (s.key.encode(), v) for s, v in zip(statements, values, strict=True))
        return b'{"data":{' + fields + b"}}"


def fast_path_for(schema: GraphQLSchema, settings: Settings, source: DataSource) -> FastPath | None:
    """The fast path over an open `source`, or None when FAST_PATH=false or it has no JSON SQL."""
    if not settings.fast_path or not isinstance(source, SqlDataSource) or source.json_sql is None:
        return None
    return FastPath(schema, source, source.json_sql)


class _RowsRefused(Exception):
    """A row fails a check of the statement: the interpreted path raises the matching error."""


async def _run(source: SqlDataSource, statement: RootStatement, args: list[Any]) -> bytes:
    if statement.sql is None:
        return statement.constant
    value, ok = await source.fetch_json(statement.sql, args)
    if not ok:
        raise _RowsRefused(statement.key)
    return b"null" if value is None else value.encode()
