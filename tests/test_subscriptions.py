"""Subscriptions on a running gateway, on every backend: each transport, what a subscriber may see,
limits and refusals. Across processes, outages and shutdown: tests/test_live_fanout.py."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from gateway.auth.issuing import issue_token
from gateway.datasources import create_data_source
from gateway.datasources.postgres import notifications
from gateway.datasources.sql.source import SqlDataSource
from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.settings import Settings
from tests.club import make_session, make_user
from tests.conftest import count_rows, empty_tables, sql_source
from tests.graphql_client import data
from tests.live_client import LEGACY_WS, TRANSPORT_WS, open_socket, open_stream
from tests.metrics_text import value
from tests.polling import until
from tests.tcp_proxy import TcpProxy

SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123456789"
FEED = """subscription($u: ID) {
  activityAdded(userId: $u) { kind user { displayName email } shootingSession { shotCount } }
}"""
SESSION_CHANGED = "subscription($id: ID!) { shootingSessionChanged(id: $id) { id shotCount notes } }"
ADD_SHOTS = "mutation($id: ID!) { addShots(sessionId: $id, shots: [{score: 9.1}]) { shotCount } }"
UPDATE = 'mutation($id: ID!) { updateShootingSession(id: $id, input: {notes: "wet"}) { notes } }'
DELETE = "mutation($id: ID!) { deleteShootingSession(id: $id) }"
USERS = "{ users { edges { node { displayName } } } }"


def url_of(client: TestClient) -> str:
    return str(client.make_url("/graphql"))


async def following(client: TestClient, count: int = 1) -> None:
    """Until `count` subscriptions follow the instance's feed (a subscription is then in place)."""
    executor = client.app[EXECUTOR]
    await until(lambda: executor.receiving() >= count, f"{count} subscriptions follow the feed")


async def settled(client: TestClient) -> None:
    """Until the feed announced every activity written so far: a new subscription sees later ones only."""
    executor = client.app[EXECUTOR]
    assert executor.feed is not None and executor.data_source is not None
    last = await executor.data_source.last_activity_id()
    feed = executor.feed
    # Before the first subscription nothing watches: nothing earlier can be announced.
    await until(lambda: feed.watch.delivered is None or feed.last_id >= last, f"the feed announced {last}")


async def test_a_write_reaches_a_graphql_transport_ws_subscriber(client: TestClient) -> None:
    ada = await make_user(client, "ada@example.com", "Ada")
    bob = await make_user(client, "bob@example.com", "Bob")
    async with open_socket(url_of(client)) as socket:
        assert (await socket.init())["type"] == "connection_ack"
        await socket.subscribe("all", FEED)
        await socket.subscribe("bob", FEED, u=bob["id"])
        await following(client, 2)
        await make_session(client, ada["id"], [9.5, 10.1])
        update = await socket.next_payload("all")
        assert update == {
            "data": {
                "activityAdded": {
                    "kind": "SESSION_CREATED",
                    "user": {"displayName": "Ada", "email": "ada@example.com"},
                    "shootingSession": {"shotCount": 2},
                }
            }
        }
        await make_session(client, bob["id"], [8.0])
        # Bob's filter skipped Ada's session: his first update is his own.
        first, second = await socket.receive(), await socket.receive()
        assert {first["id"], second["id"]} == {"all", "bob"}
        assert first["payload"]["data"]["activityAdded"]["user"]["displayName"] == "Bob"
        assert second["payload"] == first["payload"]


async def test_shooting_session_changed_sends_each_change_then_null_once_deleted(client: TestClient) -> None:
    ada = await make_user(client, "ada@example.com", "Ada")
    session = await make_session(client, ada["id"], [9.0])
    await settled(client)
    async with open_socket(url_of(client)) as socket:
        await socket.init()
        await socket.subscribe("s", SESSION_CHANGED, id=session["id"])
        await following(client)
        await data(client, ADD_SHOTS, id=session["id"])
        assert (await socket.next_payload("s"))["data"]["shootingSessionChanged"]["shotCount"] == 2
        await data(client, UPDATE, id=session["id"])
        assert (await socket.next_payload("s"))["data"]["shootingSessionChanged"]["notes"] == "wet"
        await data(client, DELETE, id=session["id"])
        assert await socket.next_payload("s") == {"data": {"shootingSessionChanged": None}}
        assert await socket.receive() == {"id": "s", "type": "complete"}


