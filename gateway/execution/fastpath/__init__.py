"""The compiled fast path: a query the data source can express in SQL runs as one statement per root field.

The database builds each root field's JSON; the response is those bytes joined, without a
Python object per value. A compiled plan is cached by document, operation, the shape of the
variables (which are null or absent, and the values of those that change the SQL's text) and
the shape of the policy's marks. Whatever cannot be compiled, or fails here, returns None and
runs through Strawberry instead, which then produces the same answer, or the same errors, the
interpreted way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from enum import Enum
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode, OperationType, is_non_null_type
from graphql.execution.values import VariableValues
from strawberry.types import ExecutionResult

from gateway.datasources.protocol import DataSource, DataSourceUnavailable, StatementTimeout
from gateway.datasources.sql.json_sql import JsonSql
from gateway.datasources.sql.source import SqlDataSource
from gateway.errors import BadUserInput
from gateway.execution.documents import Prepared
from gateway.execution.fastpath.club import compile_operation
from gateway.execution.fastpath.compiler import Compiler, NotCompilable, RootStatement
from gateway.execution.policy import Decision
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.telemetry.tracing import Tracing

__all__ = ["FastPath", "fast_path_for"]

log = logging.getLogger(__name__)


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


def _weight(key: tuple[Any, ...], statements: list[RootStatement]) -> int:
    """A plan's characters: its key holds the document's text, its statements their SQL."""
    return len(key[0]) + sum(len(statement.sql or "") for statement in statements)


# Characters the plans keep in all: an app's 512 operations take a few MB, while documents padded
# to the parser's 200 KB would otherwise hold 100 MB.
PLAN_BUDGET = 8_000_000


class FastPath:
    """Compiles and runs query operations against one data source's JSON SQL."""

    def __init__(self, schema: GraphQLSchema, source: SqlDataSource, sql: JsonSql, plans: int = 512) -> None:
        self._schema = schema
        self._source = source
        self._sql = sql
        self._plans: OrderedDict[tuple[Any, ...], list[RootStatement]] = OrderedDict()  # least recent first
        self._size = plans
        self.retained = 0  # characters of the plans kept (see `_weight`), at most PLAN_BUDGET
        self.answered = 0  # operations this path answered, for tests and benchmarks
        self.tracing: Tracing | None = None  # a span around planning, when tracing is on

    def __len__(self) -> int:
        """The plans kept."""
        return len(self._plans)

    def plan(
        self,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        coerced: VariableValues,
        decision: Decision,
    ) -> tuple[tuple[Any, ...], list[RootStatement], VariableValues] | None:
        """The plan's key, its statements and the variables it reads, or None for the interpreted path."""
        if operation.operation is not OperationType.QUERY:
            return None
        name = operation.name.value if operation.name else None
        if decision.marks:
            # Each mark's value travels with the variables, so a plan serves every request alike.
            coerced = VariableValues(coerced.sources, {**coerced.coerced, **decision.values})
        shapes = []  # a loop: a comprehension is a call
        for k, v in coerced.coerced.items():
            shapes.append((k, _shape(v)))
        key = (prepared.query, name, tuple(shapes), decision.shape)
        statements = self._plans.get(key)
        if statements is not None:
            self._plans.move_to_end(key)
        else:
            try:
                statements = compile_operation(
                    self._schema,
                    prepared.fragments,
                    operation.selection_set,
                    coerced,
                    self._sql,
                    decision.marks,
                )
            except NotCompilable as exc:
                log.debug("interpreted: %s", exc)
                statements = _INTERPRETED
            except (BadUserInput, GraphQLError, ValueError, KeyError):
                return None  # depends on this request's values: not cached
            self._remember(key, statements)
        if statements is _INTERPRETED:
            return None
        return key, statements, coerced

    def _remember(self, key: tuple[Any, ...], statements: list[RootStatement]) -> None:
        replaced = self._plans.pop(key, None)  # a plan the database refused is replaced
        if replaced is not None:
            self.retained -= _weight(key, replaced)
        weight = _weight(key, statements)
        if weight > PLAN_BUDGET:
            return
        self._plans[key] = statements
        self.retained += weight
        while len(self._plans) > self._size or self.retained > PLAN_BUDGET:
            self.retained -= _weight(*self._plans.popitem(last=False))

    async def execute(
        self,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        variables: VariableValues,
        decision: Decision,
    ) -> bytes | ExecutionResult | None:
        """The response body, or None when the operation must run through Strawberry.

        A root field whose statement the database stopped (DB_STATEMENT_TIMEOUT) is answered as
        graphql-core answers a resolver's error: a result with the other fields' data. Raises
        DataSourceUnavailable when no connection could be had.
        """
        if self.tracing is None:
            planned = self.plan(prepared, operation, variables, decision)
        else:
            with self.tracing.span("graphql.plan"):
                planned = self.plan(prepared, operation, variables, decision)
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
            raise  # the executor reports it, without waiting a second time
        except _RowsRefused:
            return None  # the interpreted path raises the matching error
        except Exception as exc:
            if self._sql.refuses(exc):
                # The database refused the statement itself (SQLite's parser has a small stack,
                # say) and will again: this operation runs interpreted from now on.
                log.warning("fast path: the database refused a compiled statement (%s); interpreting", exc)
                self._remember(key, _INTERPRETED)
            return None  # a deadlock or a timeout passes: the plan stays
        self.answered += 1
        # One copy of each value into the body: an N answer is ~26 KB.
        parts = [b'{"data":{']
        for i, (statement, value) in enumerate(zip(statements, values, strict=True)):
            if not isinstance(value, bytes):
                return self._stopped(prepared, operation, coerced, statements, values)
            parts += (b',"' if i else b'"', statement.key.encode(), b'":', value)
        parts.append(b"}}")
        return b"".join(parts)

    def _stopped(
        self,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        variables: VariableValues,
        statements: list[RootStatement],
        values: list[bytes | StatementTimeout],
    ) -> ExecutionResult:
        """The result when the database stopped some root fields' statements: each such field is null
        with a located TIMEOUT error, the other fields keep their data, and a non-null field stopped
        nulls the whole data, as on the interpreted path (which would wait for the statement again)."""
        fields = Compiler(self._schema, prepared.fragments, variables, self._sql, {}, {}).collect(
            "Query", [operation.selection_set]
        )
        query_type = self._schema.query_type
        data: dict[str, Any] | None = {}
        errors = []
        for statement, value in zip(statements, values, strict=True):
            if not isinstance(value, StatementTimeout):
                if data is not None:
                    data[statement.key] = orjson.loads(value)
                continue
            nodes = fields[statement.key]
            errors.append(GraphQLError(str(value), nodes, path=[statement.key], original_error=value))
            field = query_type.fields[nodes[0].name.value] if query_type else None
            if field is None or is_non_null_type(field.type):
                data = None
            elif data is not None:
                data[statement.key] = None
        return ExecutionResult(data=data, errors=errors)


def fast_path_for(schema: GraphQLSchema, settings: Settings, source: DataSource) -> FastPath | None:
    """The fast path over an open `source`, or None when FAST_PATH=false or it has no JSON SQL."""
    if not settings.fast_path or not isinstance(source, SqlDataSource) or source.json_sql is None:
        return None
    return FastPath(schema, source, source.json_sql)


class _RowsRefused(Exception):
    """A row fails a check of the statement: the interpreted path raises the matching error."""


async def _run(source: SqlDataSource, statement: RootStatement, args: list[Any]) -> bytes | StatementTimeout:
    if statement.sql is None:
        return statement.constant
    try:
        value, ok = await source.fetch_json(statement.sql, args)
    except StatementTimeout as exc:
        return exc  # this root field only: the others answer
    if not ok:
        raise _RowsRefused(statement.key)
    return b"null" if value is None else value
