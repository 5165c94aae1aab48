"""The executor: the one owner of a GraphQL operation, whichever door it came through.

It holds the schema, the data source (opened at start-up or on first use), the compiled fast
path and the policy. Every operation takes the same steps: the document is parsed and
validated once (cached), the policy decides (refuse, or mark fields), then the fast path
answers what it can compile and Strawberry executes the rest on the same parsed document,
honouring the same marks. Operations that cannot run (no query, an unknown or disallowed
operation, a document that does not parse or validate) go to Strawberry untouched, so their
errors read exactly as Strawberry writes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence, Set
from contextlib import aclosing
from functools import partial
from typing import Any, TypeVar

import orjson
import strawberry
from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode
from graphql import OperationType as CoreOperationType
from graphql.execution.values import VariableValues
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gateway.auth.identity import Identity
from gateway.auth.tokens import KeysUnavailable, authenticator_for
from gateway.datasources import create_data_source
from gateway.datasources.feed import ActivityFeed
from gateway.datasources.protocol import DataSource, DataSourceUnavailable, SourceStats
from gateway.datasources.sql.source import SqlDataSource
from gateway.datasources.unavailable import UnavailableSource
from gateway.deadlines import SLACK, Deadline
from gateway.errors import (
    GatewayError,
    NeedsStream,
    SubscriptionsUnsupported,
    TimedOut,
    TooManySubscriptions,
    Unavailable,
)
from gateway.execution.direct import DirectPlan, direct_plan, run_direct
from gateway.execution.documents import DocumentCache, Prepared
from gateway.execution.fastpath import FastPath, fast_path_for
from gateway.execution.interpreted import PipelineExtension, run_prepared
from gateway.execution.limits import operation_limits
from gateway.execution.operation import MalformedRequest, Operation
from gateway.execution.outcome import Outcome, as_result, with_extension
from gateway.execution.persisted import PersistedOperations
from gateway.execution.policy import Decision, OperationView, Policy, Refused
from gateway.execution.shared import SharedExecutions
from gateway.execution.sign_in import sign_in_rules
from gateway.execution.variables import coerce_variables, coercers_of
from gateway.schema import RequestContext, build_schema, validation_rules
from gateway.settings import Settings
from gateway.telemetry.recorder import Telemetry

__all__ = ["Executor"]

log = logging.getLogger(__name__)

POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
ALL_OPERATIONS = frozenset(OperationType)
T = TypeVar("T")
_KINDS = {kind: OperationType(kind.value) for kind in CoreOperationType}  # graphql-core's to Strawberry's
_NAME_ONE = "the document holds several operations: name the one to run in operationName"


class Executor:
    """Runs GraphQL operations for every door; opens and closes the data source they share."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy | None = None,
        create_source: Callable[[Settings], DataSource] = create_data_source,
        live: bool = False,
    ) -> None:
        """`live`: run subscriptions (a long-lived server); without it they are refused with a coded error."""
        self.settings = settings
        self.live = live
        # None while sign-in is off (no AUTH_* configured, or AUTH_DISABLED=true): everything open.
        self.authenticator = authenticator_for(settings)
        self.schema: strawberry.Schema = build_schema(
            settings.production,
            extensions=[PipelineExtension],
            introspection=settings.introspection_enabled,
            suggestions=settings.suggestions_enabled,
        )
        self._graphql_schema = self.schema._schema  # Strawberry's graphql-core schema; no public accessor
        given = policy.rules if policy else ()
        rules = [operation_limits(settings, self._graphql_schema)]
        if self.authenticator:
            rules += sign_in_rules(settings)
        self.policy = Policy([*rules, *given])
        self.documents = DocumentCache(
            self._graphql_schema,
            settings.max_query_tokens,
            rules=validation_rules(settings.introspection_enabled),
        )
        self.persisted = PersistedOperations(settings)
        self.telemetry = Telemetry(settings, self.persisted.operation_names())
        self.documents.tracing = self.telemetry.tracing
        self.shared = SharedExecutions(self.telemetry.metrics)
        self._create_source = create_source
        # The open data source, or None before `open()` and after `close()`. An attribute, not a
        # property: each door reads it on every request.
        self.data_source: DataSource | None = None
        self._closed = False
        self._lock = asyncio.Lock()
        self._opening: asyncio.Task[DataSource] | None = None  # the open under way
        self.fast: FastPath | None = None
        self.feed: ActivityFeed | None = None  # with `live`, while the data source is open
        self.opens = 0  # data sources opened, for tests

    # -- the data source -----------------------------------------------------------------

    async def open(self) -> DataSource:
        """The open data source, opening it once however many callers arrive together.

        Callers arriving while an open is under way share its outcome: a failed open fails them all
        at once (against an unresponsive database, one DB_CONNECT_TIMEOUT each, not one after
        another), leaves nothing open, and the next call tries again. After `close()` it raises
        DataSourceUnavailable.
        """
        if self.data_source is not None:
            return self.data_source
        if self._closed:
            # At once: the close under way may wait seconds for the requests in flight.
            raise DataSourceUnavailable("the gateway is shutting down")
        if self._opening is None:
            self._opening = asyncio.create_task(self._open_source())
            self._opening.add_done_callback(self._opened)
        # Shielded: a caller that goes away does not cancel the open the others wait for.
        return await asyncio.shield(self._opening)

    def _opened(self, opening: asyncio.Task[DataSource]) -> None:
        self._opening = None
        if not opening.cancelled():
            opening.exception()  # retrieved, should every caller have gone away meanwhile

    async def _open_source(self) -> DataSource:
        async with self._lock:
            if self._closed:
                raise DataSourceUnavailable("the gateway is shutting down")
            if self.data_source is None:
                source = self._create_source(self.settings)
                await source.open()
                self.opens += 1
                # The fast path answers queries only: from the read replica, when there is one.
                self.fast = fast_path_for(self._graphql_schema, self.settings, source.for_queries())
                if self.live:
                    # Outside any request: its reads are bounded as a statement is, and its reply.
                    answer_within = self.settings.db_statement_timeout + SLACK
                    watch = source.change_watch(self.settings.live_poll_interval, answer_within)
                    self.feed = ActivityFeed(watch, self.settings.subscription_buffer)
                if self.telemetry.tracing is not None and isinstance(source, SqlDataSource):
                    source.tracing = self.telemetry.tracing
                    if self.fast is not None:
                        self.fast.tracing = self.telemetry.tracing
                self.data_source = source
                log.info("data source %s open", self.settings.db_backend)
        return self.data_source

    def stats(self) -> SourceStats | None:
        """The open data source's figures (pool, secret reads), or None when it is not open."""
        return self.data_source.stats() if self.data_source is not None else None

    async def identify(self, authorization: str | None) -> Identity | None:
        """Who sends an `Authorization` header value: None when anonymous or sign-in is off.

        Raises TokenRejected for a token that is not valid; the door answers it with a 401. When the
        provider's keys cannot be fetched the token cannot be judged: Unavailable, a 503.
        """
        if self.authenticator is None:
            return None
        try:
            return await self.authenticator.identify(authorization)
        except KeysUnavailable as exc:
            # Why is the server log's: the JWKS's address and the network's error are not the client's.
            log.info("bearer token not checked: %s", exc)
            raise Unavailable("the identity provider's keys cannot be fetched, try again shortly") from exc

    async def close(self) -> None:
        self._closed = True
        if self.authenticator is not None:
            await self.authenticator.close()
        await self.telemetry.close()
        async with self._lock:
            source, self.data_source, self.fast = self.data_source, None, None
            feed, self.feed = self.feed, None
            if feed is not None:
                await feed.close()
            if source is not None:
                await source.close()
                log.info("data source %s closed", self.settings.db_backend)

    # -- operations ----------------------------------------------------------------------

    def context(self, request: Any, source: DataSource, identity: Identity | None = None) -> RequestContext:
        """A new request context: fresh DataLoaders over `source`, for `identity`."""
        return RequestContext(
            data_source=source,
            settings=self.settings,
            request=request,
            identity=identity,
            sign_in=self.authenticator is not None,
        )

    async def execute(
        self,
        operation: Operation,
        request: Any,
        identity: Identity | None,
        allowed: Set[OperationType] = POST_OPERATIONS,
    ) -> Outcome:
        """The outcome of one operation for `identity`; `request` is the framework's request.

        Raises Strawberry's MissingQueryError, CannotGetOperationTypeError and
        InvalidOperationTypeError before anything runs, which each door answers with a 400.
        An operation still running after REQUEST_TIMEOUT is cancelled (a write rolls back) and
        answered with a TIMEOUT error; a write that is committing is waited for instead
        (`gateway.deadlines.Committing`). `extensions: {"cost": true}` in the request adds the
        operation's estimated rows to the response's extensions.
        """
        started = time.perf_counter()
        source = self.data_source or await self.open()
        context = self.context(request, source, identity)
        path: str | None = None
        with self.telemetry.span("graphql.operation") as span:
            try:
                operation = self.persisted.resolve(operation)
                with Deadline(self.settings.request_timeout):
                    outcome, path = await self._run(operation, context, allowed)
            except GatewayError as refusal:
                outcome = self.refusal(refusal)
            except TimeoutError:
                outcome = self.refusal(TimedOut(self.settings.request_timeout))
            self.telemetry.operation(
                context.prepared, operation.operation_name, outcome, path, time.perf_counter() - started, span
            )
        if operation.extensions and operation.extensions.get("cost") is True and context.cost is not None:
            cost = {"estimate": context.cost, "limit": self.settings.max_query_cost}
            outcome = with_extension(outcome, "cost", cost)
        return outcome

    async def _run(
        self, operation: Operation, context: RequestContext, allowed: Set[OperationType]
    ) -> tuple[Outcome, str | None]:
        """The outcome, and how the operation ran: "fast_path", "direct", "interpreted", or None (it
        did not)."""
        query = operation.query
        # `get` only on a miss: a cached document, as nearly every request's is, costs no coroutine.
        prepared = (self.documents.cached(query) or await self.documents.get(query)) if query else None
        if prepared is not None and prepared.document is None:
            # It does not parse (or is too large to): answered here, so nothing parses it again.
            return self._failed(prepared.errors), None
        context.prepared = prepared
        found = _valid_operation(prepared, operation.operation_name)
        if found is None and (unfound := _no_such_operation(prepared, operation.operation_name)):
            # Answered here, coded: Strawberry would run the first of several unchecked, and refuse
            # an unknown name with a bare 400 that no log or metric counts.
            return self.refusal(MalformedRequest(unfound)), None
        if prepared is None or found is None or not _runs(found[1].operation, allowed):
            # Nothing will run: Strawberry raises or answers with its own errors.
            return await self._strawberry(operation, context, allowed), None
        document, definition = found
        if definition.operation is CoreOperationType.SUBSCRIPTION:
            # A plain HTTP answer cannot carry updates: `stream()` runs subscriptions.
            return self.refusal(SubscriptionsUnsupported() if not self.live else NeedsStream()), None
        if definition.operation is CoreOperationType.QUERY:
            # A query reads from the read replica, when there is one. A mutation, its checks and
            # the answer it selects stay on the primary: it reads its own writes.
            context.data_source = context.data_source.for_queries()
        variables = self._coerced(prepared, definition, operation.variables)
        if not isinstance(variables, VariableValues):
            return self._failed(variables), None  # graphql-core's errors, as its execute() reports them
        try:
            decision = self.policy.decide(
                OperationView(document, definition, prepared.fragments, variables.coerced, context)
            )
        except Refused as refusal:
            return self.refusal(refusal), None
        context.marks = decision.marks
        if self.fast is not None:
            try:
                compiled = await self.fast.execute(prepared, definition, variables, decision)
            except DataSourceUnavailable as exc:
                # The resolvers fail at once with the same reason instead of waiting
                # DB_ACQUIRE_TIMEOUT a second time; the error reads as on the interpreted path.
                context = self._rebuilt(context, UnavailableSource.found(exc), prepared, decision)
            else:
                if isinstance(compiled, ExecutionResult) and compiled.errors:
                    self.schema.process_errors(compiled.errors)  # their codes, as Strawberry's errors get
                if compiled is not None:
                    return compiled, "fast_path"
        direct = self._direct(prepared, definition, decision)
        with self.telemetry.span("graphql.execute"):
            if direct is not None:
                outcome = await run_direct(direct, self.schema, prepared, definition, variables, context)
                return outcome, "direct"
            result = await run_prepared(self.schema, prepared, definition, variables, context)
        return result, "interpreted"

    async def stream(
        self,
        operation: Operation,
        request: Any,
        identity: Identity | None,
        on_slow: Callable[[], None] | None = None,
        allowed: Set[OperationType] = ALL_OPERATIONS,
    ) -> AsyncGenerator[ExecutionResult, None]:
        """The results of an operation sent over a socket or an event stream: one for a query or a
        mutation, one per update for a subscription, for as long as the caller iterates.

        The first result is a PreExecutionError when nothing ran (refused, invalid, unknown
        operation, a type not in `allowed`: an event stream opened by GET runs no mutation), which
        a socket answers with an `error` message; any other result, errors and all, is an update
        (an update whose fields failed may have `data` None). `on_slow` is called if the subscriber
        falls further behind than SUBSCRIPTION_BUFFER updates; the caller then closes the connection.
        """
        started = time.perf_counter()
        prepared: Prepared | None = None
        refused: PreExecutionError | None = None
        try:
            source = await self.open()
            operation = self.persisted.resolve(operation)
            prepared = await self.documents.get(operation.query) if operation.query else None
            found = _valid_operation(prepared, operation.operation_name)
            if prepared is None or found is None or found[1].operation is not CoreOperationType.SUBSCRIPTION:
                yield as_result(await self.execute(operation, request, identity, allowed))
                return
            if self.feed is None:
                raise SubscriptionsUnsupported()
            if self.subscriptions >= self.settings.subscriptions_max:
                raise TooManySubscriptions(self.settings.subscriptions_max)
            context = self.context(request, source, identity)
            context.prepared, context.feed, context.on_slow = prepared, self.feed, on_slow
            document, definition = found
            variables = self._coerced(prepared, definition, operation.variables)
            if isinstance(variables, VariableValues):
                decision = self.policy.decide(
                    OperationView(document, definition, prepared.fragments, variables.coerced, context)
                )
            else:
                refused = self._failed(variables)
        except MissingQueryError:
            refused = self.refusal(MalformedRequest("no GraphQL query found in the request"))
        except CannotGetOperationTypeError as exc:
            refused = self.refusal(MalformedRequest(exc.as_http_error_reason()))
        except InvalidOperationTypeError as exc:
            refused = self.refusal(MalformedRequest(exc.as_http_error_reason("GET")))
        except GatewayError as refusal:
            refused = self.refusal(refusal)
        if refused is not None:
            # Observed as `execute` observes a refused query: its errors counted once.
            elapsed = time.perf_counter() - started
            self.telemetry.operation(prepared, operation.operation_name, refused, None, elapsed)
            yield refused
            return
        context.marks = decision.marks
        # Who receives the same updates: the same operation and variables, viewer and marks.
        key = (
            operation.query,
            operation.operation_name,
            orjson.dumps(operation.variables, option=orjson.OPT_SORT_KEYS),
            None if identity is None else (identity.subject, identity.roles),
            frozenset(decision.marks.items()),
        )
        start = partial(
            self.schema.subscribe,
            operation.query,
            variable_values=operation.variables,
            context_value=context,
            operation_name=operation.operation_name,
            operation_extensions=operation.extensions,
        )
        results = self.shared.results(key, context, start, self.settings.subscription_buffer, on_slow)
        async with aclosing(results):  # closed with the caller's iteration: it leaves at once
            async for result in results:
                if result.errors:
                    self.telemetry.answered(result.errors)
                yield result

    @property
    def subscriptions(self) -> int:
        """Subscriptions running now."""
        return self.shared.subscriptions

    def receiving(self) -> int:
        """How many subscriptions receive every activity committed from now on."""
        return self.shared.receiving()

    def drained(self) -> bool:
        """Whether every update taken from the feed was sent (or is being sent) to its subscribers."""
        return (self.feed is None or self.feed.drained()) and self.shared.drained()

    def _direct(
        self, prepared: Prepared, definition: OperationDefinitionNode, decision: Decision
    ) -> DirectPlan | None:
        """How a mutation runs without graphql-core's executor; None: interpreted (FAST_PATH=false too)."""
        if definition.operation is not CoreOperationType.MUTATION or not self.settings.fast_path:
            return None
        plan = _per_operation(prepared.direct, self._graphql_schema, definition, direct_plan)
        if plan is None or (decision.marks and not plan.reads.isdisjoint(decision.marks)):
            return None
        return plan

    def _rebuilt(
        self, context: RequestContext, source: DataSource, prepared: Prepared, decision: Decision
    ) -> RequestContext:
        rebuilt = self.context(context.request, source, context.identity)
        rebuilt.prepared, rebuilt.marks = prepared, decision.marks
        return rebuilt

    async def _strawberry(
        self, operation: Operation, context: RequestContext, allowed: Set[OperationType]
    ) -> ExecutionResult:
        return await self.schema.execute(
            operation.query,
            variable_values=operation.variables,
            context_value=context,
            operation_name=operation.operation_name,
            allowed_operation_types=allowed,
            operation_extensions=operation.extensions,
        )

    def _coerced(
        self, prepared: Prepared, definition: OperationDefinitionNode, given: dict[str, Any] | None
    ) -> VariableValues | list[GraphQLError]:
        """The operation's variables as it runs with them (defaults applied, values coerced), which
        the policy's rules measure too; or the errors naming what is wrong with them."""
        coercers = _per_operation(prepared.coercers, self._graphql_schema, definition, coercers_of)
        return coerce_variables(self._graphql_schema, definition, coercers, given)

    def refusal(self, refusal: GatewayError) -> PreExecutionError:
        """A result carrying `refusal` as its coded error, nothing run."""
        return self._failed([GraphQLError(str(refusal), original_error=refusal)])

    def _failed(self, errors: Sequence[GraphQLError]) -> PreExecutionError:
        """A result carrying `errors`, nothing run: its type tells a socket to answer with `error`."""
        self.schema.process_errors(list(errors))
        return PreExecutionError(data=None, errors=list(errors))