async def test_queries_and_mutations_over_a_socket_are_answered_per_protocol_without_a_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    create = 'mutation { createUser(input: {email: "eve@example.com", displayName: "Eve"}) { displayName } }'
    async with open_socket(url_of(client)) as socket:
        await socket.init()
        await socket.subscribe("q", USERS)
        assert await socket.next_payload("q") == {"data": {"users": {"edges": []}}}
        assert await socket.receive() == {"id": "q", "type": "complete"}
        await socket.subscribe("m", create)
        assert await socket.next_payload("m") == {"data": {"createUser": {"displayName": "Eve"}}}
        assert await socket.receive() == {"id": "m", "type": "complete"}
    async with open_socket(url_of(client), LEGACY_WS) as legacy:
        assert (await legacy.init())["type"] == "connection_ack"
        await legacy.subscribe("q", USERS)
        eve = {"data": {"users": {"edges": [{"node": {"displayName": "Eve"}}]}}}
        assert await legacy.next_payload("q") == eve
        assert await legacy.receive() == {"id": "q", "type": "complete"}
        await legacy.subscribe("bad", "{ nope }")
        error = await legacy.receive()
        assert error["type"] == "error"
        assert error["payload"]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


async def test_the_legacy_graphql_ws_protocol_delivers_updates(client: TestClient) -> None:
    ada = await make_user(client, "ada@example.com", "Ada")
    async with open_socket(url_of(client), LEGACY_WS) as socket:
        await socket.init()
        await socket.subscribe("1", FEED)
        await following(client)
        await make_session(client, ada["id"], [9.5])
        update = await socket.next_payload("1")
        assert update["data"]["activityAdded"]["kind"] == "SESSION_CREATED"


@pytest.fixture
async def own_client(
    backend: str,
    make_settings: Callable[..., Settings],
    fresh_database: Callable[[str], str],
    aiohttp_client: Any,
) -> TestClient:
    """A running gateway on a database of its own, which the test may break (SQLite's file is per test)."""
    overrides = {} if backend == "sqlite" else {"db_name": fresh_database(backend)}
    client: TestClient = await aiohttp_client(create_app(make_settings(backend, **overrides)))
    return client


COPY_ACTIVITY = (
    "INSERT INTO activities (kind, created_at, user_id, group_id, session_id, session_ref)"
    " SELECT kind, created_at, user_id, group_id, session_id, session_ref FROM activities WHERE id = ?"
)


async def copy_activity(source: SqlDataSource, template: int) -> None:
    """Commit a copy of activity `template`, as any writer may."""
    async with source.transaction() as conn:
        await conn.execute(COPY_ACTIVITY, (template,))


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
async def test_a_first_update_whose_fields_fail_is_sent_as_an_update_and_the_subscription_goes_on(
    own_client: TestClient,
) -> None:
    # Activity.user and activityAdded are non-null: a user that cannot be read leaves `data` null.
    # That is an update with errors, not a refusal: both socket protocols ended the subscription.
    client = own_client
    ada = await make_user(client, "ada@example.com", "Ada")
    await make_session(client, ada["id"], [9.5])
    source = sql_source(client.app[EXECUTOR].data_source)
    template = await source.last_activity_id()
    feed = "subscription { activityAdded { kind user { displayName } } }"
    async with open_socket(url_of(client)) as socket, open_socket(url_of(client), LEGACY_WS) as legacy:
        for each in (socket, legacy):
            await each.init()
            await each.subscribe("1", feed)
        await following(client, 2)
        async with source.connection() as conn:
            await conn.execute("ALTER TABLE users RENAME TO users_hidden")
        await copy_activity(source, template)
        codes = []
        for each in (socket, legacy):
            failed = await each.next_payload("1")
            assert failed["data"] is None and failed["errors"][0]["path"] == ["activityAdded", "user"], failed
            codes.append(failed["errors"][0]["extensions"]["code"])
        # An update's errors count as answered, once per subscriber that received them.
        metrics = await (await client.get("/metrics")).text()
        assert value(metrics, "gateway_graphql_errors_total", code=codes[0]) == 2, codes
        async with source.connection() as conn:
            await conn.execute("ALTER TABLE users_hidden RENAME TO users")
        await copy_activity(source, template)
        for each in (socket, legacy):
            update = await each.next_payload("1")
            assert update == {
                "data": {"activityAdded": {"kind": "SESSION_CREATED", "user": {"displayName": "Ada"}}}
            }


