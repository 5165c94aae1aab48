"""Prometheus metrics of a gateway process, or of all workers of `gateway serve --workers N`.

With PROMETHEUS_MULTIPROC_DIR set (`serve --workers` sets it), every process writes its values
to files there and /metrics, whichever worker answers, adds up all of them: prometheus-client's
multiprocess mode. Values read from the data source (pool, Secrets Manager reads) are copied in
when /metrics is scraped, and under several workers also once a second by each worker.

Operation names are client-chosen, so their label is bounded: names of the persisted-operation
manifest, then the first METRICS_OPERATION_NAMES other names seen; later ones count as "other",
unnamed operations as "anonymous".
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from gateway.datasources.protocol import SourceStats
from gateway.errors import ErrorCode

__all__ = ["ANONYMOUS", "CONTENT_TYPE", "OTHER", "PUBLISH_INTERVAL", "Metrics"]

# The text format every Prometheus version reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
ANONYMOUS = "anonymous"
OTHER = "other"
PUBLISH_INTERVAL = 1.0  # seconds between a worker's copies of its pool figures, under several workers
_MAX_NAME_LENGTH = 100
# From a cached compiled query (~0.3 ms) to REQUEST_TIMEOUT's default.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_OPERATION_TYPES = ("query", "mutation", "subscription")
PATHS = ("fast_path", "direct", "interpreted")


# The *_created series (a timestamp per counter child) double the output and tell a scraper nothing.
disable_created_metrics()


class Metrics:
    """The metrics one app keeps; `observe_operation` and `count_errors` are called per request."""

    def __init__(self, known_names: Iterable[str] = (), max_names: int = 100) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._duration = Histogram(
            "gateway_operation_duration_seconds",
            "Time to run one GraphQL operation, by operation name and type",
            ("operation_name", "operation_type"),
            buckets=_BUCKETS,
            registry=r,
        )
        self._errors = Counter(
            "gateway_graphql_errors", "GraphQL errors answered, by extensions.code", ("code",), registry=r
        )
        self._executed = Counter(
            "gateway_operations_executed",
            "Operations that ran, by path: compiled to SQL (fast_path) or through Strawberry (interpreted)",
            ("path",),
            registry=r,
        )
        self._secret_reads = Counter(
            "gateway_secret_reads",
            "AWS Secrets Manager reads, by version stage and result",
            ("stage", "result"),
            registry=r,
        )
        self._pool_size = self.gauge("gateway_db_pool_size", "Open database connections")
        self._pool_in_use = self.gauge("gateway_db_pool_in_use", "Database connections lent to a request")
        self._pool_waiting = self.gauge("gateway_db_pool_waiting", "Requests waiting for a free connection")
        self._pool_max = self.gauge("gateway_db_pool_max", "Most connections the pool may open (DB_POOL_MAX)")
        # Children made once: a request's labels() is then one dict lookup, no label tuple built.
        self.paths = {path: self._executed.labels(path) for path in PATHS}
        self._codes = {code.value: self._errors.labels(code.value) for code in ErrorCode}
        self._other_code = self._errors.labels(OTHER)
        self._by_operation: dict[tuple[str | None, str], Histogram] = {}
        self._known = frozenset(known_names)
        self._admitted: set[str] = set()
        self._max_names = max_names
        self._reads_published: dict[tuple[str, str], int] = {}

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
        """A gauge exported by /metrics, summed over live workers (e.g. open subscriptions: inc, dec)."""
        return Gauge(name, documentation, labelnames, registry=self.registry, multiprocess_mode="livesum")

    def observe_operation(self, name: str | None, kind: str, seconds: float) -> None:
        """One operation (`kind` query, mutation, subscription or unknown) took `seconds`."""
        child = self._by_operation.get((name, kind))
        if child is None:
            child = self._operation_child(name, kind)
        child.observe(seconds)

    def _operation_child(self, name: str | None, kind: str) -> Histogram:
        if name is None:
            label = ANONYMOUS
        elif name in self._known or name in self._admitted:
            label = name
        elif len(self._admitted) < self._max_names and len(name) <= _MAX_NAME_LENGTH:
            self._admitted.add(name)
            label = name
        else:
            # Not cached under `name`: random names must not grow this object.
            key = (OTHER, kind)
            child = self._by_operation.get(key)
            if child is None:
                child = self._by_operation[key] = self._duration.labels(OTHER, kind)
            return child
        child = self._by_operation[(name, kind)] = self._duration.labels(label, kind)
        return child

    def count_errors(self, codes: Iterable[str]) -> None:
        """Count errors answered, by their codes."""
        for code in codes:
            self._codes.get(code, self._other_code).inc()

    def publish(self, stats: SourceStats | None) -> None:
        """Copy the data source's own figures (`None`: not open) into the metrics."""
        if stats is None:
            stats = SourceStats()
        self._pool_size.set(stats.pool_size)
        self._pool_in_use.set(stats.pool_in_use)
        self._pool_waiting.set(stats.pool_waiting)
        self._pool_max.set(stats.pool_max)
        for key, total in stats.secret_reads.items():
            # The source counts since it opened; a counter only grows: add what is new.
            new = total - self._reads_published.get(key, 0)
            if new > 0:
                self._secret_reads.labels(*key).inc(new)
            self._reads_published[key] = total

    def render(self, stats: SourceStats | None) -> bytes:
        """The Prometheus text exposition: this process's metrics, or every worker's."""
        self.publish(stats)
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)

    async def publish_every(self, stats: Callable[[], SourceStats | None]) -> None:
        """Under several workers: copy this worker's figures into the shared files until cancelled."""
        while True:
            self.publish(stats())
            await asyncio.sleep(PUBLISH_INTERVAL)
