"""The HTTP surface a frontend and GraphiQL use: methods, errors, CORS, health and readiness."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.settings import Settings
from tests.club import make_user
from tests.conftest import empty_tables, sql_source
from tests.graphql_client import data, error_codes, graphql
from tests.tcp_proxy import TcpProxy


async def test_queries_work_over_get_and_mutations_do_not(client: TestClient) -> None:
    await make_user(client, "ada@example.com")
    response = await client.get("/graphql", params={"query": "{ users { edges { node { email } } } }"})
    assert response.status == 200
    body = await response.json()
    assert body["data"]["users"]["edges"] == [{"node": {"email": "ada@example.com"}}]
    mutation = 'mutation { createGroup(input: {name: "Sneaky"}) { id } }'
    refused = await client.get("/graphql", params={"query": mutation})
    assert refused.status in (400, 405)
    assert (await data(client, "{ groups { edges { cursor } } }"))["groups"]["edges"] == []


async def test_graphiql_opens_in_a_browser(client: TestClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status == 200
    assert "graphiql" in (await response.text()).lower()


async def test_malformed_json_is_a_400(client: TestClient) -> None:
    response = await client.post(
        "/graphql", data=b'{"query": "{ users', headers={"Content-Type": "application/json"}
    )
    assert response.status == 400


async def test_syntax_and_validation_errors_carry_codes(client: TestClient) -> None:
    assert error_codes(await graphql(client, "{ users {")) == ["GRAPHQL_PARSE_FAILED"]
    assert error_codes(await graphql(client, "{ nope }")) == ["GRAPHQL_VALIDATION_FAILED"]
    # A required argument left out is the document's fault, found by validation, not a value's.
    assert error_codes(await graphql(client, "{ node { id } }")) == ["GRAPHQL_VALIDATION_FAILED"]
    assert error_codes(await graphql(client, "{ users { totalCount @include } }")) == [
        "GRAPHQL_VALIDATION_FAILED"
    ]
    bad_variable = await graphql(client, "query($n: Int) { users(first: $n) { edges { cursor } } }", n="x")
    assert error_codes(bad_variable) == ["BAD_USER_INPUT"]


async def test_introspection_is_on(client: TestClient) -> None:
    result = await data(client, "{ __schema { queryType { name } } }")
    assert result["__schema"]["queryType"]["name"] == "Query"


async def test_cors_allows_the_configured_origin_and_answers_preflight(client: TestClient) -> None:
    preflight = await client.options(
        "/graphql",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "http://localhost:5173"}
    )
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    stranger = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in stranger.headers


async def test_health_and_readiness(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["status"] == "ok"


async def test_production_hides_unexpected_errors_and_logs_no_traceback(
    backend: str,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(make_settings(backend, app_env="production", auth_disabled=True))
    client: TestClient = await aiohttp_client(app)
    await empty_tables(app[EXECUTOR].data_source)
    user = await make_user(client, "ada@example.com")
    async with sql_source(app[EXECUTOR].data_source).connection() as conn:
        # A row this version cannot read: an activity kind it does not know.
        await conn.execute(
            "INSERT INTO activities (kind, created_at, user_id)"
            " SELECT 'FROM_THE_FUTURE', created_at, id FROM users"
        )
    with caplog.at_level(logging.INFO):
        body = await graphql(client, "{ activities { edges { node { kind } } } }")
    assert body["errors"][0]["message"] == "Internal server error"
    assert error_codes(body) == ["INTERNAL"]
    assert "FROM_THE_FUTURE" not in str(body)
    assert "Traceback" not in caplog.text
    assert "FROM_THE_FUTURE" not in caplog.text
    assert user["id"]


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
async def test_database_outage_is_unavailable_and_the_gateway_recovers(
    backend: str, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    direct = make_settings(backend)
    proxy = TcpProxy(direct.db_host, direct.database_port)
    await proxy.start()
    app = create_app(
        make_settings(
            backend, db_host="127.0.0.1", db_port=proxy.port, db_acquire_timeout=2, db_connect_timeout=2
        )
    )
    client: TestClient = await aiohttp_client(app)
    query = "{ users(first: 1) { edges { cursor } } }"
    await data(client, query)

    await proxy.cut()
    # A 503 with Retry-After, so load balancers and monitors watching status codes see the outage.
    response = await client.post("/graphql", json={"query": query})
    assert (response.status, response.headers["Retry-After"]) == (503, "5")
    assert error_codes(await response.json()) == ["UNAVAILABLE"]
    assert (await client.get("/readyz")).status == 503

    await proxy.start()
    for _ in range(3):  # connections broken by the outage are discarded as they are found
        body = await graphql(client, query)
        if "errors" not in body:
            break
    assert "errors" not in body
    assert (await client.get("/readyz")).status == 200
    await proxy.cut()