@pytest.mark.parametrize("backend", ["postgres", "mysql"])  # SQLite's one writer: no later id commits first
async def test_an_activity_whose_id_was_taken_before_the_watch_started_is_announced_at_its_commit(
    own_client: TestClient,
) -> None:
    # The watch started after the newest visible id, so an id taken below it by a transaction still
    # open was never announced: not above the start, and not a gap.
    client = own_client
    ada = await make_user(client, "ada@example.com", "Ada")
    bob = await make_user(client, "bob@example.com", "Bob")
    await make_session(client, ada["id"], [9.5])
    source = sql_source(client.app[EXECUTOR].data_source)
    template = await source.last_activity_id()
    inserted, commit = asyncio.Event(), asyncio.Event()

    async def held_open() -> None:
        async with source.transaction() as conn:
            await conn.execute(COPY_ACTIVITY, (template,))
            inserted.set()
            await commit.wait()

    holder = asyncio.create_task(held_open())
    try:
        await inserted.wait()
        await copy_activity(source, template)  # a later id, visible first
        async with open_socket(url_of(client)) as socket:
            await socket.init()
            await socket.subscribe("1", "subscription { activityAdded { user { displayName } } }")
            await following(client)  # the instance's first subscription: its watch has started
            commit.set()
            await holder
            await make_session(client, bob["id"], [8.0])  # committed after it, to know when to stop
            for name in ("Ada", "Bob"):
                update = await socket.next_payload("1")
                assert update == {"data": {"activityAdded": {"user": {"displayName": name}}}}
    finally:
        commit.set()
        await holder


def keep_alive_tasks() -> list[asyncio.Task[Any]]:
    """The legacy protocol's `ka` loops running in this event loop (the server's, in these tests)."""
    running = asyncio.all_tasks()
    return [t for t in running if getattr(t.get_coro(), "__qualname__", "").endswith(".handle_keep_alive")]


