"""What both doors' Strawberry views share: the executor runs every operation they receive.

Strawberry's view keeps what is its own (GET's query parameters, GraphiQL, batches, the 400s
of malformed requests); each operation it finds, single or in a batch, goes to the executor.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from cross_web import HTTPException
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from gateway.auth.identity import Identity
from gateway.execution.executor import Executor, encode
from gateway.execution.operation import Operation
from gateway.schema import RequestContext

__all__ = ["ExecutorView", "run_operation"]


async def run_operation(
    executor: Executor, request: Any, identity: Identity | None, data: GraphQLRequestData, method: str
) -> ExecutionResult:
    """One operation a view parsed, run by the executor, as Strawberry's `execute_single` would answer it."""
    allowed = OperationType.from_http(method)  # type: ignore[arg-type]
    operation = Operation(data.query, data.operation_name, data.variables, data.extensions)
    try:
        outcome = await executor.execute(operation, request, identity, allowed)
    except CannotGetOperationTypeError as exc:
        raise HTTPException(400, exc.as_http_error_reason()) from exc
    except InvalidOperationTypeError as exc:
        raise HTTPException(400, exc.as_http_error_reason(method)) from exc
    except MissingQueryError as exc:
        raise HTTPException(400, "No GraphQL query found in the request") from exc
    if isinstance(outcome, bytes):
        # A compiled answer has data and no errors.
        return ExecutionResult(data=orjson.loads(outcome)["data"], errors=None)
    return outcome


class ExecutorView:
    """Mixed into a Strawberry view class (aiohttp's or ASGI's) before it; `executor` is set by the door,
    which has identified the request before the view sees it."""

    executor: Executor

    def identity_of(self, request: Any) -> Identity | None:
        """The identity the door found for `request`."""
        raise NotImplementedError

    async def get_context(self, request: Any, response: Any) -> RequestContext:
        return self.executor.context(request, await self.executor.open(), self.identity_of(request))

    def encode_json(self, data: object) -> bytes:
        return encode(data)

    async def execute_operation(
        self,
        request: Any,
        request_adapter: Any,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Any,
        root_value: Any,
        sub_response: Any,
    ) -> ExecutionResult | list[ExecutionResult]:
        method = request_adapter.method
        identity = self.identity_of(request)
        if isinstance(request_data, list):
            runs = (run_operation(self.executor, request, identity, data, method) for data in request_data)
            return list(await asyncio.gather(*runs))
        if request_data.protocol != "http":
            raise HTTPException(400, "Streamed responses are not supported")
        return await run_operation(self.executor, request, identity, request_data, method)
