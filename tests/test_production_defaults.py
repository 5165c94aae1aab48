"""APP_ENV=production tells a stranger less: no introspection, no "Did you mean" suggestions, no
GraphiQL, on both doors and every path (POST, GET, batches). Each has a setting that overrides it,
and CORS_ORIGINS=* with credentials is refused at start-up.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.schema import build_schema
from gateway.settings import Settings, SettingsError, load_settings
from tests import processes
from tests.served_doors import DOORS, served

SCHEMA = "{ __schema { queryType { name } } }"
TYPE = '{ __type(name: "User") { fields { name } } }'
# Each would be answered with a suggestion naming a real field, argument, enum value or input field.
MISTAKES: list[tuple[dict[str, Any], str]] = [
    ({"query": "{ users { edges { node { emial } } } }"}, "'email'"),
    ({"query": "{ users(frist: 1) { edges { cursor } } }"}, "'first'"),
    ({"query": "{ shootingSessions(orderBy: STARTED_AT_DES) { edges { cursor } } }"}, "'STARTED_AT_DESC'"),
    ({"query": "{ users { edges { node { ...F } } } } fragment F on Usr { id }"}, "'User'"),
    (
        {
            "query": "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
            "variables": {"i": {"email": "a@example.com", "displayName": "A", "displayNme": "B"}},
        },
        "'displayName'",
    ),
]


class Client:
    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url, self.http = url + "/graphql", http

    async def post(self, body: Any) -> tuple[int, Any]:
        async with self.http.post(self.url, json=body) as response:
            return response.status, await response.json()

    async def get(self, query: str) -> tuple[int, Any]:
        async with self.http.get(self.url, params={"query": query}) as response:
            return response.status, await response.json()

    async def browser(self) -> tuple[int, str]:
        async with self.http.get(self.url, headers={"Accept": "text/html"}) as response:
            return response.status, await response.text()

    async def answers(self, query: str) -> list[Any]:
        """`query`'s answer bodies by POST, by GET and inside a batch."""
        _, posted = await self.post({"query": query})
        _, got = await self.get(query)
        _, batch = await self.post([{"query": "{ __typename }"}, {"query": query}])
        return [posted, got, batch[1]]


@pytest.fixture
def serve(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    """`serve(door, **settings)`: a client of `door` on SQLite with those settings."""

    def start(door: str, **overrides: Any) -> Any:
        settings = make_settings("sqlite", **overrides)

        async def run() -> AsyncIterator[Client]:
            async with served(door, settings) as url, aiohttp.ClientSession() as http:
                yield Client(url, http)

        return _Context(run())

    return start


class _Context:
    def __init__(self, generator: AsyncIterator[Client]) -> None:
        self._generator = generator

    async def __aenter__(self) -> Client:
        return await self._generator.__anext__()

    async def __aexit__(self, *exc: object) -> None:
        await self._generator.aclose()


PRODUCTION = {"app_env": "production", "auth_disabled": True}


@pytest.mark.parametrize("door", DOORS)
async def test_production_refuses_introspection_on_every_path(door: str, serve: Callable[..., Any]) -> None:
    async with serve(door, **PRODUCTION) as client:
        for query in (SCHEMA, TYPE):
            for body in await client.answers(query):
                assert body["data"] is None
                assert {e["extensions"]["code"] for e in body["errors"]} == {"GRAPHQL_VALIDATION_FAILED"}
                assert "introspection has been disabled" in body["errors"][0]["message"]
        assert await client.post({"query": "{ __typename }"}) == (200, {"data": {"__typename": "Query"}})


@pytest.mark.parametrize("door", DOORS)
async def test_production_errors_suggest_no_names(door: str, serve: Callable[..., Any]) -> None:
    async with serve(door, **PRODUCTION) as client:
        for body, suggested in MISTAKES:
            _, answer = await client.post(body)
            messages = " ".join(error["message"] for error in answer["errors"])
            # What follows "Found:" is the client's own value, quoted back.
            assert "Did you mean" not in messages and suggested not in messages.split("Found:")[0], messages
            assert messages  # the error itself is still there, naming what was wrong


@pytest.mark.parametrize("door", DOORS)
async def test_production_serves_no_graphiql(door: str, serve: Callable[..., Any]) -> None:
    async with serve(door, **PRODUCTION) as client:
        status, page = await client.browser()
        assert status == 404 and "graphiql" not in page.lower()


async def test_serve_announces_graphiql_only_where_it_serves_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "APP_", "GRAPHIQL"))}
    env |= {"DB_SQLITE_PATH": str(tmp_path / "club.db"), "APP_ENV": "production", "AUTH_DISABLED": "true"}
    async with processes.serve("aiohttp", env) as production:
        pass
    async with processes.serve("aiohttp", env | {"GRAPHIQL": "true"}) as with_graphiql:
        pass
    assert f"GraphQL API at {production.url}/graphql" in production.stderr
    assert f"GraphQL API and GraphiQL at {with_graphiql.url}/graphql" in with_graphiql.stderr


@pytest.mark.parametrize("door", DOORS)
async def test_each_production_default_has_an_override(door: str, serve: Callable[..., Any]) -> None:
    async with serve(door, **PRODUCTION, introspection=True, graphiql=True, suggestions=True) as client:
        for body in await client.answers(SCHEMA):
            assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
        status, page = await client.browser()
        assert status == 200 and "graphiql" in page.lower()
        for body, suggested in MISTAKES:
            _, answer = await client.post(body)
            assert suggested in " ".join(error["message"] for error in answer["errors"])


@pytest.mark.parametrize("door", DOORS)
async def test_development_can_turn_each_off_too(door: str, serve: Callable[..., Any]) -> None:
    async with serve(door, introspection=False, graphiql=False, suggestions=False) as client:
        (posted, *_) = await client.answers(SCHEMA)
        assert posted["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert (await client.browser())[0] == 404
        _, answer = await client.post(MISTAKES[0][0])
        assert "Did you mean" not in answer["errors"][0]["message"]


async def test_a_schema_built_without_introspection_refuses_it_when_strawberry_validates() -> None:
    # Strawberry validates itself when no executor prepared the document: the rule is there too.
    schema = build_schema(introspection=False)
    result = await schema.execute(SCHEMA)
    assert result.errors and "introspection" in result.errors[0].message
    assert (await build_schema().execute(SCHEMA)).errors is None


def test_cors_any_origin_with_credentials_is_refused_at_start_up() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, cors_origins="*")
    assert str(refused.value) == (
        "CORS_ORIGINS=* cannot be used with CORS_ALLOW_CREDENTIALS=true (any website could call the API "
        "with its visitors' credentials): list your origins, or set CORS_ALLOW_CREDENTIALS=false"
    )
    with pytest.raises(SettingsError):
        load_settings(_env_file=None, cors_origins="https://app.example, *")
    assert load_settings(_env_file=None, cors_origins="*", cors_allow_credentials=False).cors_origins == ["*"]


@pytest.mark.parametrize("door", DOORS)
async def test_any_origin_without_credentials_is_served_without_them(
    door: str, serve: Callable[..., Any]
) -> None:
    async with serve(door, cors_origins=["*"], cors_allow_credentials=False) as client:
        headers = {"Origin": "https://anywhere.example"}
        body = {"query": "{ __typename }"}
        async with client.http.post(client.url, json=body, headers=headers) as response:
            assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://anywhere.example")
            assert "Access-Control-Allow-Credentials" not in response.headers
            assert json.loads(await response.text()) == {"data": {"__typename": "Query"}}