async def test_a_second_connection_init_on_the_legacy_protocol_closes_with_4429_and_leaves_no_task(
    make_settings: Callable[..., Settings], aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Each init signed in again and started another `ka` loop; only the last was stopped at close,
    # the others logged "Task exception was never retrieved" once the socket was gone.
    client = await aiohttp_client(create_app(make_settings("sqlite", live_keepalive=0.05)))
    async with open_socket(url_of(client), LEGACY_WS) as legacy:
        assert (await legacy.init())["type"] == "connection_ack"
        assert len(keep_alive_tasks()) == 1
        again = await legacy.init()
        assert again == {"type": "closed", "code": 4429, "reason": "Too many initialisation requests"}
    await until(lambda: not keep_alive_tasks(), "the socket's keep-alive loop ends")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


async def test_open_subscriptions_and_shared_executions_are_gauges_in_metrics(client: TestClient) -> None:
    async def gauges() -> tuple[float | None, float | None]:
        text = await (await client.get("/metrics")).text()
        return value(text, "gateway_subscriptions"), value(text, "gateway_subscription_executions")

    async with open_socket(url_of(client)) as first, open_socket(url_of(client)) as second:
        for socket in (first, second):
            await socket.init()
            await socket.subscribe("feed", FEED)
        await second.subscribe("users", "{ users { edges { cursor } } }")
        await following(client, 2)
        assert await gauges() == (2, 1)  # one execution serves both; the query came and went
    await until(lambda: client.app[EXECUTOR].subscriptions == 0, "the sockets' subscriptions end")
    assert await gauges() == (0, 0)


async def test_a_subscription_over_server_sent_events(client: TestClient) -> None:
    ada = await make_user(client, "ada@example.com", "Ada")
    async with open_stream(url_of(client), FEED) as stream:
        await following(client)
        await make_session(client, ada["id"], [9.5])
        name, payload = await stream.event()
        assert name == "next"
        assert payload["data"]["activityAdded"]["user"] == {"displayName": "Ada", "email": "ada@example.com"}
    async with open_stream(url_of(client), USERS) as stream:
        assert (await stream.event())[0] == "next"
        assert (await stream.event())[0] == "complete"


async def test_sockets_and_event_streams_from_origins_outside_cors_origins_are_refused(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    client = await aiohttp_client(
        create_app(make_settings("sqlite", cors_origins="https://club-*.example.org"))
    )
    url = url_of(client)
    async with aiohttp.ClientSession() as http:
        for origin in ("https://evil.example", "https://club.example.org.evil.example"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url, protocols=("graphql-transport-ws",), headers={"Origin": origin})
            assert refused.value.status == 403
            headers = {"Origin": origin, "Accept": "text/event-stream"}
            async with http.post(url, json={"query": FEED}, headers=headers) as response:
                assert response.status == 403
                assert "not in CORS_ORIGINS" in await response.text()
    assert client.app[EXECUTOR].subscriptions == 0
    async with open_socket(url, headers={"Origin": "https://club-app.example.org"}) as socket:
        assert (await socket.init())["type"] == "connection_ack"


@pytest.fixture
async def signed_in(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> AsyncIterator[tuple[TestClient, Settings]]:
    settings = make_settings("sqlite", auth_jwt_secret=SECRET)
    client = await aiohttp_client(create_app(settings))
    await empty_tables(client.app[EXECUTOR].data_source)
    yield client, settings


async def as_user(client: TestClient, token: str, query: str, **variables: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    body: dict[str, Any] = await response.json()
    assert "errors" not in body, body
    return body["data"]


async def test_a_subscriber_sees_only_what_it_could_query_e_mails_masked(
    signed_in: tuple[TestClient, Settings],
) -> None:
    client, settings = signed_in
    ada_token = issue_token(settings, subject="sub-ada")
    bob_token = issue_token(settings, subject="sub-bob")
    create = "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }"
    ada = await as_user(client, ada_token, create, i={"email": "ada@example.com", "displayName": "Ada"})
    await as_user(client, bob_token, create, i={"email": "bob@example.com", "displayName": "Bob"})
    session = 'mutation { createShootingSession(input: {discipline: "Air"}) { id } }'
    async with (
        open_socket(url_of(client)) as anonymous,
        open_socket(url_of(client)) as bob,
        open_socket(url_of(client)) as own,
    ):
        await anonymous.init()
        assert (await bob.init({"Authorization": f"Bearer {bob_token}"}))["type"] == "connection_ack"
        await own.init({"authorization": f"Bearer {ada_token}"})
        # The same subscription for all three: each still receives only what it may see.
        for socket in (anonymous, bob, own):
            await socket.subscribe("feed", FEED)
        await own.subscribe("mine", FEED, u=ada["createUser"]["id"])
        await following(client, 4)
        await as_user(client, ada_token, session)
        for socket in (anonymous, bob):
            user = (await socket.next_payload("feed"))["data"]["activityAdded"]["user"]
            assert user == {"displayName": "Ada", "email": None}
        for _ in range(2):
            user = (await own.receive())["payload"]["data"]["activityAdded"]["user"]
            assert user == {"displayName": "Ada", "email": "ada@example.com"}


async def test_a_forged_token_in_connection_init_closes_the_socket_before_any_operation(
    signed_in: tuple[TestClient, Settings],
) -> None:
    client, settings = signed_in
    stranger = settings.model_copy(update={"auth_jwt_secret": SecretStr("x" * 40)})
    forged = issue_token(stranger, subject="sub-ada")
    async with open_socket(url_of(client)) as socket:
        closed = await socket.init({"Authorization": f"Bearer {forged}"})
        assert closed["type"] == "closed" and closed["code"] == 4403
    async with open_socket(url_of(client), LEGACY_WS) as legacy:
        answer = await legacy.init({"Authorization": f"Bearer {forged}"})
        assert answer["type"] == "connection_error"
        assert answer["payload"]["extensions"]["code"] == "UNAUTHENTICATED"
    assert client.app[EXECUTOR].subscriptions == 0


async def test_a_refused_connection_init_token_is_logged_and_its_reason_kept_from_the_client(
    make_settings: Callable[..., Settings], aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The socket sent the reason (the configured issuer here) to a legacy client and logged nothing.
    settings = make_settings("sqlite", auth_jwt_secret=SECRET, auth_issuer="https://idp.internal.example/")
    client = await aiohttp_client(create_app(settings))
    stranger = settings.model_copy(update={"auth_issuer": "https://elsewhere.example/"})
    token = issue_token(stranger, subject="sub-ada")
    caplog.set_level(logging.INFO, logger="gateway")
    async with open_socket(url_of(client), LEGACY_WS) as legacy:
        answer = await legacy.init({"Authorization": f"Bearer {token}"})
    assert answer["type"] == "connection_error", answer
    assert answer["payload"] == {
        "message": "the bearer token is not valid",
        "extensions": {"code": "UNAUTHENTICATED"},
    }
    async with open_socket(url_of(client)) as socket:
        closed = await socket.init({"Authorization": f"Bearer {token}"})
    assert closed["type"] == "closed" and closed["code"] == 4403
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("bearer token refused")]
    assert refused == ["bearer token refused: issuer is not AUTH_ISSUER=https://idp.internal.example/"] * 2
    assert token not in caplog.text
    assert client.app[EXECUTOR].subscriptions == 0


async def test_connection_init_token_wins_over_an_expired_handshake_header(
    signed_in: tuple[TestClient, Settings],
) -> None:
    # A Node client sets the header once and refreshes connectionParams: its expired header was a
    # 401 at the handshake, before the fresh token in connection_init was read.
    client, settings = signed_in
    expired = issue_token(settings, subject="sub-ada", ttl=timedelta(seconds=-120))
    fresh = issue_token(settings, subject="sub-ada")
    for protocol in (TRANSPORT_WS, LEGACY_WS):
        async with open_socket(
            url_of(client), protocol, headers={"Authorization": f"Bearer {expired}"}
        ) as socket:
            assert (await socket.init({"Authorization": f"Bearer {fresh}"}))["type"] == "connection_ack"
        # The header alone, expired, is refused as a payload token is: before any operation.
        async with open_socket(
            url_of(client), protocol, headers={"Authorization": f"Bearer {expired}"}
        ) as socket:
            refused = await socket.init()
            assert refused["type"] in ("closed", "connection_error"), refused
            assert refused.get("code", 4403) == 4403


async def test_a_socket_closes_when_its_token_expires(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    settings = make_settings("sqlite", auth_jwt_secret=SECRET, auth_leeway=0)
    client = await aiohttp_client(create_app(settings))
    token = issue_token(settings, subject="sub-ada", ttl=timedelta(seconds=2))
    async with (
        open_socket(url_of(client)) as socket,
        open_stream(url_of(client), FEED, headers={"Authorization": f"Bearer {token}"}) as stream,
    ):
        assert (await socket.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
        await socket.subscribe("feed", FEED)
        await following(client, 2)
        # Signed in with a token good for two seconds: past them, what it could query it no longer may.
        closed = await socket.receive(wait=10)
        assert closed["type"] == "closed" and closed["code"] == 4403, closed
        name, payload = await stream.event(wait=10)
        assert name == "next" and payload["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", payload
        assert (await stream.event())[0] == "complete"
    await until(lambda: client.app[EXECUTOR].subscriptions == 0, "the expired subscriptions end")


async def test_without_anonymous_read_a_token_less_subscription_is_refused(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    settings = make_settings("sqlite", auth_jwt_secret=SECRET, auth_anonymous_read=False)
    client = await aiohttp_client(create_app(settings))
    async with open_socket(url_of(client)) as socket:
        await socket.init()
        await socket.subscribe("1", FEED)
        refused = await socket.receive()
        assert refused["type"] == "error" and refused["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    async with open_stream(url_of(client), FEED) as stream:
        name, payload = await stream.event()
        assert name == "next" and payload["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert client.app[EXECUTOR].subscriptions == 0


async def test_subscriptions_pass_the_operation_limits_and_the_subscription_limits(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    settings = make_settings("sqlite", max_query_depth=3, subscriptions_max=3, subscriptions_per_connection=2)
    client = await aiohttp_client(create_app(settings))
    deep = "subscription { activityAdded { shootingSession { user { groups { name } } } } }"
    async with open_socket(url_of(client)) as first, open_socket(url_of(client)) as second:
        await first.init()
        await first.subscribe("deep", deep)
        refused = await first.receive()
        assert refused["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        await first.subscribe("1", FEED)
        await first.subscribe("2", FEED)
        await following(client, 2)
        await first.subscribe("3", FEED)
        refused = await first.receive()
        assert refused["id"] == "3"
        assert refused["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        assert "SUBSCRIPTIONS_PER_CONNECTION=2" in refused["payload"][0]["message"]
        await second.init()
        await second.subscribe("1", FEED)
        await following(client, 3)
        await second.subscribe("2", FEED)
        refused = await second.receive()
        assert refused["id"] == "2"
        assert refused["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    await until(lambda: client.app[EXECUTOR].subscriptions == 0, "the closed socket's subscriptions end")


async def test_nothing_is_written_by_a_refused_mutation_over_a_socket(
    signed_in: tuple[TestClient, Settings],
) -> None:
    client, _ = signed_in
    source = client.app[EXECUTOR].data_source
    async with open_socket(url_of(client)) as socket:
        await socket.init()
        await socket.subscribe("m", 'mutation { createGroup(input: {name: "Juniors"}) { id } }')
        refused = await socket.receive()
        assert refused["type"] == "error" and refused["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await count_rows(source, "club_groups") == 0


async def test_an_asgi_server_answers_a_subscription_with_a_coded_error(
    make_settings: Callable[..., Settings],
) -> None:
    from tests.served_doors import served

    async with served("asgi", make_settings("sqlite")) as base, aiohttp.ClientSession() as http:
        url = base + "/graphql"
        for accept in ("application/json", "text/event-stream"):
            async with http.post(url, json={"query": FEED}, headers={"Accept": accept}) as response:
                body = await response.json()
            assert body["errors"][0]["extensions"]["code"] == "SUBSCRIPTIONS_UNSUPPORTED", body
            assert "gateway serve" in body["errors"][0]["message"]


class StalledSocket:
    """A graphql-transport-ws client over a raw TCP socket with a tiny receive buffer, which can stop
    reading: what a phone on a bad network, or a frozen tab, looks like to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> StalledSocket:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, (host, port))
        # A small StreamReader limit too: asyncio stops reading the socket once it holds that much.
        reader, writer = await asyncio.open_connection(sock=raw, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send(self, message: dict[str, Any]) -> None:
        payload, mask = json.dumps(message).encode(), os.urandom(4)
        length = len(payload)
        size = bytes([0x80 | length]) if length < 126 else bytes([0x80 | 126]) + length.to_bytes(2, "big")
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.writer.write(bytes([0x81]) + size + mask + masked)

    async def frame(self) -> tuple[int, bytes]:
        """The next frame's opcode and payload (servers do not mask)."""
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8), "big")
        return first & 0x0F, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def test_a_subscriber_that_stops_reading_is_closed_with_1013_not_buffered(
    make_settings: Callable[..., Settings], aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings("sqlite", subscription_buffer=2, max_aliases=100, max_query_cost=10_000_000)
    client = await aiohttp_client(create_app(settings))
    ada = await make_user(client, "ada@example.com", "Ada")
    session = await make_session(client, ada["id"], [9.5] * 500)
    # Each update is large (8 copies of 500 shots, about 160 KB), so a few dozen fill every buffer on the way.
    shots = "shootingSession { shots { sequence score x y } }"
    heavy = "subscription { activityAdded { " + " ".join(f"s{n}: {shots}" for n in range(8)) + " } }"
    stalled = await StalledSocket.open(client.host, client.port)
    async with open_socket(url_of(client)) as reader:
        # A client reading as fast as updates come, subscribed to the very same updates.
        await reader.init()
        await reader.subscribe("1", heavy)
        read: list[int] = []

        async def keep_reading() -> None:
            while True:
                payload = await reader.next_payload("1")
                read.append(payload["data"]["activityAdded"]["s0"]["shots"][-1]["sequence"])

        reading = asyncio.create_task(keep_reading())
        try:
            stalled.send({"type": "connection_init"})
            assert json.loads((await stalled.frame())[1]) == {"type": "connection_ack"}
            stalled.send({"id": "1", "type": "subscribe", "payload": {"query": heavy}})
            await following(client, 2)
            # The stalled client stops reading; updates keep coming until the server gives up on it.
            writes = 0
            while "reads too slowly" not in caplog.text and writes < 200:
                await data(client, ADD_SHOTS, id=session["id"])
                writes += 1
            assert "reads too slowly" in caplog.text
            # It is no longer fed, and the other subscriber was never held back: it gets every update.
            await data(client, ADD_SHOTS, id=session["id"])
            await until(lambda: len(read) == writes + 1, f"the reading client has all {writes + 1} updates")
            # Each update is resolved when it is delivered: the last one shows every shot written.
            assert read[-1] == 500 + writes + 1
        finally:
            reading.cancel()
    try:
        feed = client.app[EXECUTOR].feed
        assert feed is not None
        # Reading again, it finds the updates that were already on their way, then the close frame.
        while True:
            opcode, payload = await stalled.frame()
            if opcode == 0x8:
                break
        assert int.from_bytes(payload[:2], "big") == 1013
        assert payload[2:] == b"slow consumer"
    finally:
        stalled.close()
    await until(lambda: client.app[EXECUTOR].subscriptions == 0, "the slow subscription ends")
    assert feed.followers == 0


async def test_a_bad_argument_is_a_coded_error_and_keep_alives_flow(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(make_settings("sqlite", live_keepalive=0.2)))
    async with open_socket(url_of(client), autoping=False) as socket:
        await socket.init()
        await socket.subscribe("bad", 'subscription { activityAdded(userId: "nope") { kind } }')
        refused = await socket.receive()
        assert refused["type"] == "error", refused
        assert refused["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        # graphql-transport-ws: WebSocket ping frames, every LIVE_KEEPALIVE seconds.
        async with asyncio.timeout(5):
            while (await socket.ws.receive()).type != aiohttp.WSMsgType.PING:
                pass
    async with open_socket(url_of(client), LEGACY_WS) as legacy:
        await legacy.init()
        async with asyncio.timeout(5):  # the legacy protocol's own `ka` messages
            while json.loads((await legacy.ws.receive()).data).get("type") != "ka":
                pass
    assert client.app[EXECUTOR].subscriptions == 0


async def test_a_burst_larger_than_every_buffer_reaches_a_subscriber_that_reads(client: TestClient) -> None:
    # A bulk insert, or the backlog after an outage: more activities at once than the execution's
    # buffer (1,000) and a read batch (500). A client reading as they come gets them all.
    ada = await make_user(client, "ada@example.com", "Ada")
    await make_session(client, ada["id"], [9.5])
    source = sql_source(client.app[EXECUTOR].data_source)
    async with source.connection() as conn:
        template = (await conn.fetch("SELECT MAX(id) AS id FROM activities"))[0]["id"]
    burst = 2500
    async with open_socket(url_of(client)) as socket:
        await socket.init()
        await socket.subscribe("1", "subscription { activityAdded { kind } }")
        await following(client, 1)
        async with source.transaction() as conn:
            for _ in range(burst):
                await conn.execute(
                    "INSERT INTO activities (kind, created_at, user_id, group_id, session_id, session_ref)"
                    " SELECT kind, created_at, user_id, group_id, session_id, session_ref FROM activities"
                    " WHERE id = ?",
                    (template,),
                )
        for _ in range(burst):
            update = await socket.next_payload("1")
            assert update == {"data": {"activityAdded": {"kind": "SESSION_CREATED"}}}
    await until(lambda: client.app[EXECUTOR].subscriptions == 0, "the subscription ends")


async def test_tens_of_thousands_of_notified_activities_are_read_in_batches_on_postgres(
    make_settings: Callable[..., Settings], aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # One INSERT of 40,000 activities notifies 40,000 ids: read in one statement they passed its
    # 32,767 parameters, and the watch reported an outage and reconnected.
    client = await aiohttp_client(create_app(make_settings("postgres")))
    await empty_tables(client.app[EXECUTOR].data_source)
    ada = await make_user(client, "ada@example.com", "Ada")
    bob = await make_user(client, "bob@example.com", "Bob")
    await make_session(client, ada["id"], [9.5])
    source = sql_source(client.app[EXECUTOR].data_source)
    async with open_socket(url_of(client)) as socket:
        await socket.init()
        await socket.subscribe("bob", FEED, u=bob["id"])
        await following(client, 1)
        async with source.connection() as conn:
            await conn.execute(
                "INSERT INTO activities (kind, created_at, user_id, session_id, session_ref)"
                " SELECT a.kind, a.created_at, a.user_id, a.session_id, a.session_ref"
                " FROM activities a, generate_series(1, 40000) WHERE a.kind = 'SESSION_CREATED'"
            )
        await make_session(client, bob["id"], [8.0])  # after them all: reaches bob's filter
        update = await socket.next_payload("bob")
        assert update["data"]["activityAdded"]["user"]["displayName"] == "Bob"
    assert "live updates paused" not in caplog.text


@pytest.mark.parametrize("backend", ["postgres", "mysql"])  # LISTEN/NOTIFY, and reading the table
async def test_a_database_gone_silent_mid_read_does_not_stop_the_live_feed_for_good(
    backend: str,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every connection open to the database goes silent (a failover behind the same name; the old
    # host gone without a word), new ones are answered. The watch found its LISTEN connection dead
    # and listened again (MySQL's poller read on), then read what it had missed on a silent pool
    # connection: that read waited forever, and no update reached any subscriber of the instance again.
    monkeypatch.setattr(notifications, "_CHECK_EVERY", 1.0)  # the LISTEN connection's check, sooner
    direct = make_settings(backend)
    proxy = TcpProxy(direct.db_host, direct.database_port)
    await proxy.start()
    try:
        settings = make_settings(
            backend, db_port=proxy.port, db_statement_timeout=1, db_connect_timeout=1, request_timeout=2
        )
        client = await aiohttp_client(create_app(settings))
        await empty_tables(client.app[EXECUTOR].data_source)
        ada = await make_user(client, "ada@example.com", "Ada")
        await make_session(client, ada["id"], [9.5])
        source = sql_source(client.app[EXECUTOR].data_source)
        template = await source.last_activity_id()
        async with open_socket(url_of(client)) as socket:
            await socket.init()
            await socket.subscribe("1", "subscription { activityAdded { kind } }")
            await following(client)
            await copy_activity(source, template)
            assert await socket.next_payload("1") == {"data": {"activityAdded": {"kind": "SESSION_CREATED"}}}
            proxy.silence_open()
            other = sql_source(create_data_source(direct.model_copy(update={"db_pool_min": 0})))
            await other.open()
            try:
                await copy_activity(other, template)  # a writer the silence does not reach
            finally:
                await other.close()
            update = await socket.receive(wait=30)
            assert update == {
                "id": "1",
                "type": "next",
                "payload": {"data": {"activityAdded": {"kind": "SESSION_CREATED"}}},
            }
    finally:
        await proxy.cut()
