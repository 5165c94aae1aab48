"""The live, persisted and observed features as an attacker tries them: each refusal answers with
its code or close code, writes nothing and leaks nothing, and leaves no traceback in the log."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.auth.issuing import issue_token
from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.execution.documents import BUDGET_DOCUMENTS
from gateway.execution.executor import Executor
from gateway.execution.fastpath import PLAN_BUDGET
from gateway.execution.operation import Operation
from gateway.execution.persisted import PersistedOperations, PersistedQueryNotFound
from gateway.settings import Settings
from tests.conftest import count_rows, empty_tables
from tests.live_client import LEGACY_WS, TRANSPORT_WS, open_socket, open_stream
from tests.served_doors import DOORS, served, served_door
from tests.test_subscriptions import as_user, following, signed_in, url_of

__all__ = ["signed_in"]  # a fixture, used by name

CREATE = 'mutation { createUser(input: {email: "eve@example.com", displayName: "Eve"}) { id } }'
USERS = "{ users { edges { node { displayName } } } }"


def apq(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(text.encode()).hexdigest()}}


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("door", DOORS)
async def test_an_event_stream_opened_by_get_runs_no_mutation(
    door: str, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    # EventSource opens its stream with a GET, which links, prefetchers and caches also send: a
    # mutation there must be refused as on any GET, by its text and by its APQ hash alike.
    async with served_door(door, make_settings("sqlite")) as running, aiohttp.ClientSession() as http:
        source = await running.executor.open()
        await empty_tables(source)
        url = running.url + "/graphql"
        stream = {"Accept": "text/event-stream"}
        async with http.get(url, params={"query": CREATE}, headers=stream) as response:
            answer = await response.text()
        assert "mutations are not allowed when using GET" in answer, answer
        assert '"createUser"' not in answer
        assert await count_rows(source, "users") == 0
        # Registered (and run once) by POST, as Apollo's link does; its hash alone over GET runs nothing.
        async with http.post(url, json={"query": CREATE, "extensions": apq(CREATE)}) as response:
            assert (await response.json())["data"]["createUser"]["id"]
        for accept in ("text/event-stream", "application/json"):
            params = {"extensions": json.dumps(apq(CREATE))}
            async with http.get(url, params=params, headers={"Accept": accept}) as response:
                answer = await response.text()
            assert "mutations are not allowed when using GET" in answer, (accept, answer)
        assert await count_rows(source, "users") == 1
    assert not tracebacks(caplog)


MALFORMED = [
    "[]",
    "5",
    '{"id": "1"}',
    '{"type": "subscribe", "id": {"a": 1}, "payload": {"query": "{ users { edges { cursor } } }"}}',
    '{"type": "subscribe", "id": ["1"], "payload": {"query": "{ users { edges { cursor } } }"}}',
    '{"type": "subscribe", "id": "1", "payload": "{ users { edges { cursor } } }"}',
    '{"type": "start", "id": "1", "payload": null}',
    '{"type": "start", "payload": {"query": "{ users { edges { cursor } } }"}}',
    '{"type": "stop", "id": 7}',
]


@pytest.mark.parametrize("frame", MALFORMED)
async def test_a_malformed_graphql_transport_ws_message_closes_with_4400_without_a_traceback(
    frame: str, make_settings: Callable[..., Settings], aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client: TestClient = await aiohttp_client(create_app(make_settings("sqlite")))
    async with open_socket(str(client.make_url("/graphql")), TRANSPORT_WS) as socket:
        assert (await socket.init())["type"] == "connection_ack"
        await socket.ws.send_str(frame)
        closed = await socket.receive()
        assert closed["type"] == "closed" and closed["code"] == 4400, closed
    assert not tracebacks(caplog)


@pytest.mark.parametrize("frame", MALFORMED)
async def test_a_malformed_legacy_graphql_ws_message_is_an_error_and_the_socket_reads_on(
    frame: str, make_settings: Callable[..., Settings], aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client: TestClient = await aiohttp_client(create_app(make_settings("sqlite")))
    async with open_socket(str(client.make_url("/graphql")), LEGACY_WS) as socket:
        assert (await socket.init())["type"] == "connection_ack"
        await socket.ws.send_str(frame)
        error = await socket.receive()
        assert error["type"] == "error" and error["payload"]["message"].startswith("a "), error
        await socket.subscribe("q", USERS)
        assert await socket.next_payload("q") == {"data": {"users": {"edges": []}}}
    assert not tracebacks(caplog)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_protocol_abuse_is_answered_with_the_protocols_close_codes(
    protocol: str,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client: TestClient = await aiohttp_client(create_app(make_settings("sqlite")))
    source = client.app[EXECUTOR].data_source
    await empty_tables(source)
    url = str(client.make_url("/graphql"))
    async with open_socket(url, protocol) as socket:
        await socket.subscribe("1", CREATE)  # before connection_init
        closed = await socket.receive()
        assert closed["type"] == "closed" and closed["code"] == 4401, closed
    async with open_socket(url, protocol) as socket:
        await socket.ws.send_bytes(b'{"type": "connection_init"}')
        closed = await socket.receive()
        assert closed["type"] == "closed" and closed["code"] in (4400, 1002), closed
    if protocol == TRANSPORT_WS:
        async with open_socket(url, protocol) as socket:
            await socket.ws.send_str("{not json")
            assert (await socket.receive())["code"] == 4400
        async with open_socket(url, protocol) as socket:
            await socket.init()
            subscription = "subscription { activityAdded { kind } }"
            await socket.subscribe("same", subscription)
            await socket.subscribe("same", subscription)
            assert (await socket.receive())["code"] == 4409
    async with open_socket(url, protocol) as socket:
        await socket.init()
        # Over aiohttp's 4 MB frame limit: the server closes (1009) before reading it whole.
        huge = json.dumps({"type": "start", "id": "1", "payload": {"query": "{" + " " * (5 << 20) + "}"}})
        with suppress(ConnectionError):  # closed while we were still sending
            await socket.ws.send_str(huge)
        closed = await socket.receive()
        assert closed["type"] == "closed", closed
    assert await count_rows(source, "users") == 0
    assert not tracebacks(caplog)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_one_operation_over_the_per_connection_limit_is_a_coded_error(
    protocol: str, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    settings = make_settings("sqlite", subscriptions_per_connection=2)
    client: TestClient = await aiohttp_client(create_app(settings))
    async with open_socket(str(client.make_url("/graphql")), protocol) as socket:
        await socket.init()
        for op_id in ("1", "2", "3"):
            await socket.subscribe(op_id, "subscription { activityAdded { kind } }")
        refused = await socket.receive()
        error = refused["payload"][0] if protocol == TRANSPORT_WS else refused["payload"]
        assert refused["id"] == "3" and refused["type"] == "error", refused
        assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS", refused
        assert "SUBSCRIPTIONS_PER_CONNECTION=2" in error["message"]
        if protocol == LEGACY_WS:
            # Restarting a running id replaces it (its end announced first): not one more.
            await socket.subscribe("2", USERS)
            assert await socket.receive() == {"type": "complete", "id": "2"}
            assert await socket.next_payload("2") == {"data": {"users": {"edges": []}}}


async def test_a_hostile_origin_opens_no_socket_and_no_stream(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    settings = make_settings("sqlite", cors_origins="https://app.example.org")
    client: TestClient = await aiohttp_client(create_app(settings))
    url = str(client.make_url("/graphql"))
    hostile = ("null", "https://app.example.org.evil.example", "https://app.example.org@evil.example")
    async with aiohttp.ClientSession() as http:
        for origin in hostile:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url, protocols=(TRANSPORT_WS,), headers={"Origin": origin})
            assert refused.value.status == 403, origin
            headers = {"Origin": origin, "Accept": "text/event-stream"}
            async with http.get(url, params={"query": USERS}, headers=headers) as response:
                assert response.status == 403, origin
            async with http.post(url, json={"query": USERS}, headers=headers) as response:
                assert response.status == 403, origin
    assert client.app[EXECUTOR].subscriptions == 0


async def test_apq_keeps_no_document_longer_than_the_parser_reads(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    # 1,000 of these (APQ_CACHE_SIZE) at the 1 MB body limit held a gigabyte per instance.
    settings = make_settings("sqlite")
    client: TestClient = await aiohttp_client(create_app(settings))
    huge = USERS + " " * 900_000  # under the 1 MB body limit, far over what 5,000 tokens may span
    registered = await client.post("/graphql", json={"query": huge, "extensions": apq(huge)})
    assert (await registered.json())["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    by_hash = await (await client.post("/graphql", json={"extensions": apq(huge)})).json()
    assert by_hash["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert len(client.app[EXECUTOR].documents) == 0, "nor does the document cache keep it"


async def test_the_document_cache_keeps_a_bounded_weight_and_no_invalid_document(
    make_settings: Callable[..., Settings],
) -> None:
    # 300 documents of 5,000 tokens took a process from 77 MB to 1 GB: each kept its parse tree.
    documents = Executor(make_settings("sqlite")).documents
    for n in range(40):  # valid, so the limits would refuse them only after the cache
        await documents.get(f"query Q{n} {{ " + "...F " * 2480 + "} fragment F on Query { __typename }")
    assert 0 < len(documents) <= BUDGET_DOCUMENTS, "so many documents of MAX_QUERY_TOKENS fill the budget"
    assert documents.retained <= documents.budget
    unknown = await documents.get("{ " + " ".join(f"f{i}" for i in range(4990)) + " }")
    assert len(unknown.errors) > 100
    assert documents.cached(unknown.query) is None, "an invalid document's tree and errors are not kept"
    small = [f"query S{n} {{ users {{ edges {{ node {{ displayName }} }} }} }}" for n in range(256)]
    for query in small:
        await documents.get(query)
    prepared = documents.prepared
    for query in small:
        assert (await documents.get(query)).query == query
    assert documents.prepared == prepared, "an app's 256 small documents all stay cached"
    assert len(documents) == 256 and documents.retained <= documents.budget


def test_apq_keeps_a_bounded_length_of_documents(make_settings: Callable[..., Settings]) -> None:
    # 1,000 documents of 200 KB each (the parser's bound) held 270 MB per instance.
    persisted = PersistedOperations(make_settings("sqlite"))
    large = [f"query Q{n} {{ __typename }}" + " " * 199_900 for n in range(50)]
    for text in large:
        persisted.resolve(Operation(text, extensions=apq(text)))
    kept = []
    for text in large:
        with suppress(PersistedQueryNotFound):
            kept.append(persisted.resolve(Operation(None, extensions=apq(text))).query)
    assert kept == large[-20:], "the most recent 4 MB stay"
    assert persisted.retained <= persisted.budget
    small = [f"query S{n} {{ users {{ edges {{ cursor }} }} }}" for n in range(1000)]
    for text in small:
        persisted.resolve(Operation(text, extensions=apq(text)))
    for text in small:
        assert persisted.resolve(Operation(None, extensions=apq(text))).query == text


PRYING = """subscription($id: ID!) {
  shootingSessionChanged(id: $id) {
    notes user { displayName email groups { members { edges { node { email } } } } }
  }
}"""
PRYING_FEED = """subscription {
  activityAdded {
    user { email }
    shootingSession { user { email } }
    group { members { edges { node { displayName email } } } }
  }
}"""


async def test_a_subscriber_never_receives_another_members_e_mail_however_deep_it_asks(
    signed_in: tuple[TestClient, Settings],
) -> None:
    client, settings = signed_in
    ada_token = issue_token(settings, subject="sub-ada")
    bob_token = issue_token(settings, subject="sub-bob")
    create = "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }"
    await as_user(client, ada_token, create, i={"email": "ada@example.com", "displayName": "Ada"})
    await as_user(client, bob_token, create, i={"email": "bob@example.com", "displayName": "Bob"})
    group = await as_user(client, ada_token, 'mutation { createGroup(input: {name: "Juniors"}) { id } }')
    group_id = group["createGroup"]["id"]
    await as_user(client, ada_token, "mutation($g: ID!) { joinGroup(groupId: $g) { id } }", g=group_id)
    new_session = 'mutation { createShootingSession(input: {discipline: "Air"}) { id } }'
    session_id = (await as_user(client, ada_token, new_session))["createShootingSession"]["id"]
    async with (
        open_socket(url_of(client)) as bob,
        open_stream(
            url_of(client), PRYING, {"id": session_id}, headers={"Authorization": f"Bearer {bob_token}"}
        ) as stream,
    ):
        await bob.init({"Authorization": f"Bearer {bob_token}"})
        await bob.subscribe("session", PRYING, id=session_id)
        await bob.subscribe("feed", PRYING_FEED)
        await following(client, 3)
        await as_user(client, bob_token, "mutation($g: ID!) { joinGroup(groupId: $g) { id } }", g=group_id)
        await as_user(client, ada_token, UPDATE_NOTES, id=session_id)
        received = [await bob.receive() for _ in range(2)]
        received.append({"payload": (await stream.event())[1]})
    text = json.dumps(received)
    assert "ada@example.com" not in text, text
    assert "bob@example.com" in text  # his own, where he joined the group: the masking is by viewer
    assert all("errors" not in message["payload"] for message in received), text


UPDATE_NOTES = 'mutation($id: ID!) { updateShootingSession(id: $id, input: {notes: "wet"}) { notes } }'


# Each limit set tight alone, so the refusal is that limit's (the message names it).
HOSTILE = {
    "MAX_QUERY_DEPTH": (
        {"max_query_depth": 4},
        "subscription { activityAdded { group { members { edges { node { groups { name } } } } } } }",
    ),
    "MAX_ALIASES": ({"max_aliases": 3}, "subscription { activityAdded { a: kind b: kind c: kind d: kind } }"),
    "MAX_QUERY_COST": (
        {"max_query_cost": 5000},
        """subscription { activityAdded { group { members(first: 100) { edges { node {
          groups { members(first: 100) { edges { node { displayName } } } } } } } } } }""",
    ),
    "MAX_QUERY_TOKENS": (
        {"max_query_tokens": 200},
        "subscription { activityAdded { " + "kind " * 300 + "} }",
    ),
}


@pytest.mark.parametrize("limit", sorted(HOSTILE))
async def test_a_hostile_subscription_is_refused_by_the_operation_limits_over_sockets_and_streams(
    limit: str, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    overrides, document = HOSTILE[limit]
    client: TestClient = await aiohttp_client(create_app(make_settings("sqlite", **overrides)))
    url = str(client.make_url("/graphql"))
    async with open_socket(url) as socket, open_socket(url, LEGACY_WS) as legacy:
        for each in (socket, legacy):
            await each.init()
            await each.subscribe("hostile", document)
        refused = await socket.receive()
        assert refused["type"] == "error", refused
        errors = [refused["payload"][0], (await legacy.receive())["payload"]]
    async with open_stream(url, document) as stream:
        name, payload = await stream.event()
        assert name == "next", payload
        errors.append(payload["errors"][0])
    for error in errors:
        assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", error
        assert limit in error["message"], error
    assert client.app[EXECUTOR].subscriptions == 0


async def raw_get(url: str, target: bytes, headers: bytes) -> tuple[bytes, bytes]:
    """The status line and body of a GET sent byte for byte (clients refuse to send such headers)."""
    head = b"GET " + target + b" HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
    return await raw_request(url, head + headers + b"\r\n")


@pytest.mark.parametrize("door", DOORS)
async def test_undecodable_bytes_in_a_bearer_token_are_a_401_not_a_500(
    door: str, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings("sqlite", metrics_token="m" * 32, auth_jwt_secret="s" * 40)
    query = b"/graphql?query=%7Busers%7Bedges%7Bcursor%7D%7D%7D"
    bad = b"Authorization: Bearer \xff\xfe.\xc3(\r\n"
    async with served(door, settings) as url:
        status, body = await raw_get(url, b"/metrics", bad)
        assert status.startswith(b"HTTP/1.1 401"), (status, body)
        for extra in (b"", b"Accept: text/event-stream\r\n"):
            status, body = await raw_get(url, query, bad + extra)
            assert status.startswith(b"HTTP/1.1 401"), (status, body)
            assert b'"UNAUTHENTICATED"' in body, body
    assert not tracebacks(caplog)


UNREADABLE = {
    "a lone surrogate": '{"type": "connection_init", "payload": {"Authorization": "Bearer \\ud800"}}',
    "nesting too deep": '{"type": "connection_init", "payload": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a number too long": '{"type": "connection_init", "payload": {"n": ' + "9" * 5000 + "}}",
}


@pytest.mark.parametrize("problem", sorted(UNREADABLE))
async def test_json_no_parser_reads_is_a_message_that_is_not_json_on_both_protocols(
    problem: str,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # It was answered as an HTTP 400, written into the upgraded socket: a corrupt frame.
    settings = make_settings("sqlite", auth_jwt_secret="s" * 40)
    client: TestClient = await aiohttp_client(create_app(settings))
    url = str(client.make_url("/graphql"))
    async with open_socket(url) as socket:
        await socket.ws.send_str(UNREADABLE[problem])
        closed = await socket.receive()
        assert closed == {"type": "closed", "code": 4400, "reason": "WebSocket message must be valid JSON"}
    async with open_socket(url, LEGACY_WS) as legacy:
        await legacy.ws.send_str(UNREADABLE[problem])  # ignored, as the legacy protocol ignores bad JSON
        assert (await legacy.init())["type"] == "connection_ack"
        await legacy.subscribe("q", USERS)
        assert await legacy.next_payload("q") == {"data": {"users": {"edges": []}}}
    assert not tracebacks(caplog)


async def raw_request(url: str, request: bytes) -> tuple[bytes, bytes]:
    """The status line and body of `request`, sent byte for byte (the answer has a Content-Length)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status, *lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines if ": " in line)
        body = await asyncio.wait_for(reader.readexactly(int(fields.get("content-length", 0))), 10)
    finally:
        writer.close()
    return status.encode("latin-1"), body


