"""GraphQL operations the tests use to build a club, as a frontend would send them."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.graphql_client import data

CREATE_USER = """
mutation($input: CreateUserInput!) { createUser(input: $input) { id email displayName createdAt } }
"""
CREATE_GROUP = """
mutation($input: CreateGroupInput!) { createGroup(input: $input) { id name description createdAt } }
"""
JOIN = "mutation($g: ID!, $u: ID!) { joinGroup(groupId: $g, userId: $u) { id name } }"
CREATE_SESSION = """
mutation($input: CreateShootingSessionInput!) {
  createShootingSession(input: $input) {
    id startedAt location discipline distanceMeters notes shotCount totalScore averageScore
    user { id } group { id } shots { id sequence score x y }
  }
}
"""


async def make_user(client: TestClient, email: str, name: str = "Member") -> dict[str, Any]:
    result = await data(client, CREATE_USER, input={"email": email, "displayName": name})
    user: dict[str, Any] = result["createUser"]
    return user


async def make_group(client: TestClient, name: str = "Juniors") -> dict[str, Any]:
    result = await data(client, CREATE_GROUP, input={"name": name, "description": None})
    group: dict[str, Any] = result["createGroup"]
    return group


async def make_session(
    client: TestClient, user_id: str, scores: list[float], **fields: Any
) -> dict[str, Any]:
    session_input = {
        "userId": user_id,
        "discipline": "10m Air Rifle",
        "shots": [{"score": s} for s in scores],
        **fields,
    }
    result = await data(client, CREATE_SESSION, input=session_input)
    session: dict[str, Any] = result["createShootingSession"]
    return session
