"""The documented defaults are the settings' defaults, and what a served gateway applies.

The timeouts are proved on their defaults without waiting for them: a clock that the test moves
forward (time.monotonic, which the event loop and SQLite's progress handler both read) shows a
connection kept just before a default elapses and cut just after.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.datasources import create_data_source
from gateway.datasources.protocol import StatementTimeout
from gateway.doors.aiohttp_app import create_app
from gateway.doors.workers import server_options
from gateway.settings import Settings
from tests.clocks import MovedClock, moved_clock
from tests.conftest import sql_source
from tests.polling import until
from tests.processes import free_port

__all__ = ["moved_clock"]

ROOT = Path(__file__).resolve().parent.parent
# A statement that ends by itself after some 100,000 steps of SQLite's virtual machine.
FINITE = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)"
    " SELECT count(*) AS n FROM c"
)


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings with nothing set, whatever the environment running the tests holds."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def _documented(table_head: str, text: str) -> Iterator[tuple[str, str]]:
    """(variable, default) for each variable of the Markdown table under `table_head` whose default
    is a literal: `5000`, `30`, or 30 s (rows that describe a default in words are left out)."""
    rows = text.split(table_head, 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    for row in rows:
        names_cell, defaults_cell = (cell.strip() for cell in row.strip("|").split("|")[:2])
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", names_cell)
        values = [value.strip() for value in defaults_cell.split(",")]
        if len(names) != len(values):
            continue
        for name, value in zip(names, values, strict=True):
            literal = re.fullmatch(r"`([^`]+)`|(\d+) s", value)
            if literal:
                yield name, literal.group(1) or literal.group(2)


def _as_documented(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@pytest.mark.parametrize(
    ("document", "table_head"),
    [("README.md", "| variable | default | meaning |"), ("docs/api.md", "| setting | default | bounds |")],
)
def test_the_documented_defaults_are_the_settings_defaults(
    document: str, table_head: str, defaults: Settings
) -> None:
    documented = dict(_documented(table_head, (ROOT / document).read_text()))
    for timeout in ("REQUEST_TIMEOUT", "DB_STATEMENT_TIMEOUT", "HTTP_KEEPALIVE_TIMEOUT"):
        assert timeout in documented, f"{document} gives no default for {timeout}"
    actual = {name: getattr(defaults, name.lower()) for name in documented}
    # A path reads the same with or without ./
    expected = {name: Path(v) if isinstance(actual[name], Path) else v for name, v in documented.items()}
    assert {name: _as_documented(v) for name, v in actual.items()} == {
        name: _as_documented(v) for name, v in expected.items()
    }


@dataclass
class Served:
    runner: web.AppRunner
    port: int

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection the server has accepted, so its keep-alive timer runs from now."""
        before = len(self.runner.server.connections) if self.runner.server else 0
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        await until(
            lambda: self.runner.server is not None and len(self.runner.server.connections) > before,
            "the server to accept the connection",
        )
        return reader, writer


@pytest.fixture
async def served(defaults: Settings, moved_clock: MovedClock) -> AsyncIterator[Served]:
    """The gateway on its defaults (SQLite), served with the options of `gateway serve`."""
    runner = web.AppRunner(create_app(defaults), **server_options(defaults))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Served(runner, port)
    await runner.cleanup()


