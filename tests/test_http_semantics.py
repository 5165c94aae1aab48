"""GraphQL over HTTP on both doors: bodies no view can read, application/graphql-response+json,
UNAVAILABLE as a 503 with Retry-After, and the headers every answer carries.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.datasources import create_data_source
from gateway.doors.refusals import MAX_BODY_BYTES
from gateway.settings import Settings
from tests.conftest import sql_source
from tests.served_doors import DOORS, served
from tests.tcp_proxy import TcpProxy

GRAPHQL_RESPONSE = "application/graphql-response+json"
CREATE_GROUP = 'mutation { createGroup(input: {name: "Juniors"}) { id } }'
DEEP = "[" * 10_000 + "]" * 10_000
SHALLOWER = b"[" * 1_100 + b"]" * 1_100


@dataclass
class Reply:
    status: int
    media: str
    headers: Any
    body: Any
    seconds: float


@dataclass
class Door:
    """A door serving a fresh SQLite club, and an HTTP client to it."""

    url: str
    http: aiohttp.ClientSession
    settings: Settings

    async def post(self, body: bytes | Any, accept: str | None = None, **headers: str) -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **headers}
        if accept is not None:
            headers["Accept"] = accept
        return await self.send("POST", data=data, headers=headers)

    async def get(self, accept: str | None = None, **params: str) -> Reply:
        return await self.send("GET", params=params, headers={"Accept": accept} if accept else {})

    async def send(self, method: str, **kwargs: Any) -> Reply:
        started = time.perf_counter()
        async with self.http.request(method, self.url + "/graphql", **kwargs) as response:
            text = await response.text()
            body = json.loads(text) if "json" in response.content_type else text
            seconds = time.perf_counter() - started
            return Reply(response.status, response.content_type, response.headers, body, seconds)


@pytest.fixture(params=DOORS)
async def door(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> AsyncIterator[Door]:
    settings = make_settings("sqlite")
    async with served(request.param, settings) as url, aiohttp.ClientSession() as http:
        yield Door(url, http, settings)


async def groups_named(settings: Settings, name: str) -> int:
    """How many groups called `name` the database holds, read with a data source of its own."""
    source = create_data_source(settings)
    await source.open()
    try:
        async with sql_source(source).connection() as conn:
            rows = await conn.fetch("SELECT COUNT(*) AS n FROM club_groups WHERE name = ?", (name,))
        return int(rows[0]["n"])
    finally:
        await source.close()


async def groups(door: Door) -> int:
    reply = await door.post({"query": "{ groups { edges { cursor } } }"})
    return len(reply.body["data"]["groups"]["edges"])


def bad_request(reply: Reply) -> str:
    """The message of a coded BAD_REQUEST refusal, checked to be fast and shaped as the spec asks."""
    assert (reply.status, reply.media) == (400, "application/json"), reply.body
    assert reply.seconds < 1.0
    assert reply.body["data"] is None
    (error,) = reply.body["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    message: str = error["message"]
    return message


# -- bodies no view can read ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"null", "the body is null, not an object holding an operation"),
        (b'"hello"', "the body is a string, not an object holding an operation"),
        (b"5", "the body is a number, not an object holding an operation"),
        (b'{"query": "{ __typename \xff }"}', "the body is not UTF-8 text"),
        (b'{"query": "{ __typename }", "variables": {"v": "\\ud800"}}', "the JSON holds a lone UTF-16"),
        (b'{"query": "{ __typename }", "variables": {"v": %s}}' % DEEP.encode(), "the JSON is nested too"),
        # Past orjson's 1,024 levels, within what json reads from Python 3.12 on: held to orjson's limit.
        (
            b'{"query": %s, "variables": {"v": %s}}' % (json.dumps(CREATE_GROUP).encode(), SHALLOWER),
            "the JSON is nested",
        ),
        (b'{"query": "{ __typename }", "operationName": {}}', "`operationName` must be a string or null"),
        (b'{"query": "{ __typename }", "variables": {"n": %s}}' % (b"9" * 5000), "the JSON holds a number"),
        (b"[%s, null]" % json.dumps({"query": CREATE_GROUP}).encode(), "batch item 1 is null"),
        (b'[%s, {"query": 5}]' % json.dumps({"query": CREATE_GROUP}).encode(), "batch item 1:"),
    ],
)
async def test_a_body_no_view_can_read_is_a_coded_400_on_one_log_line_and_runs_nothing(
    door: Door, body: bytes, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        reply = await door.post(body)
    assert bad_request(reply).startswith(message)
    refused = [r for r in caplog.records if r.name == "gateway.http"]
    assert [r.getMessage() for r in refused] == [f"request refused: {bad_request(reply)}"]
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    # A batch is refused whole: its first operation, a mutation, did not run.
    assert await groups(door) == 0


KEYS = st.sampled_from(["query", "variables", "operationName", "extensions"]) | st.text()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=10,
)
QUERIES = st.sampled_from(["{ __typename }", "{ users { edges { cursor } } }", "{", "query A { __typename }"])
OPERATIONS = st.fixed_dictionaries(
    {},
    optional={"query": QUERIES | JSON, "variables": JSON, "operationName": JSON, "extensions": JSON},
)
BODIES = (
    st.binary(max_size=100)
    | JSON.map(lambda value: json.dumps(value).encode())
    | (OPERATIONS | st.lists(OPERATIONS, max_size=3)).map(lambda value: json.dumps(value).encode())
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one door serves every example
)
@given(body=BODIES, accept=st.sampled_from(["*/*", GRAPHQL_RESPONSE, "text/event-stream"]))
async def test_any_body_is_answered_below_500_with_no_error_logged(
    door: Door, body: bytes, accept: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        reply = await door.post(body, accept=accept)
    assert reply.status < 500, (body, reply.body)
    assert "INTERNAL" not in str(reply.body)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


async def test_get_variables_too_deep_to_read_are_a_coded_400(door: Door) -> None:
    # 1,100 levels fit in a URL aiohttp accepts, and are past orjson's limit, which holds for json too.
    reply = await door.get(query="{ __typename }", variables="[" * 1100 + "]" * 1100)
    assert bad_request(reply) == "the JSON is nested too deeply"


async def test_a_request_aiohttp_cannot_parse_is_logged_on_one_line(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    async with served("aiohttp", make_settings("sqlite")) as url, aiohttp.ClientSession() as http:
        with caplog.at_level(logging.INFO):
            # Variables nested 10,000 deep in a URL: past aiohttp's 8 KB request line.
            params = {"query": "{ __typename }", "variables": DEEP}
            async with http.get(url + "/graphql", params=params) as response:
                assert response.status == 400
    lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == 1 and "Got more than 8190 bytes" in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records) and "Traceback" not in caplog.text


@pytest.mark.parametrize(
    ("request_head", "reason"),
    [
        # aiohttp's message for it is three lines (reason, the bytes, a caret).
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad\x01Header: y-SECRET\r\n", "Invalid header token"),
        # Past 8 KB, aiohttp quoted the value's first 100 bytes: a session cookie, a token.
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: sid=SESSION-SECRET; pad=%s\r\n" % (b"a" * 9000),
            "Got more",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer TOKEN-SECRET%s\r\n" % (b"a" * 9000),
            "Got more",
        ),
        (
            b"GET /graphql?variables=%%7B%%22pw%%22:%%22VAR-SECRET%%22%%7D&pad=%s HTTP/1.1\r\n"
            % (b"a" * 70000),
            "Got more",
        ),
        (b"G\x01T /graphql?variables=VAR-SECRET HTTP/1.1\r\n", "Invalid method"),
    ],
)
async def test_a_request_aiohttp_cannot_parse_is_logged_on_one_line_without_its_bytes(
    request_head: bytes, reason: str, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    async with served("aiohttp", make_settings("sqlite")) as url:
        host, port = url.removeprefix("http://").split(":")
        with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(request_head + b"\r\n")
            assert (await reader.readline()).startswith(b"HTTP/1.0 400 ")
            writer.close()
            await writer.wait_closed()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]
    assert "\n" not in line and "SECRET" not in line and "aaaa" not in line, line
    assert line.startswith("Error handling request from 127.0.0.1: " + reason), line
    assert line.endswith(" (the request is not logged)")


async def test_what_the_view_judges_keeps_its_400(door: Door) -> None:
    for body in (b"{not json", b'{"query": 5}', b'{"query": "{ __typename }", "variables": []}'):
        reply = await door.post(body)
        assert (reply.status, reply.media) == (400, "text/plain")


# -- application/graphql-response+json --------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE};q=0.5", "application/json"),
        (f"{GRAPHQL_RESPONSE};q=0", "application/json"),
        ("*/*", "application/json"),
        (None, "application/json"),
    ],
)
async def test_the_answer_has_the_media_type_the_client_prefers(
    door: Door, accept: str | None, media: str
) -> None:
    reply = await door.post({"query": "{ __typename }"}, accept=accept)
    assert (reply.status, reply.media, reply.body) == (200, media, {"data": {"__typename": "Query"}})
    by_get = await door.get(accept=accept, query="{ __typename }")
    assert (by_get.status, by_get.media) == (200, media)


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ({"query": "{"}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": "query($id: ID!) { user(id: $id) { id } }", "variables": {"id": None}}, "BAD_USER_INPUT"),
        ({"query": "mutation($i: CreateGroupInput!) { createGroup(input: $i) { id } }"}, "BAD_USER_INPUT"),
        # The document's own variables are wrong (graphql-core's validation): not the values sent.
        ({"query": "query($x: Float) { __typename }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": "{ user(id: $id) { id } }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": "query($id: Int) { user(id: $id) { id } }"}, "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_an_operation_that_never_ran_is_a_400_without_data(
    door: Door, operation: dict[str, Any], code: str
) -> None:
    reply = await door.post(operation, accept=GRAPHQL_RESPONSE)
    assert (reply.status, reply.media) == (400, GRAPHQL_RESPONSE)
    assert "data" not in reply.body
    assert [e["extensions"]["code"] for e in reply.body["errors"]] == [code]
    # application/json keeps the 200 and the null data it always had.
    legacy = await door.post(operation, accept="application/json")
    assert (legacy.status, legacy.media, legacy.body["data"]) == (200, "application/json", None)
    if "variables" not in operation and not operation["query"].startswith("mutation"):
        by_get = await door.get(accept=GRAPHQL_RESPONSE, query=operation["query"])
        assert (by_get.status, by_get.media, "data" in by_get.body) == (400, GRAPHQL_RESPONSE, False)


async def test_an_operation_that_ran_keeps_its_data_and_200(door: Door) -> None:
    created = await door.post({"query": CREATE_GROUP}, accept=GRAPHQL_RESPONSE)
    assert (created.status, created.media) == (200, GRAPHQL_RESPONSE)
    assert created.body["data"]["createGroup"]["id"]
    join = 'mutation { joinGroup(groupId: "nope", userId: "nope") { id } }'
    failed = await door.post({"query": join}, accept=GRAPHQL_RESPONSE)
    # It ran and failed in a field: data is there (null), and the status stays 2xx.
    assert (failed.status, failed.body["data"]) == (200, None)
    assert failed.body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_batch_answers_each_operation_in_the_media_type(door: Door) -> None:
    reply = await door.post([{"query": "{ __typename }"}, {"query": "{ nope }"}], accept=GRAPHQL_RESPONSE)
    assert (reply.status, reply.media) == (200, GRAPHQL_RESPONSE)
    assert reply.body[0] == {"data": {"__typename": "Query"}}
    assert "data" not in reply.body[1]


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"query": "query A { __typename }", "operationName": "B"}, 'Unknown operation named "B".'),
        ({"query": ""}, "No GraphQL query found in the request"),
    ],
)
async def test_an_operation_a_batch_cannot_run_is_its_own_error_and_the_others_answer(
    door: Door, other: dict[str, Any], message: str
) -> None:
    # The batch's mutation runs (the operations are independent); a 400 for the whole batch would
    # hide its answer, and a client retrying it would create the group again.
    reply = await door.post([{"query": CREATE_GROUP}, other], accept=GRAPHQL_RESPONSE)
    assert (reply.status, reply.media) == (200, GRAPHQL_RESPONSE), reply.body
    assert reply.body[0]["data"]["createGroup"]["id"]
    assert reply.body[1] == {"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}
    assert await groups(door) == 1


# -- UNAVAILABLE ------------------------------------------------------------------------------


@pytest.mark.parametrize("door_name", DOORS)
@pytest.mark.parametrize("backend", ["postgres", "mysql"])
async def test_a_database_outage_is_503_with_retry_after_and_writes_nothing(
    door_name: str, backend: str, make_settings: Callable[..., Settings]
) -> None:
    direct = make_settings(backend)
    proxy = TcpProxy(direct.db_host, direct.database_port)
    await proxy.start()
    settings = make_settings(
        backend, db_host="127.0.0.1", db_port=proxy.port, db_acquire_timeout=1, db_connect_timeout=1
    )
    async with served(door_name, settings) as url, aiohttp.ClientSession() as http:
        door = Door(url, http, settings)
        assert (await door.post({"query": "{ users(first: 1) { edges { cursor } } }"})).status == 200
        await proxy.cut()
        name = f"outage-{door_name}-{backend}"
        users = "{ users(first: 1) { edges { cursor } } }"
        for reply in (
            await door.post({"query": users}),
            await door.post({"query": '{ user(id: "VXNlcjox") { id } }'}),  # nullable: data {user: null}
            await door.post({"query": f'mutation {{ createGroup(input: {{name: "{name}"}}) {{ id }} }}'}),
            await door.post({"query": users}, accept=GRAPHQL_RESPONSE),
            await door.get(query=users),
            await door.post([{"query": users}, {"query": "{ groups { edges { cursor } } }"}]),
        ):
            assert (reply.status, reply.headers.get("Retry-After")) == (503, "5"), reply.body
            results = reply.body if isinstance(reply.body, list) else [reply.body]
            assert {e["extensions"]["code"] for r in results for e in r["errors"]} == {"UNAVAILABLE"}
    assert await groups_named(direct, name) == 0
    await proxy.cut()


async def test_a_data_source_that_cannot_open_is_503_with_retry_after(
    make_settings: Callable[..., Settings],
) -> None:
    # The ASGI door opens on first use: a database that is not there is answered, not crashed on.
    settings = make_settings("postgres", db_port=1, db_connect_timeout=1)
    async with served("asgi", settings) as url, aiohttp.ClientSession() as http:
        door = Door(url, http, settings)
        for accept, data in ((None, True), (GRAPHQL_RESPONSE, False)):
            reply = await door.post({"query": "{ __typename }"}, accept=accept)
            assert (reply.status, reply.headers.get("Retry-After")) == (503, "5")
            assert reply.body["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
            assert ("data" in reply.body) is data


# -- headers on every answer ------------------------------------------------------------------


async def test_every_answer_varies_by_origin_and_names_no_server_software(door: Door) -> None:
    origin = {"Origin": "http://localhost:5173"}
    replies = [
        await door.post({"query": "{ __typename }"}, **origin),
        await door.post({"query": "{ __typename }"}, Origin="https://elsewhere.example"),
        await door.post(b"null"),
        await door.get(query="{ __typename }"),
        await door.send("GET", headers={"Accept": "text/html"}),
        await door.send("OPTIONS", headers={**origin, "Access-Control-Request-Method": "POST"}),
    ]
    async with door.http.get(door.url + "/healthz") as health:
        assert "Origin" in health.headers.get("Vary", "")
    for reply in replies:
        assert "origin" in reply.headers.get("Vary", "").lower(), reply.headers
        assert "Server" not in reply.headers, reply.headers["Server"]


async def test_every_graphql_answer_varies_by_accept(door: Door) -> None:
    # The same GET answers 200 application/json or 400 graphql-response+json by Accept, and a GET
    # without a query GraphiQL's page or a 400: a cache keyed on the URL alone (a CDN serving the
    # GETs of persisted queries) handed one client's answer to the other.
    wanted, posted = {"Accept": GRAPHQL_RESPONSE}, {"Content-Type": "application/json"}
    as_json = await door.get(query="{ nope }")
    as_graphql = await door.get(GRAPHQL_RESPONSE, query="{ nope }")
    assert (as_json.status, as_graphql.status) == (200, 400)
    replies = [
        as_json,
        as_graphql,
        await door.post({"query": "{ __typename }"}, GRAPHQL_RESPONSE),
        await door.post(b"[%s]" % json.dumps({"query": "{ __typename }"}).encode(), GRAPHQL_RESPONSE),
        await door.post(b"null", GRAPHQL_RESPONSE),
        await door.post(b"{not json"),
        await door.send("POST", data=io.BytesIO(b" " * (MAX_BODY_BYTES + 1)), headers={**wanted, **posted}),
        await door.get(query="mutation { __typename }"),
        await door.send("GET", headers={"Accept": "text/html"}),
        await door.send("GET", headers=wanted),
    ]
    for reply in replies:
        vary = [name.strip().lower() for name in reply.headers.get("Vary", "").split(",")]
        assert "accept" in vary and "origin" in vary, (reply.status, reply.headers)
        assert len(reply.headers.getall("Vary")) == 1


async def test_a_path_with_a_trailing_slash_is_not_found_on_every_door(door: Door) -> None:
    # Starlette redirected it (307) to http://<the client's Host>/graphql: a POST followed there
    # left HTTPS, and `gateway serve` answers the same path 404.
    for method, path in (("POST", "/graphql/"), ("GET", "/healthz/"), ("GET", "/graphiql/x/y/")):
        headers = {"Host": "attacker.example", "Content-Type": "application/json"}
        body = b'{"query": "{ __typename }"}'
        url = door.url + path
        request = door.http.request(method, url, data=body, headers=headers, allow_redirects=False)
        async with request as response:
            assert response.status == 404, (path, response.status, response.headers.get("Location"))
            assert "Location" not in response.headers


async def test_a_stream_and_a_socket_handshake_carry_the_same_headers(
    make_settings: Callable[..., Settings],
) -> None:
    # The aiohttp door sends these from inside the view, before its handler returns.
    origin = "http://localhost:5173"
    async with served("aiohttp", make_settings("sqlite")) as url, aiohttp.ClientSession() as http:
        stream = http.post(
            url + "/graphql",
            json={"query": "subscription { activity { __typename } }"},
            headers={"Accept": "text/event-stream", "Origin": origin},
        )
        async with stream as response:
            assert response.content_type == "text/event-stream"
            stream_headers = response.headers
        ws_url = url.replace("http", "ws", 1) + "/graphql"
        async with http.ws_connect(
            ws_url, protocols=("graphql-transport-ws",), headers={"Origin": origin}
        ) as ws:
            handshake_headers = ws._response.headers
    for headers in (stream_headers, handshake_headers):
        assert headers["Access-Control-Allow-Origin"] == origin, headers
        assert "Origin" in headers["Vary"]
        assert len(headers["X-Request-Id"]) == 32
        assert "Server" not in headers, headers["Server"]
