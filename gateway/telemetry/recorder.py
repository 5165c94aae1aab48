"""What both doors and the executor call to observe a request: metrics, logs and traces in one place.

Each part exists only when configured: metrics when METRICS is on (prometheus-client is imported
then), traces when OTEL_EXPORTER_OTLP_ENDPOINT is set (OpenTelemetry likewise). The access log
is always written, at INFO on `gateway.access`.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from gateway.datasources.protocol import SourceStats
from gateway.errors import ErrorCode
from gateway.settings import Settings
from gateway.telemetry.access_log import log_exchange, logging_exchanges
from gateway.telemetry.exchange import CURRENT, MAX_RECORDED, Exchange, request_id_from

if TYPE_CHECKING:
    from graphql import GraphQLError
    from strawberry.types import ExecutionResult

    from gateway.execution.documents import Prepared
    from gateway.telemetry.metrics import Metrics
    from gateway.telemetry.tracing import Tracing

__all__ = ["NO_SPAN", "REQUEST_ID_HEADER", "Telemetry"]

NO_SPAN: AbstractContextManager[Any] = nullcontext()
REQUEST_ID_HEADER = "X-Request-Id"


def _code(error: GraphQLError) -> str:
    return str((error.extensions or {}).get("code", ErrorCode.INTERNAL.value))


class Telemetry:
    """One app's metrics (or None), tracing (or None) and access log."""

    def __init__(self, settings: Settings, known_names: Iterable[str] = ()) -> None:
        self.metrics: Metrics | None = None
        self.tracing: Tracing | None = None
        self._token = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None
        if settings.metrics_enabled:
            from gateway.telemetry.metrics import Metrics

            self.metrics = Metrics(known_names, settings.metrics_operation_names)
        if settings.otel_exporter_otlp_endpoint:
            from gateway.telemetry.tracing import Tracing

            self.tracing = Tracing(settings.otel_exporter_otlp_endpoint, settings.db_backend)

    # -- a request, at the door ----------------------------------------------------------

    def begin(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[Exchange, Any]:
        """A request arrives: its exchange, current until `end`, and its trace span."""
        exchange = Exchange(request_id_from(headers.get(REQUEST_ID_HEADER)))
        token = CURRENT.set(exchange)
        span = self.tracing.begin_request(method, path, headers) if self.tracing is not None else None
        return exchange, (token, span)

    def end(self, exchange: Exchange, handle: Any, method: str, path: str, status: int) -> None:
        """The request was answered with `status`: count its errors, log it, close its span."""
        token, span = handle
        try:
            if self.metrics is not None and exchange.refusals:
                self.metrics.count_errors(exchange.refusals)
            log_exchange(exchange, method, path, status, time.perf_counter() - exchange.started)
            if span is not None and self.tracing is not None:
                self.tracing.end_request(span, status)
        finally:
            CURRENT.reset(token)

    # -- an operation, in the executor ---------------------------------------------------

    def span(self, name: str) -> AbstractContextManager[Any]:
        """A child span of the current one when tracing, else a shared no-op."""
        return NO_SPAN if self.tracing is None else self.tracing.span(name)

    def operation(
        self,
        prepared: Prepared | None,
        requested: str | None,
        outcome: bytes | ExecutionResult,
        path: str | None,
        seconds: float,
        span: Any = None,
    ) -> None:
        """One operation ran (or was refused) in `seconds`; `path`: fast_path, direct, interpreted or None."""
        errors = outcome.errors if not isinstance(outcome, bytes) else None
        if self.metrics is None and span is None and not errors and not logging_exchanges():
            return  # nothing would record it: no metrics, no trace, no access or error line
        definition = (
            prepared.operation(requested) if prepared is not None and prepared.document is not None else None
        )
        if definition is None:
            name, kind = None, "unknown"
        else:
            name, kind = (definition.name.value if definition.name else None), definition.operation.value
        if self.metrics is not None:
            self.metrics.observe_operation(name, kind, seconds)
            if path is not None:
                self.metrics.paths[path].inc()
            if errors:
                self.metrics.count_errors(_code(e) for e in errors)
        exchange = CURRENT.get()
        if exchange is not None and len(exchange.operations) < MAX_RECORDED:
            exchange.operations.append((name, kind))
            if errors:
                room = MAX_RECORDED - len(exchange.errors)
                exchange.errors.extend((_code(e), e.message) for e in errors[:room])
        if span is not None and self.tracing is not None:
            self.tracing.name_operation(span, name, kind, [_code(e) for e in errors or ()])

    def answered(self, errors: Sequence[GraphQLError]) -> None:
        """`errors` were answered outside an operation observed by `operation` (a subscription's
        update, a socket's refusal of one more operation): counted, and kept for the access log."""
        if self.metrics is not None:
            self.metrics.count_errors(_code(e) for e in errors)
        exchange = CURRENT.get()
        if exchange is not None:
            room = MAX_RECORDED - len(exchange.errors)
            exchange.errors.extend((_code(e), e.message) for e in errors[:room])

    # -- /metrics ------------------------------------------------------------------------

    def metrics_allowed(self, authorization: str | None) -> bool:
        """Whether a scrape with this Authorization header may read /metrics (METRICS_TOKEN, if set)."""
        if self._token is None:
            return True
        scheme, _, given = (authorization or "").partition(" ")
        given = given.strip()
        # Undecodable header bytes arrive as surrogates, which encode() refuses: never a match.
        if scheme.lower() != "bearer" or not given.isascii():
            return False
        return hmac.compare_digest(given.encode(), self._token)

    def render_metrics(self, stats: SourceStats | None) -> tuple[bytes, str]:
        """The exposition and its content type."""
        if self.metrics is None:
            raise LookupError("metrics are off")
        from gateway.telemetry.metrics import CONTENT_TYPE

        return self.metrics.render(stats), CONTENT_TYPE

    async def close(self) -> None:
        if self.tracing is not None:
            await self.tracing.close()