async def _response(reader: asyncio.StreamReader) -> int:
    """The status of the next response on a connection, its body read."""
    async with asyncio.timeout(10):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        length = re.search(r"(?i)content-length: (\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
    return int(head.split()[1])


async def _closed(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(10):
        return await reader.read() == b""


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


async def test_an_idle_connection_is_kept_until_the_default_keepalive_then_closed(
    served: Served, defaults: Settings, moved_clock: MovedClock
) -> None:
    keepalive = defaults.http_keepalive_timeout
    reader, writer = await served.connect()
    try:
        writer.write(HEALTH)
        # The server starts the idle timer before this client can read the response (one loop).
        assert await _response(reader) == 200
        moved_clock.advance(keepalive - 0.5)
        writer.write(HEALTH)
        assert await _response(reader) == 200
        moved_clock.advance(keepalive + 0.5)
        assert await _closed(reader)
    finally:
        writer.close()


async def test_half_sent_headers_are_waited_for_until_the_default_keepalive(
    served: Served, defaults: Settings, moved_clock: MovedClock
) -> None:
    keepalive = defaults.http_keepalive_timeout
    reader, writer = await served.connect()
    try:
        writer.write(HEALTH[:20])
        moved_clock.advance(keepalive - 0.5)
        writer.write(HEALTH[20:])
        assert await _response(reader) == 200
    finally:
        writer.close()
    reader, writer = await served.connect()
    try:
        writer.write(HEALTH[:20])
        moved_clock.advance(keepalive + 0.5)
        assert await _closed(reader)
    finally:
        writer.close()


async def test_a_stalled_body_is_waited_for_until_the_default_request_timeout(
    served: Served, defaults: Settings, moved_clock: MovedClock
) -> None:
    body = b'{"query": "{ users { edges { cursor } } }"}'
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
    )
    # The request gets REQUEST_TIMEOUT, plus a second in which the operation's own TIMEOUT answers.
    cut_off = defaults.request_timeout + 1
    for advance, status in ((cut_off - 0.5, 200), (cut_off + 0.5, 408)):
        reader, writer = await served.connect()
        try:
            writer.write(head)
            # aiohttp answers 100 as it hands the request to the handler, whose deadline then runs.
            assert await _response(reader) == 100
            writer.write(body[:1])
            moved_clock.advance(advance)
            writer.write(body[1:])
            assert await _response(reader) == status
        finally:
            writer.close()


async def test_sqlite_stops_a_statement_at_the_default_statement_timeout(
    defaults: Settings, moved_clock: MovedClock
) -> None:
    source = sql_source(create_data_source(defaults))
    await source.open()
    try:
        async with source.connection() as conn:
            moved_clock.advance(defaults.db_statement_timeout - 0.5)
            assert await conn.fetch(FINITE) == [{"n": 20000}]
            moved_clock.advance(1.0)
            with pytest.raises(StatementTimeout):
                await conn.fetch(FINITE)
    finally:
        await source.close()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
async def test_the_database_server_holds_the_default_statement_timeout(
    backend: str, make_settings: Callable[..., Settings], defaults: Settings
) -> None:
    settings = make_settings(backend)
    assert settings.db_statement_timeout == defaults.db_statement_timeout  # make_settings sets no timeout
    source = sql_source(create_data_source(settings))
    await source.open()
    try:
        async with source.connection() as conn:
            if backend == "postgres":
                rows = await conn.fetch("SELECT current_setting('statement_timeout') AS t")
                assert rows == [{"t": f"{defaults.db_statement_timeout:g}s"}]
            else:
                rows = await conn.fetch("SELECT @@max_statement_time AS t")
                assert float(rows[0]["t"]) == defaults.db_statement_timeout
    finally:
        await source.close()


async def test_a_long_get_is_answered_with_its_cors_grant_up_to_the_url_limit(
    served: Served, defaults: Settings
) -> None:
    # A document padded to 15,000 characters (15-45 KB of URL), within MAX_QUERY_TOKENS' characters
    # and MAX_URL: aiohttp's own 8 KB
    # limit answered it with a bare 400, without the CORS grant a browser needs to read it.
    origin = "http://localhost:5173"  # allowed in development by default
    query = "{ __typename" + " " * 15_000 + "}"
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"http://127.0.0.1:{served.port}/graphql",
            params={"query": query},
            headers={"Origin": origin, "Accept": "application/json"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers.get("Access-Control-Allow-Origin") == origin
        assert await response.json() == {"data": {"__typename": "Query"}}
