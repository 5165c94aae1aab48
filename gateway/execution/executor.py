"""POST /graphql with a JSON body of one operation, answered without Strawberry's HTTP view.

Both doors (aiohttp and ASGI) bring such requests here: the compiled fast path answers what it
can, Strawberry's schema executes the rest, and the answer is what Strawberry's view would
send (`process_result`, status 200). The view itself costs about 14% of a mutation's time
(request adapters, a WebSocket handshake check, the body decoded again by the standard
library), so it keeps only what is its own: GET, GraphiQL, batches, streamed responses and
the 400s of malformed bodies, for which `answer` returns None and the door hands the request on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import strawberry
from strawberry.exceptions import MissingQueryError
from strawberry.http import process_result
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from gateway.datasources.protocol import DataSource, DataSourceUnavailable
from gateway.datasources.unavailable import UnavailableSource
from gateway.execution.fastpath import FastPath

__all__ = ["JsonOperation", "answer", "encode", "read_operation"]

encode = orjson.dumps  # the JSON encoder of every GraphQL response, here and in the views

# What a POST may run (Strawberry's view allows the same); subscriptions need a stream.
_POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
# Accept values for which Strawberry's view streams the answer (SSE, multipart subscriptions).
_STREAMED = ("text/event-stream", "multipart/mixed")


@dataclass(frozen=True, slots=True)
class JsonOperation:
    """One GraphQL operation as a JSON body carries it."""

    query: str
    operation_name: str | None
    variables: dict[str, Any] | None
    extensions: dict[str, Any] | None


def read_operation(body: bytes, accept: str) -> JsonOperation | None:
    """The operation in `body`, or None for anything Strawberry's view must judge or stream."""
    lowered = accept.lower()
    if any(media in lowered for media in _STREAMED):
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the view answers with its own message (it also reads what orjson refuses)
    if not isinstance(payload, dict):
        return None  # a batch
    query, name = payload.get("query"), payload.get("operationName")
    variables, extensions = payload.get("variables"), payload.get("extensions")
    if not isinstance(query, str) or not (name is None or isinstance(name, str)):
        return None
    if not (variables is None or isinstance(variables, dict)):
        return None
    if not (extensions is None or isinstance(extensions, dict)):
        return None
    return JsonOperation(query, name, variables, extensions)


async def answer(
    schema: strawberry.Schema,
    fast: FastPath | None,
    source: DataSource,
    operation: JsonOperation,
    context: Callable[[DataSource], Any],
) -> bytes | None:
    """The response body for `operation`, or None when Strawberry's view must answer (a 400).

    `context` builds the request's context around the data source its resolvers must use.
    """
    if fast is not None:
        try:
            compiled = await fast.execute(operation.query, operation.operation_name, operation.variables)
        except DataSourceUnavailable as exc:
            # The resolvers fail at once with the same reason instead of waiting
            # DB_ACQUIRE_TIMEOUT a second time; the error reads as on the interpreted path.
            source = UnavailableSource.found(exc)
        else:
            if compiled is not None:
                return compiled
    try:
        result = await schema.execute(
            operation.query,
            variable_values=operation.variables,
            context_value=context(source),
            operation_name=operation.operation_name,
            allowed_operation_types=_POST_OPERATIONS,
            operation_extensions=operation.extensions,
        )
    except (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError):
        return None  # raised before anything ran; the view answers with its 400
    return encode(process_result(result))
