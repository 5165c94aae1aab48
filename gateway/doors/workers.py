"""Serving: one process, or N worker processes sharing the port, each with its own share of the pool."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import wait
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.settings import Settings

__all__ = [
    "MAX_URL",
    "MULTIPROC_DIR",
    "PoolSplitError",
    "event_loop",
    "serve",
    "server_options",
    "shared_metrics_dir",
    "split_pool",
]

log = logging.getLogger(__name__)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# The files prometheus-client's multiprocess mode writes: counter_<pid>.db, gauge_livesum_<pid>.db...
_METRIC_FILES = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


class PoolSplitError(ValueError):
    """DB_POOL_MAX cannot give each worker a connection."""

    def __init__(self, pool_max: int, workers: int) -> None:
        super().__init__(
            f"DB_POOL_MAX={pool_max} cannot be split across {workers} workers: each needs at least one"
            f" connection (raise DB_POOL_MAX or lower --workers)"
        )


def split_pool(settings: Settings, workers: int) -> Settings:
    """Settings for one of `workers` processes: DB_POOL_MAX and DB_POOL_MIN divided, rounded down.

    The total stays within DB_POOL_MAX, the number of connections the database was sized for.
    """
    if workers == 1:
        return settings
    share = settings.db_pool_max // workers
    if share < 1:
        raise PoolSplitError(settings.db_pool_max, workers)
    return settings.model_copy(
        update={"db_pool_max": share, "db_pool_min": min(settings.db_pool_min // workers, share)}
    )


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (Linux, macOS), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _freeze_startup_heap(app: object) -> None:
    # The schema, the pool and the imported modules live as long as the process; frozen, the
    # collector stops re-scanning them: its oldest generation took ~60 ms a pass, 8% of a
    # mutation-heavy load.
    gc.freeze()


def _serve_one(settings: Settings, host: str, port: int, reuse_port: bool) -> None:
    from aiohttp import web

    from gateway.doors.aiohttp_app import create_app
    from gateway.logs import configure_logging

    configure_logging(settings)
    loop = event_loop()
    asyncio.set_event_loop(loop)
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_heap)
    app.on_startup.insert(0, _stop_once)  # before the data source opens: a stop then is graceful too
    options = server_options(settings)
    web.run_app(
        app,
        host=host,
        port=port,
        reuse_port=reuse_port,
        print=None,
        loop=loop,
        handle_signals=False,
        **options,
    )


async def _stop_once(app: object) -> None:
    """SIGTERM or SIGINT starts the graceful stop; any later one is ignored.

    aiohttp's own handlers raise GracefulExit on every signal, and a second one, arriving while
    the requests under way finish, cancelled them all: Ctrl-C with --workers sends two (the
    terminal's SIGINT to every process, then the parent's SIGTERM), as does a supervisor that
    signals the whole process group.
    """
    from aiohttp.web_runner import GracefulExit

    loop = asyncio.get_running_loop()

    def stop() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _already_stopping)
        raise GracefulExit

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)


def _already_stopping() -> None:
    log.info("already stopping: the requests under way finish first (SIGKILL stops at once)")


MAX_URL = 64 * 1024  # bytes of a request line `gateway serve` reads


def server_options(settings: Settings) -> dict[str, Any]:
    """How `gateway serve`'s server treats connections: options of web.run_app and web.AppRunner."""
    return {
        "shutdown_timeout": 15,
        # A connection idle this long, or that never completes its headers, is closed.
        "keepalive_timeout": settings.http_keepalive_timeout,
        # A client that goes away cancels its request, and with it the request's statement.
        "handler_cancellation": True,
        # A GET's URL carries its document: aiohttp's 8 KB refused a long query with a bare 400,
        # before any handler (no CORS grant: a browser saw a CORS failure). Past this, the same.
        "max_line_size": MAX_URL,
    }


@contextmanager
def shared_metrics_dir(settings: Settings) -> Iterator[None]:
    """Where the workers' metrics meet (prometheus-client's multiprocess mode), for this run only.

    PROMETHEUS_MULTIPROC_DIR when the user set it, emptied of the last run's files (their values
    would be added to this run's); else a new temporary folder, removed at the end.
    """
    if not settings.metrics_enabled:
        yield
        return
    given = os.environ.get(MULTIPROC_DIR)
    if given:
        for pattern in _METRIC_FILES:
            for stale in Path(given).glob(pattern):
                stale.unlink(missing_ok=True)
        yield
        return
    made = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[MULTIPROC_DIR] = made  # the spawned workers inherit it
    try:
        yield
    finally:
        del os.environ[MULTIPROC_DIR]
        shutil.rmtree(made, ignore_errors=True)


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> int:
    """Serve until SIGTERM/SIGINT; with several workers, the first to die stops the others."""
    if workers == 1:
        _serve_one(settings, host, port, reuse_port=False)
        return 0
    with shared_metrics_dir(settings):
        return _serve_many(settings, host, port, workers)


def _serve_many(settings: Settings, host: str, port: int, workers: int) -> int:
    share = split_pool(settings, workers)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_serve_one, args=(share, host, port, True), name=f"gateway-worker-{i + 1}")
        for i in range(workers)
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker finishes its requests and closes its pool

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    crashed = False
    try:
        for process in processes:
            process.start()
        log.info("%d workers on %s:%d, each with DB_POOL_MAX=%d", workers, host, port, share.db_pool_max)
        ready = wait([p.sentinel for p in processes])
        if not stopping:
            crashed = True
            dead = next(p for p in processes if p.sentinel in ready)
            dead.join()
            print(f"{dead.name} exited with code {dead.exitcode}; stopping the others", file=sys.stderr)
            stop(signal.SIGTERM, None)
        for process in processes:
            process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 1 if crashed else 0
