"""What both doors' Strawberry views share: the executor runs every operation they receive, and
every answer follows GraphQL over HTTP (gateway.doors.responses).

Strawberry's view keeps what is its own (GET's query parameters, GraphiQL, batches, the 400s
of malformed requests); each operation it finds, single or in a batch, goes to the executor.
A door answers a JSON POST of one operation itself, with `answer_operation`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cross_web import HTTPException
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET

from gateway.auth.identity import Identity
from gateway.doors.graphiql import graphiql_assets
from gateway.doors.refusals import bad_request, not_by_get
from gateway.doors.responses import Answer, answer_outcome, batch_status, body_of, media_type, status_of
from gateway.errors import Unauthenticated
from gateway.execution.executor import Executor
from gateway.execution.operation import MalformedRequest, Operation, read_json
from gateway.execution.outcome import as_result, encode
from gateway.schema import RequestContext

__all__ = ["ExecutorView", "answer_operation", "is_json", "run_operation"]


@lru_cache(maxsize=64)  # a few distinct headers; parsing one the email way costs 4 us a request
def is_json(content_type: str) -> bool:
    """Whether Strawberry's view reads a body of `content_type` as JSON (its own test, so a door
    that checks such bodies first checks every one the view would read)."""
    media, _ = parse_content_type(content_type)
    return "application/json" in media


async def answer_operation(
    executor: Executor, operation: Operation, request: Any, identity: Identity | None, media: str
) -> Answer | None:
    """The answer to a POSTed operation, or None when Strawberry's view must answer it with a 400
    (no query, no such operation, an operation type POST does not run)."""
    try:
        outcome = await executor.execute(operation, request, identity)
    except (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError):
        return None  # raised before anything ran
    return answer_outcome(outcome, media)


@dataclass
class RequestData(GraphQLRequestData):
    """An operation as Strawberry's view parsed it, and the persisted document it names, if any."""

    document_id: str | None = None

    def operation(self) -> Operation:
        return Operation(self.query, self.operation_name, self.variables, self.extensions, self.document_id)


# GET parameters a request may give once: two `query`s, read as the first by one door and the last
# by another (or by a CDN in front), would run one operation where another was checked.
_ONCE = frozenset({"query", "operationName", "variables", "extensions", "documentId"})


async def run_operation(
    executor: Executor, request: Any, identity: Identity | None, data: RequestData, method: str
) -> ExecutionResult:
    """One operation a view parsed, run by the executor, as Strawberry's `execute_single` would answer it."""
    allowed = OperationType.from_http(method)  # type: ignore[arg-type]
    operation = data.operation()
    try:
        outcome = await executor.execute(operation, request, identity, allowed)
    except CannotGetOperationTypeError as exc:
        raise HTTPException(400, exc.as_http_error_reason()) from exc
    except InvalidOperationTypeError as exc:
        if method == "GET":
            raise MutationByGet(exc.as_http_error_reason(method)) from exc
        raise HTTPException(400, exc.as_http_error_reason(method)) from exc
    except MissingQueryError as exc:
        raise HTTPException(400, "No GraphQL query found in the request") from exc
    return as_result(outcome)


class MutationByGet(MalformedRequest):
    """A GET whose operation is a mutation: answered 405, Allow: POST."""


def _media(request: Any) -> str:
    return media_type(request.headers.get("accept", ""))