def _per_operation(
    cache: dict[str | None, T],
    schema: GraphQLSchema,
    definition: OperationDefinitionNode,
    build: Callable[[GraphQLSchema, OperationDefinitionNode], T],
) -> T:
    """What `build` makes of an operation of a prepared document, made on first use and kept in `cache`."""
    name = definition.name.value if definition.name else None
    if name in cache:
        return cache[name]
    made = cache[name] = build(schema, definition)
    return made


def _valid_operation(
    prepared: Prepared | None, name: str | None
) -> tuple[DocumentNode, OperationDefinitionNode] | None:
    """A valid document and the operation a request names in it; None for no document, an invalid
    one or no such choice."""
    if prepared is None or prepared.document is None or prepared.errors:
        return None
    definition = prepared.operation(name)
    return None if definition is None else (prepared.document, definition)


def _no_such_operation(prepared: Prepared | None, name: str | None) -> str | None:
    """Why a valid document has no operation for the request's name (GraphQL's GetOperation:
    several and none named, or a name it lacks); None when it has one, or is not valid."""
    if prepared is None or prepared.document is None or prepared.errors:
        return None
    if name is None:
        return _NAME_ONE if len(prepared.operations) > 1 else None
    return None if name in prepared.operations else f'Unknown operation named "{name}".'


def _runs(kind: CoreOperationType, allowed: Set[OperationType]) -> bool:
    """Whether an operation of `kind` may run where `allowed` are. Every door runs queries: their
    check skips the enum's hash, a Python call."""
    return kind is CoreOperationType.QUERY or _KINDS[kind] in allowed
