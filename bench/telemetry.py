"""`python -m bench.telemetry`: what observing one request costs, in microseconds, on this machine.

Times the door's hooks (request id, exchange, access line) and the executor's (operation
duration, path, errors) around a compiled query on SQLite, with metrics and the access log off
and on, alternating the variants over rounds and printing medians. In-process, no HTTP: the
figures are the hooks' own CPU time, which a served request adds to its ~300 us.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gateway.execution.executor import Executor
from gateway.execution.operation import Operation
from gateway.logs import JsonLines
from gateway.settings import Settings

QUERY = Operation("query Users { users(first: 1) { edges { node { id displayName } } } }", "Users")
HEADERS: dict[str, str] = {}  # no X-Request-Id: the gateway makes one, as for most requests
ROUNDS = 7
REQUESTS = 3000


def _access_log(formatter: logging.Formatter | None) -> None:
    """The access log off (WARNING, as the benchmark serves), or on at INFO into /dev/null."""
    logger = logging.getLogger("gateway")
    logger.handlers.clear()
    logger.propagate = False
    if formatter is None:
        logger.setLevel(logging.WARNING)
        return
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115  (lives as long as the run)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


async def _per_request(executor: Executor, observe: bool, execute: bool) -> float:
    """Median-friendly mean microseconds of REQUESTS requests."""
    telemetry = executor.telemetry
    started = time.perf_counter()
    for _ in range(REQUESTS):
        if observe:
            exchange, handle = telemetry.begin("POST", "/graphql", HEADERS)
        if execute:
            await executor.execute(QUERY, None, None)
        else:
            telemetry.operation(None, "Users", b"{}", "fast_path", 0.0003)
        if observe:
            telemetry.end(exchange, handle, "POST", "/graphql", 200)
    return (time.perf_counter() - started) / REQUESTS * 1e6


async def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-telemetry-"))
    executors = {}
    for metrics in (False, True):
        path = folder / "bench.db"
        settings = Settings(_env_file=None, db_sqlite_path=path, metrics=metrics)  # type: ignore[call-arg]
        executor = Executor(settings)
        await executor.open()
        await executor.execute(QUERY, None, None)  # parsed, planned and cached before timing
        executors[metrics] = executor
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    variants: dict[str, Callable[[], object]] = {
        "no hooks (executor alone)": lambda: _per_request(executors[False], observe=False, execute=True),
        "hooks, metrics off, access log off": lambda: _per_request(executors[False], True, True),
        "hooks, metrics on, access log off": lambda: _per_request(executors[True], True, True),
        "hooks, metrics on, access log text": lambda: _per_request(executors[True], True, True),
        "hooks, metrics on, access log json": lambda: _per_request(executors[True], True, True),
        "hooks alone, metrics off, log off": lambda: _per_request(executors[False], True, False),
        "hooks alone, metrics on, log off": lambda: _per_request(executors[True], True, False),
        "hooks alone, metrics on, log json": lambda: _per_request(executors[True], True, False),
    }
    logs: dict[str, logging.Formatter | None] = {
        name: (JsonLines() if "json" in name else text if "text" in name else None) for name in variants
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(ROUNDS):
        names = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in names:
            _access_log(logs[name])
            times[name].append(await variants[name]())  # type: ignore[misc]
    print(f"| variant ({REQUESTS} requests x {ROUNDS} rounds, median) | us per request |")
    print("|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.1f} |")
    for executor in executors.values():
        await executor.close()


if __name__ == "__main__":
    asyncio.run(main())
