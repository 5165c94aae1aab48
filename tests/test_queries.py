"""Reads: lookups, Relay-style pagination, filters and ordering, on every backend."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.club import JOIN, make_group, make_session, make_user
from tests.graphql_client import data, error_codes, graphql

# The core scenarios also run over verified TLS to PostgreSQL and MariaDB.
OVER_TLS_TOO = True

SESSIONS = """
query($first: Int, $after: String, $filter: ShootingSessionFilter, $order: ShootingSessionOrder) {
  shootingSessions(first: $first, after: $after, filter: $filter, orderBy: $order) {
    edges { cursor node { id startedAt } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def ids(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


async def test_unknown_or_malformed_ids_read_as_null(client: TestClient) -> None:
    user = await make_user(client, "ada@example.com")
    result = await data(
        client,
        """query($ghost: ID!, $user: ID!) {
          a: user(id: $ghost) { id }
          b: user(id: "%%%not-base64") { id }
          c: group(id: $user) { id }
          d: shootingSession(id: "") { id }
          e: user(id: $user) { id }
        }""",
        ghost="VXNlcjo5OTk5OTk",
        user=user["id"],
    )
    assert result == {"a": None, "b": None, "c": None, "d": None, "e": {"id": user["id"]}}


async def test_sessions_are_newest_first_and_page_without_gaps(client: TestClient) -> None:
    user = await make_user(client, "ada@example.com")
    created = [
        await make_session(client, user["id"], [9.0], startedAt=f"2026-03-{day:02d}T10:00:00Z")
        for day in range(1, 8)
    ]
    newest_first = [s["id"] for s in reversed(created)]
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = (await data(client, SESSIONS, first=3, after=after))["shootingSessions"]
        seen += ids(page)
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == newest_first
    assert pages == 3
    oldest_first = await data(client, SESSIONS, first=100, order="STARTED_AT_ASC")
    assert ids(oldest_first["shootingSessions"]) == [s["id"] for s in created]


async def test_cursors_stay_stable_when_rows_are_inserted_between_pages(client: TestClient) -> None:
    user = await make_user(client, "ada@example.com")
    for day in range(1, 5):
        await make_session(client, user["id"], [9.0], startedAt=f"2026-03-0{day}T10:00:00Z")
    first_page = (await data(client, SESSIONS, first=2))["shootingSessions"]
    # Newer and older sessions arrive while the client reads page one.
    await make_session(client, user["id"], [9.0], startedAt="2026-04-01T10:00:00Z")
    older = await make_session(client, user["id"], [9.0], startedAt="2026-01-01T10:00:00Z")
    second = await data(client, SESSIONS, first=10, after=first_page["pageInfo"]["endCursor"])
    dates = [e["node"]["startedAt"][:10] for e in second["shootingSessions"]["edges"]]
    assert dates == ["2026-03-02", "2026-03-01", "2026-01-01"]
    assert ids(second["shootingSessions"])[-1] == older["id"]


async def test_first_defaults_to_20_and_zero_returns_only_page_info(client: TestClient) -> None:
    user = await make_user(client, "ada@example.com")
    for _ in range(21):
        await make_session(client, user["id"], [])
    default = (await data(client, SESSIONS))["shootingSessions"]
    assert len(default["edges"]) == 20
    assert default["pageInfo"]["hasNextPage"] is True
    none = (await data(client, SESSIONS, first=0))["shootingSessions"]
    assert none == {"edges": [], "pageInfo": {"hasNextPage": True, "endCursor": None}}


async def test_a_cursor_from_another_list_is_refused(client: TestClient) -> None:
    user = await make_user(client, "ada@example.com")
    await make_user(client, "bob@example.com")
    users = await data(client, "{ users(first: 1) { pageInfo { endCursor } } }")
    body = await graphql(client, SESSIONS, after=users["users"]["pageInfo"]["endCursor"])
    assert error_codes(body) == ["BAD_USER_INPUT"]
    await make_session(client, user["id"], [])
    desc = (await data(client, SESSIONS, first=1))["shootingSessions"]["pageInfo"]["endCursor"]
    body = await graphql(client, SESSIONS, after=desc, order="STARTED_AT_ASC")
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_session_filters_combine(client: TestClient) -> None:
    ada = await make_user(client, "ada@example.com")
    bob = await make_user(client, "bob@example.com")
    group = await make_group(client)
    match = await make_session(
        client, ada["id"], [], groupId=group["id"], discipline="50m Prone", startedAt="2026-02-10T08:00:00Z"
    )
    await make_session(
        client, ada["id"], [], groupId=group["id"], discipline="50m Prone", startedAt="2026-03-10T08:00:00Z"
    )
    await make_session(client, ada["id"], [], discipline="50m Prone", startedAt="2026-02-11T08:00:00Z")
    await make_session(
        client, bob["id"], [], groupId=group["id"], discipline="50m Prone", startedAt="2026-02-12T08:00:00Z"
    )
    await make_session(client, ada["id"], [], groupId=group["id"], startedAt="2026-02-13T08:00:00Z")
    result = await data(
        client,
        SESSIONS,
        filter={
            "userId": ada["id"],
            "groupId": group["id"],
            "discipline": "50m Prone",
            "startedAfter": "2026-02-01T00:00:00Z",
            "startedBefore": "2026-03-01T00:00:00+00:00",
        },
    )
    assert ids(result["shootingSessions"]) == [match["id"]]
    bad = await graphql(client, SESSIONS, filter={"userId": group["id"]})
    assert error_codes(bad) == ["BAD_USER_INPUT"]


async def test_nested_lists_page_per_parent(client: TestClient) -> None:
    group = await make_group(client)
    members = [await make_user(client, f"m{i}@example.com") for i in range(3)]
    for member in members:
        await data(client, JOIN, g=group["id"], u=member["id"])
        for day in (1, 2, 3):
            await make_session(
                client, member["id"], [10.0], groupId=group["id"], startedAt=f"2026-05-0{day}T10:00:00Z"
            )
    result = (
        await data(
            client,
            """query($id: ID!) { group(id: $id) {
            members(first: 2) { edges { node { id groups { id }
              shootingSessions(first: 2) { edges { node { startedAt } } pageInfo { hasNextPage } } } }
              pageInfo { hasNextPage endCursor } }
            shootingSessions(first: 4) { edges { node { user { id } } } }
        } }""",
            id=group["id"],
        )
    )["group"]
    assert [e["node"]["id"] for e in result["members"]["edges"]] == [m["id"] for m in members[:2]]
    assert result["members"]["pageInfo"]["hasNextPage"] is True
    for edge in result["members"]["edges"]:
        node = edge["node"]
        assert node["groups"] == [{"id": group["id"]}]
        dates = [e["node"]["startedAt"][:10] for e in node["shootingSessions"]["edges"]]
        assert dates == ["2026-05-03", "2026-05-02"]
        assert node["shootingSessions"]["pageInfo"]["hasNextPage"] is True
    assert len(result["shootingSessions"]["edges"]) == 4
    rest = await data(
        client,
        "query($id: ID!, $after: String)"
        " { group(id: $id) { members(after: $after) { edges { node { id } } } } }",
        id=group["id"],
        after=result["members"]["pageInfo"]["endCursor"],
    )
    assert [e["node"]["id"] for e in rest["group"]["members"]["edges"]] == [members[2]["id"]]


async def test_activity_feed_filters_by_user_and_group(client: TestClient) -> None:
    ada = await make_user(client, "ada@example.com")
    bob = await make_user(client, "bob@example.com")
    group = await make_group(client)
    await data(client, JOIN, g=group["id"], u=ada["id"])
    await make_session(client, bob["id"], [9.0])
    feed = """query($u: ID, $g: ID) { activities(userId: $u, groupId: $g) {
        edges { node { kind user { id } } } } }"""
    by_bob = (await data(client, feed, u=bob["id"]))["activities"]["edges"]
    assert [(e["node"]["kind"], e["node"]["user"]["id"]) for e in by_bob] == [("SESSION_CREATED", bob["id"])]
    in_group = (await data(client, feed, g=group["id"]))["activities"]["edges"]
    assert [e["node"]["kind"] for e in in_group] == ["GROUP_JOINED"]
    everything = (await data(client, feed))["activities"]["edges"]
    assert [e["node"]["kind"] for e in everything] == ["SESSION_CREATED", "GROUP_JOINED"]
