"""The first thing a new user does: create a user and read it back, on every backend."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.graphql_client import data


async def test_created_user_reads_back_by_its_id(client: TestClient) -> None:
    created = await data(
        client,
        "mutation($i: CreateUserInput!) { createUser(input: $i) { id email displayName } }",
        i={"email": "Ada@Example.com", "displayName": "Ada"},
    )
    user = created["createUser"]
    assert user["email"] == "ada@example.com"
    found = await data(client, "query($id: ID!) { user(id: $id) { id displayName } }", id=user["id"])
    assert found["user"] == {"id": user["id"], "displayName": "Ada"}
