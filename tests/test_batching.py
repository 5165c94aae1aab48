"""Nested fields load in batches: statement counts do not grow with the page size.

The compiled fast path would answer these queries in one statement and never reach a DataLoader,
so the gateway here runs with FAST_PATH=false: what is counted is the interpreted path's batching.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.datasources.sql.source import SqlDataSource
from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.settings import Settings
from tests.club import make_group, make_user
from tests.conftest import count_rows, empty_tables
from tests.graphql_client import data, graphql

NEWEST = """query($first: Int!) { shootingSessions(first: $first) { edges { node {
  id startedAt location shotCount totalScore averageScore
  user { id displayName } group { id name } shots { sequence score }
} } } }"""


@pytest.fixture
async def client(
    backend: str, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> AsyncIterator[TestClient]:
    """A running gateway on `backend` with the fast path off, its database emptied."""
    app = create_app(make_settings(backend, fast_path=False))
    test_client: TestClient = await aiohttp_client(app)
    await empty_tables(app[EXECUTOR].data_source)
    yield test_client


async def statements_for(client: TestClient, source: SqlDataSource, first: int) -> tuple[int, list[Any]]:
    """The newest `first` sessions with their user, group and shots, and the statements they cost."""
    before = source.statements
    result = await data(client, NEWEST, first=first)
    edges: list[Any] = result["shootingSessions"]["edges"]
    return source.statements - before, edges


async def test_fifty_newest_sessions_with_user_group_and_shots_cost_four_statements(
    client: TestClient, source: SqlDataSource
) -> None:
    users = [await make_user(client, f"u{i}@example.com") for i in range(5)]
    groups = [await make_group(client, f"G{i}") for i in range(3)]
    created = await asyncio.gather(
        *(
            data(
                client,
                "mutation($i: CreateShootingSessionInput!) { createShootingSession(input: $i) { id } }",
                i={
                    "userId": users[n % 5]["id"],
                    "groupId": groups[n % 3]["id"],
                    "discipline": "10m Air Rifle",
                    "startedAt": f"2026-01-01T{n // 60:02d}:{n % 60:02d}:00Z",
                    "shots": [{"score": 10.0}] * 3,
                },
            )
            for n in range(60)
        )
    )
    owners = {
        reply["createShootingSession"]["id"]: (users[n % 5]["id"], groups[n % 3]["id"])
        for n, reply in enumerate(created)
    }

    ten, _ = await statements_for(client, source, 10)
    fifty, edges = await statements_for(client, source, 50)
    # The page, then one batch each for users, groups and shots; a loader that fetched per id
    # would cost 1 + 5 + 3 + 50 statements here.
    assert (ten, fifty) == (4, 4)
    assert len(edges) == 50
    for edge in edges:
        node = edge["node"]
        assert (node["user"]["id"], node["group"]["id"]) == owners[node["id"]]
        assert [(s["sequence"], s["score"]) for s in node["shots"]] == [(1, 10.0), (2, 10.0), (3, 10.0)]


async def test_fifty_concurrent_sessions_with_ten_shots_each_are_all_there_once(
    client: TestClient, source: SqlDataSource
) -> None:
    user = await make_user(client, "ada@example.com")
    replies = await asyncio.gather(
        *(
            graphql(
                client,
                "mutation($i: CreateShootingSessionInput!) { createShootingSession(input: $i)"
                " { id shots { sequence } } }",
                i={
                    "userId": user["id"],
                    "discipline": "10m Air Rifle",
                    "notes": f"session {n}",
                    "shots": [{"score": (n % 10) + k / 10} for k in range(10)],
                },
            )
            for n in range(50)
        )
    )
    assert all("errors" not in reply for reply in replies), [r for r in replies if "errors" in r][:1]
    created = {reply["data"]["createShootingSession"]["id"] for reply in replies}
    assert len(created) == 50
    for reply in replies:
        assert [s["sequence"] for s in reply["data"]["createShootingSession"]["shots"]] == list(range(1, 11))
    assert await count_rows(source, "shooting_sessions") == 50
    assert await count_rows(source, "shots") == 500
    assert await count_rows(source, "activities") == 50
    async with source.connection() as conn:
        per_session = await conn.fetch(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT sequence) AS d FROM shots GROUP BY session_id"
        )
    assert sorted((int(r["n"]), int(r["d"])) for r in per_session) == [(10, 10)] * 50
