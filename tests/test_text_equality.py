"""Text compares alike on every backend: exactly, trailing spaces included.

MariaDB's utf8mb4_bin pads with spaces ('ada ' = 'ada'): a token whose `sub` was a member's with
a trailing space signed in as that member, read their profile and deleted their sessions, and a
filter on "Air " found "Air". A `sub` no backend stores alike is refused at sign-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.auth.issuing import issue_token
from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.settings import Settings
from tests.conftest import count_rows, empty_tables

SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123456789"


async def post(client: TestClient, token: str, query: str, **variables: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    return response.status, await response.json()


@pytest.fixture
async def signed_in(
    backend: str, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> tuple[TestClient, Settings, Any]:
    """A gateway with sign-in on `backend`, its tables empty: its client, settings and data source."""
    settings = make_settings(backend, auth_jwt_secret=SECRET)
    client = await aiohttp_client(create_app(settings))
    source = client.app[EXECUTOR].data_source
    await empty_tables(source)
    return client, settings, source


PROFILE = "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }"


async def test_a_subject_or_a_filter_with_a_trailing_space_is_not_the_same_text(
    signed_in: tuple[TestClient, Settings, Any],
) -> None:
    client, settings, source = signed_in
    ada, padded = issue_token(settings, subject="ada"), issue_token(settings, subject="ada ")
    _, made = await post(client, ada, PROFILE, i={"email": "ada@example.com", "displayName": "Ada"})
    create = 'mutation { createShootingSession(input: {discipline: "Air"}) { id } }'
    _, created = await post(client, ada, create)
    session = created["data"]["createShootingSession"]["id"]

    _, seen = await post(client, padded, "{ viewer { id email } }")
    assert seen == {"data": {"viewer": None}}
    _, deleted = await post(
        client, padded, "mutation($id: ID!) { deleteShootingSession(id: $id) }", id=session
    )
    assert deleted["errors"][0]["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED"), deleted
    assert await count_rows(source, "shooting_sessions") == 1
    # Another person: a profile of their own, not "you already have a profile".
    _, theirs = await post(client, padded, PROFILE, i={"email": "pad@example.com", "displayName": "P"})
    assert theirs["data"]["createUser"]["id"] != made["data"]["createUser"]["id"], theirs

    count = "query($d: String) { shootingSessions(filter: {discipline: $d}) { totalCount } }"
    for discipline, sessions in (("Air", 1), ("Air ", 0)):
        _, found = await post(client, ada, count, d=discipline)
        assert found["data"]["shootingSessions"]["totalCount"] == sessions, (discipline, found)


async def test_a_subject_no_backend_stores_alike_is_refused_at_sign_in(
    signed_in: tuple[TestClient, Settings, Any],
) -> None:
    client, settings, source = signed_in
    for subject in ("s" * 256, "ada\u0000"):
        status, body = await post(
            client,
            issue_token(settings, subject=subject),
            PROFILE,
            i={"email": "x@example.com", "displayName": "X"},
        )
        assert status == 401, body
        assert body["errors"][0]["message"] == "the bearer token is not valid"  # why: tests/test_tokens.py
        assert subject not in str(body)
    assert await count_rows(source, "users") == 0
    status, body = await post(
        client,
        issue_token(settings, subject="s" * 255),
        PROFILE,
        i={"email": "x@example.com", "displayName": "X"},
    )
    assert status == 200 and body["data"]["createUser"]["id"], body
