"""A write whose commit outlasts REQUEST_TIMEOUT is answered as it happened, not as a TIMEOUT that wrote.

A proxy holds back the database's reply to the statement that commits, as a slow network does:
the database has committed while the gateway still waits. Cut there, the client would be told
TIMEOUT for a write that landed, and its retry would write it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from gateway.datasources.protocol import DataSource
from gateway.settings import Settings
from tests.club import CREATE_USER, make_user
from tests.conftest import count_rows, empty_tables
from tests.graphql_client import data, error_codes, graphql
from tests.polling import until
from tests.served_doors import DOORS, served_door
from tests.stalls import stall
from tests.tcp_proxy import TcpProxy

OVER_THE_NETWORK = pytest.mark.parametrize("backend", ["postgres", "mysql"])
PATHS = pytest.mark.parametrize("fast_path", [True, False], ids=["direct", "interpreted"])
# The commit window is the data source's; each door's own time limits must leave it be.
EVERY_DOOR = pytest.mark.parametrize("door", DOORS)
MARKER = "reply-held-back"  # in the write's own statement: its reply is the one held
# Plain scalars: with the fast path on, the mutation runs directly, without graphql-core's executor.
CREATE_SESSION = """mutation($input: CreateShootingSessionInput!) {
  createShootingSession(input: $input) { id notes shotCount } }"""


@pytest.fixture
async def proxy(backend: str, make_settings: Callable[..., Settings]) -> AsyncIterator[TcpProxy]:
    direct = make_settings(backend)
    proxy = TcpProxy(direct.db_host, direct.database_port)
    await proxy.start()
    yield proxy
    await proxy.cut()


@dataclass
class Gateway:
    """A gateway served behind one door: a client posting to it, and its data source to count rows."""

    client: aiohttp.ClientSession  # on the door's URL: `post("/graphql", …)`
    source: DataSource


@pytest.fixture
async def serving(
    backend: str, door: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """Starts a gateway on `backend` behind `door` with the settings given, its tables emptied."""
    async with AsyncExitStack() as stack:

        async def start(**settings: Any) -> Gateway:
            running = await stack.enter_async_context(served_door(door, make_settings(backend, **settings)))
            client = await stack.enter_async_context(aiohttp.ClientSession(base_url=running.url))
            source = await running.executor.open()
            await empty_tables(source)
            return Gateway(client, source)

        yield start


@pytest.fixture
def gateway(proxy: TcpProxy, serving: Callable[..., Awaitable[Gateway]]) -> Callable[..., Awaitable[Gateway]]:
    """Starts a gateway whose database connections go through `proxy`."""

    async def start(**settings: Any) -> Gateway:
        return await serving(db_host="127.0.0.1", db_port=proxy.port, **settings)

    return start


def session_input(user_id: str) -> dict[str, Any]:
    return {"userId": user_id, "discipline": "10m Air Rifle", "notes": MARKER, "shots": [{"score": 10.5}]}


@OVER_THE_NETWORK
@PATHS
@EVERY_DOOR
async def test_a_session_whose_commit_outlasts_request_timeout_is_answered_as_written(
    fast_path: bool, proxy: TcpProxy, gateway: Callable[..., Awaitable[Gateway]]
) -> None:
    served = await gateway(request_timeout=0.3, fast_path=fast_path)
    client, source = served.client, served.source
    user = await make_user(client, "held@example.com")
    # PostgreSQL's one statement, MariaDB's CALL: the statement is the commit.
    proxy.hold_replies_to(MARKER.encode(), 1.0)

    body = await graphql(client, CREATE_SESSION, input=session_input(user["id"]))

    assert proxy.held == 1  # the reply came 1 s late, past REQUEST_TIMEOUT
    assert "errors" not in body, body
    assert body["data"]["createShootingSession"]["notes"] == MARKER
    assert await count_rows(source, "shooting_sessions") == 1
    assert await count_rows(source, "shots") == 1


@OVER_THE_NETWORK
@PATHS
@EVERY_DOOR
async def test_a_user_whose_commit_outlasts_request_timeout_is_answered_as_written(
    fast_path: bool, proxy: TcpProxy, gateway: Callable[..., Awaitable[Gateway]]
) -> None:
    served = await gateway(request_timeout=0.3, fast_path=fast_path)
    client = served.client
    # createUser is a transaction: INSERT, then COMMIT, whose reply is held.
    proxy.hold_replies_to(b"COMMIT", 1.0)

    body = await graphql(client, CREATE_USER, input={"email": "late@example.com", "displayName": "Late"})

    assert proxy.held == 1
    assert "errors" not in body, body
    assert body["data"]["createUser"]["email"] == "late@example.com"
    assert await count_rows(served.source, "users") == 1


@OVER_THE_NETWORK
@PATHS
@EVERY_DOOR
async def test_a_commit_unconfirmed_past_the_databases_own_limit_says_it_may_have_landed(
    backend: str, fast_path: bool, proxy: TcpProxy, gateway: Callable[..., Awaitable[Gateway]]
) -> None:
    served = await gateway(request_timeout=0.2, db_statement_timeout=0.3, fast_path=fast_path)
    client, source = served.client, served.source
    user = await make_user(client, "unconfirmed@example.com")
    proxy.hold_replies_to(MARKER.encode(), 4.0)  # past 0.3 s and the slack: a network that stalls

    body = await graphql(client, CREATE_SESSION, input=session_input(user["id"]))

    assert proxy.held == 1
    assert proxy.released == 0  # answered at the bound, not when the network gave the reply back
    assert error_codes(body) == ["TIMEOUT"], body
    message = body["errors"][0]["message"]
    assert "may have been saved" in message and "read it back" in message
    assert "was stopped" not in message  # the usual TIMEOUT says nothing was written; here it was
    assert await count_rows(source, "shooting_sessions") == 1  # it had landed: "may have" was true
    if backend == "mysql":
        # MariaDB is told to stop the statement, should it still run (here it had ended): its
        # server runs a statement of a client gone silent to the end.
        await until(lambda: b"KILL QUERY" in proxy.sent, "KILL QUERY to be sent")
    # The gateway serves on.
    users = await data(client, "{ users { totalCount } }")
    assert users == {"users": {"totalCount": 1}}


@OVER_THE_NETWORK
@PATHS
@EVERY_DOOR
async def test_a_write_stuck_in_its_committing_statement_ends_with_nothing_written(
    backend: str,
    fast_path: bool,
    make_settings: Callable[..., Settings],
    serving: Callable[..., Awaitable[Gateway]],
) -> None:
    # PostgreSQL's one statement, MariaDB's CALL: the insert of the session never ends.
    served = await serving(request_timeout=0.2, db_statement_timeout=0.5, fast_path=fast_path)
    client, source = served.client, served.source
    user = await make_user(client, "stuck@example.com")
    async with stall(backend, make_settings(backend).db_name, table="shooting_sessions") as stalled:
        body = await graphql(client, CREATE_SESSION, input=session_input(user["id"]))
        assert error_codes(body) == ["TIMEOUT"], body
        assert "DB_STATEMENT_TIMEOUT" in body["errors"][0]["message"]  # the database stopped it

        async def stopped() -> bool:
            return not await stalled.running()

        await until(stopped, "the stuck statement to be stopped")
    # Waited for past REQUEST_TIMEOUT, stopped by the database's own limit: nothing landed.
    assert await count_rows(source, "shooting_sessions") == 0
    assert await count_rows(source, "shots") == 0
    assert await count_rows(source, "activities") == 0
    made = await data(client, CREATE_SESSION, input=session_input(user["id"]))
    assert made["createShootingSession"]["shotCount"] == 1


@OVER_THE_NETWORK
@PATHS
@EVERY_DOOR
async def test_a_database_host_gone_silent_gets_each_time_limits_own_answer(
    backend: str, fast_path: bool, proxy: TcpProxy, gateway: Callable[..., Awaitable[Gateway]]
) -> None:
    """A host that stops answering without closing anything (frozen, or a network that drops every
    packet): /readyz answers 503 at its second and a query TIMEOUT at REQUEST_TIMEOUT, on both doors.
    Neither waits for the stopped statement's cancel, which would wait on the same silent host."""
    served = await gateway(request_timeout=1.0, fast_path=fast_path)
    client = served.client
    await make_user(client, "silent@example.com")  # the pool now holds idle connections
    proxy.freeze()
    async with asyncio.timeout(20):  # what a hang would run into
        async with client.get("/readyz") as response:
            assert response.status == 503, await response.text()
            assert await response.json() == {
                "status": "unavailable",
                "reason": "database did not answer in 1.0s",
            }
        body = await graphql(client, "{ users { totalCount } }")
        assert error_codes(body) == ["TIMEOUT"], body
        assert "REQUEST_TIMEOUT" in body["errors"][0]["message"]
    proxy.thaw()
    # The gateway serves on once the host answers again.
    assert await data(client, "{ users { totalCount } }") == {"users": {"totalCount": 1}}
