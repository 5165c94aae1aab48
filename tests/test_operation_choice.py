"""A document of several operations runs only the one a request names: without a name it is
refused (GraphQL's GetOperation), on both doors and paths, by POST, GET, batch and socket.

It once ran the first operation through Strawberry, past the policy: signed-out readers got
members' e-mails, and AUTH_ANONYMOUS_READ=false and every MAX_* limit were skipped."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from gateway.auth.issuing import issue_token
from gateway.settings import Settings
from tests.conftest import count_rows, empty_tables, sql_source
from tests.graphql_client import error_codes
from tests.live_client import TRANSPORT_WS, open_socket
from tests.served_doors import DOORS, served_door

SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123456789"
CREATE_USER = "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }"
READ = "query A { users(first: 5) { edges { node { displayName email } } } } query B { __typename }"
WIDE = "query A { " + " ".join(f"a{i}: __typename" for i in range(40)) + " } query B { __typename }"
WRITE = 'mutation A { createGroup(input: {name: "Chosen"}) { id } } query B { __typename }'
NAME_ONE = "the document holds several operations: name the one to run in operationName"


@pytest.mark.parametrize("fast_path", [True, False], ids=["compiled", "interpreted"])
@pytest.mark.parametrize("door", DOORS)
async def test_an_unnamed_operation_among_several_is_refused_and_runs_nothing(
    door: str, fast_path: bool, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings("sqlite", fast_path=fast_path, auth_jwt_secret=SECRET, auth_anonymous_read=False)
    ada, bob = (issue_token(settings, subject=f"sub-{name}") for name in ("ada", "bob"))
    async with served_door(door, settings) as running, aiohttp.ClientSession() as http:
        url = running.url + "/graphql"
        source = sql_source(await running.executor.open())
        await empty_tables(source)

        async def post(body: Any, token: str | None = None) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.post(url, json=body, headers=headers) as response:
                assert response.status == 200, await response.text()
                return await response.json()

        async def get(query: str, token: str | None = None) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.get(url, params={"query": query}, headers=headers) as response:
                assert response.status == 200, await response.text()
                return await response.json()

        for token, email in ((ada, "ada@example.com"), (bob, "bob@example.com")):
            profile = {"i": {"email": email, "displayName": "M"}}
            made = await post({"query": CREATE_USER, "variables": profile}, token)
            assert "errors" not in made, made
        before = source.statements

        # Signed out (AUTH_ANONYMOUS_READ=false) and signed in as bob, who may not read ada's e-mail.
        for token in (None, bob):
            for body in (await post({"query": READ}, token), await get(READ, token)):
                assert error_codes(body) == ["BAD_REQUEST"] and body["data"] is None, body
                assert body["errors"][0]["message"] == NAME_ONE
                assert "ada@example.com" not in json.dumps(body)
            batch = await post([{"query": READ}, {"query": "{ __typename }"}], token)
            assert error_codes(batch[0]) == ["BAD_REQUEST"] and "ada@example.com" not in json.dumps(batch)
        # Past MAX_ALIASES: refused as such once named, and refused unnamed before any limit is skipped.
        assert error_codes(await post({"query": WIDE}, bob)) == ["BAD_REQUEST"]
        assert error_codes(await post({"query": WIDE, "operationName": "A"}, bob)) == ["QUERY_TOO_COMPLEX"]
        assert error_codes(await post({"query": WRITE}, bob)) == ["BAD_REQUEST"]
        assert source.statements == before  # nothing ran
        assert await count_rows(source, "club_groups") == 0

        # Named, it runs as any operation does: bob reads his own e-mail, not ada's.
        named = await post({"query": READ, "operationName": "A"}, bob)
        emails = {edge["node"]["email"] for edge in named["data"]["users"]["edges"]}
        assert emails == {"bob@example.com", None}


async def test_an_unnamed_operation_among_several_over_a_socket_is_an_error(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings("sqlite", auth_jwt_secret=SECRET, auth_anonymous_read=False)
    async with served_door("aiohttp", settings) as running:
        await empty_tables(await running.executor.open())
        async with open_socket(running.url + "/graphql", TRANSPORT_WS) as socket:
            await socket.init()
            await socket.subscribe("1", READ)
            message = await socket.receive()
        assert message["type"] == "error", message
        assert message["payload"][0]["message"] == NAME_ONE
