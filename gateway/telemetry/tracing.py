"""OpenTelemetry traces, sent over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Imported only then: without the setting no OpenTelemetry module is loaded and no span is made.
A request's span continues the trace of its `traceparent` header; inside it an operation's span
holds parse, validate, plan (the fast path's compilation) and one span per SQL statement. Spans
carry names, types and counts, never a variable's value, a header or an SQL parameter.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["Tracing"]

_PROPAGATOR = TraceContextTextMapPropagator()
# An exception's message could quote anything (a value, SQL): a failed span names its class only.
_QUIET_FAILURES: dict[str, Any] = {"record_exception": False, "set_status_on_exception": False}
_DB_SYSTEMS = {"sqlite": "sqlite", "postgres": "postgresql", "mysql": "mysql"}  # OpenTelemetry's names
# A server span is named by its route, as OpenTelemetry's HTTP conventions ask: tracing backends group
# by name, and a client's paths (a scanner's thousands) or invented methods must not each make one.
_ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/metrics", "/"})
_ASSETS = "/graphiql/"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


@contextmanager
def _failure_named(span: Any) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
        raise


def _span_name(method: str, path: str) -> str:
    """`{method} {route}`, or the method alone for a path no route serves (`HTTP` for an unknown one)."""
    name = "HTTP" if method == "_OTHER" else method
    if path in _ROUTES:
        return f"{name} {path}"
    if path.startswith(_ASSETS):
        return f"{name} {_ASSETS}{{build}}/{{name}}"
    return name


class Tracing:
    """One app's tracer: its own provider and exporter (no global state), shut down with the app."""

    def __init__(self, endpoint: str, backend: str) -> None:
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "graphql-gateway"}
        self._provider = TracerProvider(resource=Resource.create(attributes))
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("gateway")
        self._db_system = _DB_SYSTEMS.get(backend, backend)

    def begin_request(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[Any, Any]:
        """The server span of one request, continuing the caller's `traceparent`; made current."""
        parent = _PROPAGATOR.extract(headers)
        known = method if method in _METHODS else "_OTHER"
        span = self._tracer.start_span(
            _span_name(known, path),
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": known, "url.path": path},
        )
        return span, otel_context.attach(trace.set_span_in_context(span, parent))

    def end_request(self, handle: tuple[Any, Any], status: int) -> None:
        span, token = handle
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(trace.StatusCode.ERROR)
        span.end()
        otel_context.detach(token)

    @contextmanager
    def span(self, name: str) -> Iterator[Any]:
        """A child span of the current one, current inside the block."""
        with self._tracer.start_as_current_span(name, **_QUIET_FAILURES) as span, _failure_named(span):
            yield span

    @contextmanager
    def sql(self, kind: str) -> Iterator[None]:
        """The span of one SQL statement; its text and parameters are not recorded."""
        attributes = {"db.system.name": self._db_system, "db.operation.name": kind}
        client = trace.SpanKind.CLIENT
        span = self._tracer.start_as_current_span(
            "sql " + kind, kind=client, attributes=attributes, **_QUIET_FAILURES
        )
        with span as current, _failure_named(current):
            yield

    def name_operation(self, span: Any, name: str | None, kind: str, errors: list[str]) -> None:
        """Name an operation's span once its document is known, and note its error codes."""
        span.update_name(f"{kind} {name}" if name else kind)
        span.set_attribute("graphql.operation.type", kind)
        if name:
            span.set_attribute("graphql.operation.name", name)
        if errors:
            span.set_attribute("graphql.error.codes", errors)

    async def close(self) -> None:
        """Send what is buffered and stop; in a thread, as the exporter's POST blocks."""
        await asyncio.to_thread(self._provider.shutdown)