class ExecutorView:
    """Mixed into a Strawberry view class (aiohttp's or ASGI's) before it; `executor` is set by the door,
    which has identified the request before the view sees it. Each door's view says how its
    framework's responses take a status, headers and media type."""

    executor: Executor

    def identity_of(self, request: Any) -> Identity | None:
        """The identity the door found for `request`."""
        raise NotImplementedError

    def on_slow(self, request: Any) -> Callable[[], None] | None:
        """What a subscription streamed to `request` calls when it falls too far behind (closes it)."""
        return None

    async def _until_expiry(
        self, results: AsyncGenerator[ExecutionResult, None], expires_at: float
    ) -> AsyncIterator[ExecutionResult]:
        """`results` until the token expires, then an UNAUTHENTICATED error, and the stream ends: a
        subscriber receives only what it could query."""
        while (remaining := expires_at - time.time()) > 0:
            try:
                result = await asyncio.wait_for(anext(results), remaining)
            except StopAsyncIteration:
                return
            except TimeoutError:
                break
            yield result
        await results.aclose()
        expired = self.executor.refusal(Unauthenticated("the token expired: subscribe again with a new one"))
        self.executor.telemetry.answered(expired.errors or [])
        yield expired

    def set_status(self, sub_response: Any, status: int, headers: dict[str, str]) -> None:
        """Give the response Strawberry is building `status` and `headers`."""
        raise NotImplementedError

    def query_names(self, params: Any) -> list[str]:
        """The names of a request's query parameters, each as often as it is given."""
        raise NotImplementedError

    def retyped(self, response: Any, media: str) -> Any:
        """`response` answering in `media` if it is a JSON answer; any other response as it is."""
        raise NotImplementedError

    def respond(self, answer: Answer) -> Any:
        """`answer` as the framework's response."""
        raise NotImplementedError

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        try:
            response = await super().run(request, context, root_value)  # type: ignore[misc]
        except MutationByGet as exc:
            return self.respond(not_by_get(exc).answer(_media(request)))
        except MalformedRequest as exc:
            return self.respond(bad_request(exc).answer(_media(request)))
        return self.retyped(response, _media(request))

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming a persisted operation is an operation, not a browser asking for GraphiQL:
        # Apollo's persisted-queries link sends its hash-only GET with `Accept: */*`.
        params = request.query_params
        if params.get("extensions") is not None or params.get("documentId") is not None:
            return False
        return bool(super().should_render_graphql_ide(request))  # type: ignore[misc]

    async def render_graphql_ide(self, request: Any) -> Any:
        # Our page, whose assets the gateway serves, instead of Strawberry's, which loads them from a CDN.
        return self.respond(graphiql_assets().page())

    def decode_json(self, data: str | bytes) -> object:
        # GET's `variables` and `extensions` too: nested 10,000 deep they overflowed json's stack.
        return read_json(data)

    async def get_context(self, request: Any, response: Any) -> RequestContext:
        return self.executor.context(request, await self.executor.open(), self.identity_of(request))

    def encode_json(self, data: object) -> bytes:
        return encode(data)

    async def parse_http_body(self, request: Any) -> RequestData | list[RequestData]:
        # Strawberry's parse, and the `documentId` it leaves out (GET, batches, streams).
        get = request.method == "GET"
        if get:
            names = self.query_names(request.query_params)
            repeated = sorted(name for name in _ONCE if names.count(name) > 1)
            if repeated:
                raise MalformedRequest(f"the query parameter `{repeated[0]}` is given more than once")
        parsed = await super().parse_http_body(request)  # type: ignore[misc]
        items: list[GraphQLRequestData] = parsed if isinstance(parsed, list) else [parsed]
        ids: list[Any] = [None] * len(items)
        if get:
            ids = [request.query_params.get("documentId")]
        elif any(item.query is None for item in items) and is_json(request.content_type or ""):
            raw: Any = self.decode_json(await request.get_body())  # Strawberry read it as such
            ids = [item.get("documentId") for item in (raw if isinstance(raw, list) else [raw])]
        if not all(i is None or isinstance(i, str) for i in ids):
            raise MalformedRequest("`documentId` must be a string or null")
        wrapped = [RequestData(**vars(item), document_id=i) for item, i in zip(items, ids, strict=True)]
        return wrapped if isinstance(parsed, list) else wrapped[0]

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        return body_of(result, _media(request))

    async def _batched(
        self, request: Any, identity: Identity | None, data: RequestData, method: str
    ) -> ExecutionResult:
        """One operation of a batch. One it cannot run (no query, no such operation) is its own
        coded error: the others run, and may write, so a 400 for the batch would lose their answers."""
        try:
            return await run_operation(self.executor, request, identity, data, method)
        except HTTPException as exc:
            return self.executor.refusal(MalformedRequest(exc.reason))

    async def execute_operation(
        self,
        request: Any,
        request_adapter: Any,
        request_data: RequestData | list[RequestData],
        context: Any,
        root_value: Any,
        sub_response: Any,
    ) -> ExecutionResult | list[ExecutionResult]:
        method = request_adapter.method
        identity = self.identity_of(request)
        if isinstance(request_data, list):
            runs = (self._batched(request, identity, data, method) for data in request_data)
            results = list(await asyncio.gather(*runs))
            self.set_status(sub_response, *batch_status(results, _media(request)))
            return results
        if request_data.protocol != "http":
            # An event stream (graphql-sse, distinct connections): each result the executor streams.
            operation = request_data.operation()
            allowed = OperationType.from_http(method)  # type: ignore[arg-type]
            stream = self.executor.stream(operation, request, identity, self.on_slow(request), allowed)
            if identity is None or identity.expires_at is None:
                return stream  # type: ignore[return-value]
            return self._until_expiry(stream, identity.expires_at)  # type: ignore[return-value]
        result = await run_operation(self.executor, request, identity, request_data, method)
        self.set_status(sub_response, *status_of(result, _media(request)))
        return result
