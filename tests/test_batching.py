"""Nested fields load in batches: statement counts do not grow with the page size."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

from gateway.datasources.protocol import DataSource
from tests.club import make_group, make_user
from tests.conftest import count_rows
from tests.graphql_client import data, graphql

NEWEST_50 = """{ shootingSessions(first: 50) { edges { node {
  id startedAt location shotCount totalScore averageScore
  user { id displayName } group { id name } shots { sequence score }
} } } }"""


async def test_fifty_newest_sessions_with_user_group_and_shots_cost_four_statements(
    client: TestClient, source: DataSource
) -> None:
    users = [await make_user(client, f"u{i}@example.com") for i in range(5)]
    groups = [await make_group(client, f"G{i}") for i in range(3)]
    await asyncio.gather(
        *(
            graphql(
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
    before = source.statements
    result = await data(client, NEWEST_50)
    assert source.statements - before <= 4
    edges = result["shootingSessions"]["edges"]
    assert len(edges) == 50
    assert all(len(e["node"]["shots"]) == 3 and e["node"]["user"] and e["node"]["group"] for e in edges)


async def test_fifty_concurrent_sessions_with_ten_shots_each_are_all_there_once(
    client: TestClient, source: DataSource
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
    async with source.connection() as conn:  # type: ignore[attr-defined]
        per_session = await conn.fetch(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT sequence) AS d FROM shots GROUP BY session_id"
        )
    assert sorted((int(r["n"]), int(r["d"])) for r in per_session) == [(10, 10)] * 50
