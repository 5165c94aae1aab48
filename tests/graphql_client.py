"""Sending GraphQL operations to a running gateway the way a frontend does."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient


async def graphql(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """POST one operation; return the whole JSON body (data and errors)."""
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def data(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """POST one operation that must succeed; return its data."""
    body = await graphql(client, query, **variables)
    assert "errors" not in body, body["errors"]
    result: dict[str, Any] = body["data"]
    return result


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]
