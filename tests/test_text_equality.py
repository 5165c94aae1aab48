"""Text compares alike on every backend: exactly, trailing spaces included.

MariaDB's utf8mb4_bin pads with spaces ('ada ' = 'ada'): a token whose `sub` was a member's with
a trailing space signed in as that member, read their profile and deleted their sessions, and a
filter on "Air " found "Air". A `sub` no backend stores alike is refused at sign-in.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from gateway.auth.issuing import issue_token
from gateway.settings import Settings
from tests.conftest import count_rows, empty_tables, sql_source
from tests.served_doors import DOORS, served_door

SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123456789"


@dataclass
class Gateway:
    url: str
    http: aiohttp.ClientSession
    settings: Settings
    source: Any

    async def post(self, token: str, query: str, **variables: Any) -> tuple[int, Any]:
        body = {"query": query, "variables": variables}
        async with self.http.post(self.url, json=body, headers=_bearer(token)) as response:
            return response.status, await response.json()

    async def get(self, token: str, query: str, **variables: Any) -> tuple[int, Any]:
        params = {"query": query, "variables": json.dumps(variables)}
        headers = {**_bearer(token), "Accept": "application/json"}
        async with self.http.get(self.url, params=params, headers=headers) as response:
            return response.status, await response.json()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=[True, False], ids=["compiled", "interpreted"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture(params=DOORS)
async def gateway(
    request: pytest.FixtureRequest, backend: str, fast_path: bool, make_settings: Callable[..., Settings]
) -> AsyncIterator[Gateway]:
    """A gateway with sign-in on `backend`, on each door and each path, its tables empty."""
    settings = make_settings(backend, auth_jwt_secret=SECRET, fast_path=fast_path)
    async with served_door(request.param, settings) as running, aiohttp.ClientSession() as http:
        source = sql_source(await running.executor.open())
        await empty_tables(source)
        yield Gateway(running.url + "/graphql", http, settings, source)


PROFILE = "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }"


async def test_a_subject_or_a_filter_with_a_trailing_space_is_not_the_same_text(gateway: Gateway) -> None:
    ada, padded = issue_token(gateway.settings, subject="ada"), issue_token(gateway.settings, subject="ada ")
    _, made = await gateway.post(ada, PROFILE, i={"email": "ada@example.com", "displayName": "Ada"})
    create = 'mutation { createShootingSession(input: {discipline: "Air"}) { id } }'
    _, created = await gateway.post(ada, create)
    session = created["data"]["createShootingSession"]["id"]

    viewer = "{ viewer { id email } }"
    for read in (gateway.post, gateway.get):
        assert (await read(padded, viewer))[1] == {"data": {"viewer": None}}
    _, deleted = await gateway.post(
        padded, "mutation($id: ID!) { deleteShootingSession(id: $id) }", id=session
    )
    assert deleted["errors"][0]["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED"), deleted
    assert await count_rows(gateway.source, "shooting_sessions") == 1
    # Another person: a profile of their own, not "you already have a profile".
    _, theirs = await gateway.post(padded, PROFILE, i={"email": "pad@example.com", "displayName": "P"})
    assert theirs["data"]["createUser"]["id"] != made["data"]["createUser"]["id"], theirs
    assert "ada@example.com" not in str(theirs)

    count = "query($d: String) { shootingSessions(filter: {discipline: $d}) { totalCount } }"
    for read in (gateway.post, gateway.get):
        for discipline, sessions in (("Air", 1), ("Air ", 0)):
            _, found = await read(ada, count, d=discipline)
            assert found["data"]["shootingSessions"]["totalCount"] == sessions, (discipline, found)


async def test_a_subject_no_backend_stores_alike_is_refused_at_sign_in(gateway: Gateway) -> None:
    profile = {"i": {"email": "x@example.com", "displayName": "X"}}
    for subject in ("s" * 256, "ada\u0000"):
        token = issue_token(gateway.settings, subject=subject)
        for status, body in (
            await gateway.post(token, PROFILE, **profile),
            await gateway.get(token, "{ viewer { id } }"),
        ):
            assert status == 401, body
            assert (
                body["errors"][0]["message"] == "the bearer token is not valid"
            )  # why: tests/test_tokens.py
            assert subject not in str(body)
    assert await count_rows(gateway.source, "users") == 0
    status, body = await gateway.post(issue_token(gateway.settings, subject="s" * 255), PROFILE, **profile)
    assert status == 200 and body["data"]["createUser"]["id"], body
