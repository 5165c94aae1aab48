"""The Vercel entry (ASGI, under uvicorn) answers exactly as `gateway serve` (aiohttp) does.

One table of requests and expected answers runs, in order, against both doors, each a real server
process on a fresh database; every answer must match the table and the other door's answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import PGBOUNCER, TLS_VARIANTS, server_env
from tests.processes import DOORS, serve
from tests.tls_servers import TlsServer

# Also on PostgreSQL and MariaDB over verified TLS, the CA given as DB_CA_CERT as on Vercel.
OVER_TLS_TOO = True
ORIGIN = "http://localhost:5173"
ALICE, JUNIORS, FIRST_SESSION = "VXNlcjox", "R3JvdXA6MQ", "U2hvb3RpbmdTZXNzaW9uOjE"


@dataclass(frozen=True)
class Exchange:
    """One request and the answer both doors must give."""

    name: str
    status: int
    body: Any
    method: str = "POST"
    path: str = "/graphql"
    json: dict[str, Any] | None = None
    data: bytes | None = None
    params: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def op(name: str, query: str, body: Any, status: int = 200, **variables: Any) -> Exchange:
    return Exchange(name, status, body, json={"query": query, "variables": variables})


def failed(code: str, message: str) -> dict[str, Any]:
    return {"data": None, "errors": [{"message": message, "code": code}]}


SESSION_INPUT = {
    "userId": ALICE,
    "groupId": JUNIORS,
    "discipline": "air rifle",
    "startedAt": "2026-05-01T09:30:00+00:00",
    "shots": [{"score": 10.4}, {"score": 9.8, "x": 1.5, "y": -0.5}, {"score": 10.9}],
}
NESTED = """query($id: ID!) { user(id: $id) { displayName
  groups { name }
  shootingSessions(first: 5) { edges { node { id discipline startedAt group { name }
    shots { sequence score x y } } } pageInfo { hasNextPage } } } }"""

TABLE = (
    op(
        "create a user",
        "mutation($i: CreateUserInput!) { createUser(input: $i) { id email displayName } }",
        {"data": {"createUser": {"id": ALICE, "email": "alice@example.com", "displayName": "Alice"}}},
        i={"email": "Alice@Example.com", "displayName": "Alice"},
    ),
    op(
        "the same email again is a conflict",
        "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
        failed("CONFLICT", "a user with this email already exists"),
        i={"email": "alice@example.com", "displayName": "Other"},
    ),
    op(
        "create a group",
        'mutation { createGroup(input: {name: "Juniors"}) { id name description } }',
        {"data": {"createGroup": {"id": JUNIORS, "name": "Juniors", "description": None}}},
    ),
    op(
        "join it",
        """mutation($g: ID!, $u: ID!) { joinGroup(groupId: $g, userId: $u) {
             name members { edges { node { displayName } } } } }""",
        {
            "data": {
                "joinGroup": {"name": "Juniors", "members": {"edges": [{"node": {"displayName": "Alice"}}]}}
            }
        },
        g=JUNIORS,
        u=ALICE,
    ),
    op(
        "record a session with its shots",
        """mutation($i: CreateShootingSessionInput!) { createShootingSession(input: $i) {
             id shotCount totalScore averageScore user { displayName } } }""",
        {
            "data": {
                "createShootingSession": {
                    "id": FIRST_SESSION,
                    "shotCount": 3,
                    "totalScore": 31.1,
                    "averageScore": 10.37,
                    "user": {"displayName": "Alice"},
                }
            }
        },
        i=SESSION_INPUT,
    ),
    op(
        "a score above 10.9 is refused",
        "mutation($i: CreateShootingSessionInput!) { createShootingSession(input: $i) { id } }",
        failed(
            "BAD_USER_INPUT", "input.shots[0].score: must be 0.0 to 10.9 with one decimal place (got 11.5)"
        ),
        i={**SESSION_INPUT, "shots": [{"score": 11.5}]},
    ),
    op(
        "read it back, nested",
        NESTED,
        {
            "data": {
                "user": {
                    "displayName": "Alice",
                    "groups": [{"name": "Juniors"}],
                    "shootingSessions": {
                        "edges": [
                            {
                                "node": {
                                    "id": FIRST_SESSION,
                                    "discipline": "air rifle",
                                    "startedAt": "2026-05-01T09:30:00+00:00",
                                    "group": {"name": "Juniors"},
                                    "shots": [
                                        {"sequence": 1, "score": 10.4, "x": None, "y": None},
                                        {"sequence": 2, "score": 9.8, "x": 1.5, "y": -0.5},
                                        {"sequence": 3, "score": 10.9, "x": None, "y": None},
                                    ],
                                }
                            }
                        ],
                        "pageInfo": {"hasNextPage": False},
                    },
                }
            }
        },
        id=ALICE,
    ),
    op(
        "an unknown id is null",
        "query($id: ID!) { user(id: $id) { id } }",
        {"data": {"user": None}},
        id="VXNlcjo5",
    ),
    op("a malformed id is null too", '{ user(id: "nope") { id } }', {"data": {"user": None}}),
    op(
        "an unknown field fails validation",
        '{ user(id: "x") { password } }',
        failed("GRAPHQL_VALIDATION_FAILED", "Cannot query field 'password' on type 'User'."),
    ),
    op(
        "a syntax error fails parsing",
        "{ user(",
        failed("GRAPHQL_PARSE_FAILED", "Syntax Error: Expected Name, found <EOF>."),
    ),
    Exchange(
        "a query over GET",
        200,
        {"data": {"user": {"displayName": "Alice"}}},
        method="GET",
        params={"query": f'{{ user(id: "{ALICE}") {{ displayName }} }}'},
    ),
    Exchange(
        "a mutation over GET is refused",
        405,
        failed("BAD_REQUEST", "mutations are not allowed when using GET"),
        method="GET",
        params={"query": 'mutation { createGroup(input: {name: "X"}) { id } }'},
    ),
    Exchange(
        "a body that is not JSON",
        400,
        "Unable to parse request body as JSON",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    ),
    Exchange(
        "a frontend's POST gets CORS headers",
        200,
        {"data": {"__typename": "Query"}},
        json={"query": "{ __typename }"},
        headers={"Origin": ORIGIN},
    ),
    Exchange(
        "a preflight from the frontend is allowed",
        200,
        None,
        method="OPTIONS",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    ),
    Exchange("liveness", 200, {"status": "ok"}, method="GET", path="/healthz"),
    Exchange("GraphiQL for a browser", 200, "<html>", method="GET", headers={"Accept": "text/html"}),
    Exchange("the root sends browsers to GraphiQL", 302, None, method="GET", path="/"),
)


async def observe(http: aiohttp.ClientSession, base: str, exchange: Exchange) -> dict[str, Any]:
    """What a client sees of one answer: status, the headers that matter, the body."""
    async with http.request(
        exchange.method,
        base + exchange.path,
        json=exchange.json,
        data=exchange.data,
        params=exchange.params,
        headers=exchange.headers,
        allow_redirects=False,
    ) as response:
        text = await response.text()
        seen: dict[str, Any] = {
            "status": response.status,
            "allow-origin": response.headers.get("Access-Control-Allow-Origin"),
            "allow-credentials": response.headers.get("Access-Control-Allow-Credentials"),
            "location": response.headers.get("Location"),
        }
        if exchange.method == "OPTIONS" or response.status == 302:
            # Only the headers of a preflight or a redirect reach the application.
            seen["allows POST"] = "POST" in response.headers.get("Access-Control-Allow-Methods", "")
            seen["body"] = None
            return seen
        seen["type"] = response.content_type
        if response.content_type == "application/json":
            seen["body"] = await response.json()
        elif "<html" in text:
            seen["body"] = "<html>" if "graphiql" in text.lower() else text
        else:
            seen["body"] = text or None
        return seen


def flatten_errors(body: Any) -> Any:
    """Errors reduced to message and code, the part a frontend branches on."""
    if isinstance(body, dict) and "errors" in body:
        errors = [{"message": e["message"], "code": e["extensions"]["code"]} for e in body["errors"]]
        return {**body, "errors": errors}
    return body


async def run_table(base: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        return [await observe(http, base, exchange) for exchange in TABLE]


@pytest.fixture
def door_env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fresh_database: Callable[[str], str],
    tls_server: Callable[[str], TlsServer],
) -> Callable[[str, str], dict[str, str]]:
    """Environment for one door on `backend`, with a database of its own."""

    def make(backend: str, door: str) -> dict[str, str]:
        if backend in TLS_VARIANTS:
            server = tls_server(backend.removesuffix("+tls"))
            database = f"asgi_{door}_{uuid.uuid4().hex[:8]}"
            server.create_database(database)
            tls = server.env(
                DB_NAME=database, DB_CA_CERT_PATH="", DB_CA_CERT=server.ca_base64, CORS_ORIGINS=ORIGIN
            )
            return {**server_env(server.backend, database), **tls}
        if backend == "sqlite":
            return server_env(backend, None, DB_SQLITE_PATH=str(tmp_path / f"{door}.db"), CORS_ORIGINS=ORIGIN)
        if backend == PGBOUNCER:
            through = request.getfixturevalue("pgbouncer_env")
            return server_env("postgres", fresh_database(backend), CORS_ORIGINS=ORIGIN, **through)
        return server_env(backend, fresh_database(backend), CORS_ORIGINS=ORIGIN)

    return make


async def test_both_doors_answer_the_table_alike(
    backend: str, door_env: Callable[[str, str], dict[str, str]]
) -> None:
    answers = {}
    for door in DOORS:
        async with serve(door, door_env(backend, door)) as served:
            answers[door] = await run_table(served.url)
    differ = [e.name for e, a, b in zip(TABLE, answers["aiohttp"], answers["asgi"], strict=True) if a != b]
    assert differ == [], [answers[door][TABLE.index(e)] for e in TABLE if e.name in differ for door in DOORS]
    unexpected = [
        (e.name, seen["status"], seen["body"])
        for e, seen in zip(TABLE, answers["asgi"], strict=True)
        if (seen["status"], flatten_errors(seen["body"])) != (e.status, e.body)
    ]
    assert unexpected == []
    origins = {
        seen["allow-origin"] for e, seen in zip(TABLE, answers["asgi"], strict=True) if "Origin" in e.headers
    }
    assert origins == {ORIGIN}