def preflight(origin: bytes, method: bytes = b"POST", headers: bytes = b"content-type") -> bytes:
    return (
        b"OPTIONS /graphql HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nOrigin: "
        + origin
        + b"\r\nAccess-Control-Request-Method: "
        + method
        + b"\r\nAccess-Control-Request-Headers: "
        + headers
        + b"\r\n\r\n"
    )


@pytest.mark.parametrize("door", DOORS)
async def test_undecodable_bytes_in_cors_headers_are_refused_not_a_500(
    door: str, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    allowed = b"https://app.example.org"
    refused = {
        preflight(b"https://\xff.example.org"): b"origin https://",
        preflight(allowed, method=b"P\xffST"): b"method P",
        preflight(allowed, headers=b"content-type, x-\xff"): b"header x-",
    }
    stream = (
        b"GET /graphql?query=%7Busers%7Bedges%7Bcursor%7D%7D%7D HTTP/1.1\r\nHost: gateway\r\n"
        b"Connection: close\r\nOrigin: https://\xff.example.org\r\nAccept: text/event-stream\r\n\r\n"
    )
    socket = (
        b"GET /graphql HTTP/1.1\r\nHost: gateway\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: graphql-transport-ws\r\nOrigin: https://\xff.example.org\r\n\r\n"
    )
    async with served(door, make_settings("sqlite", cors_origins=allowed.decode())) as url:
        for request, quoted in refused.items():
            status, body = await raw_request(url, request)
            assert status.startswith(b"HTTP/1.1 403"), (status, body)
            assert body.startswith(b"CORS preflight refused: " + quoted), body
        if door == "aiohttp":  # the ASGI door runs no subscriptions, so checks no stream's origin
            for live in (stream, socket):
                status, body = await raw_request(url, live)
                assert status.startswith(b"HTTP/1.1 403"), (status, body)
                assert b"is not in CORS_ORIGINS" in body
    assert not tracebacks(caplog)


async def test_the_fast_paths_plans_keep_a_bounded_length(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    # 512 plans of documents padded to the parser's 200 KB held each document's text: 100 MB.
    client: TestClient = await aiohttp_client(create_app(make_settings("sqlite")))
    fast = client.app[EXECUTOR].fast
    for n in range(60):
        padded = f"query Q{n} {{ users {{ totalCount }} }}" + " " * 150_000
        answer = await (await client.post("/graphql", json={"query": padded})).json()
        assert answer == {"data": {"users": {"totalCount": 0}}}
    assert fast is not None and fast.answered == 60
    assert 0 < len(fast) < 60 and fast.retained <= PLAN_BUDGET
    for n in range(100):  # an app's small operations all stay
        await client.post("/graphql", json={"query": f"query S{n} {{ users {{ totalCount }} }}"})
    assert len(fast) >= 100
