"""Edge inputs an attacker or a fuzzer sends are BAD_USER_INPUT on every backend, fast, and write nothing.

Each used to be INTERNAL on at least one backend: a cursor holding 2^70 (PostgreSQL and SQLite
cannot bind it), an instant that leaves the datetime range once in UTC, a NUL byte (PostgreSQL
refuses it in text), a score so large that scaling it overflows.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.datasources.protocol import DataSource
from tests.club import CREATE_SESSION, CREATE_USER, make_session, make_user
from tests.conftest import TABLES, count_rows
from tests.graphql_client import data, graphql

SESSIONS_AFTER = "query($a: String) { shootingSessions(after: $a) { edges { cursor } } }"
USERS_AFTER = "query($a: String) { users(after: $a) { edges { cursor } } }"
FILTERED = "query($f: ShootingSessionFilter) { shootingSessions(filter: $f) { edges { cursor } } }"
ADD_SHOTS = "mutation($s: ID!, $shots: [ShotInput!]!) { addShots(sessionId: $s, shots: $shots) { id } }"
UPDATE = """mutation($id: ID!, $i: UpdateShootingSessionInput!) {
  updateShootingSession(id: $id, input: $i) { id } }"""


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor(*parts: Any) -> str:
    return b64(json.dumps(list(parts), separators=(",", ":")))


async def counts(source: DataSource) -> dict[str, int]:
    return {table: await count_rows(source, table) for table in TABLES}


async def refused(client: TestClient, query: str, **variables: Any) -> str:
    """The one error's message, after checking it is BAD_USER_INPUT and came back well under 1 s."""
    started = time.perf_counter()
    body = await graphql(client, query, **variables)
    elapsed = time.perf_counter() - started
    assert [e["extensions"]["code"] for e in body.get("errors", [])] == ["BAD_USER_INPUT"], body
    assert elapsed < 1.0, f"{elapsed:.2f}s"
    message: str = body["errors"][0]["message"]
    return message


@pytest.fixture
async def member(client: TestClient) -> dict[str, Any]:
    """A user with one session, so there are rows a bad cursor or filter could reach."""
    user = await make_user(client, "ada@example.com")
    user["session"] = await make_session(client, user["id"], [9.5])
    return user


async def test_cursors_no_row_can_hold_are_bad_user_input(client: TestClient, member: dict[str, Any]) -> None:
    for after in (
        cursor("users", 2**70),
        cursor("users", -1),
        cursor("users", 2**63),
        b64("[" * 5000 + "]" * 5000),
    ):
        assert await refused(client, USERS_AFTER, a=after) == "after: not a cursor of this list"
    for after in (
        cursor("sessions:STARTED_AT_DESC", "2026-01-01T00:00:00+00:00", 2**70),
        cursor("sessions:STARTED_AT_DESC", "0001-01-01T00:00:00+14:00", 1),
        cursor("sessions:STARTED_AT_DESC", "9999-12-31T23:59:59-14:00", 1),
        cursor("sessions:STARTED_AT_DESC", "2026-01-01T00:00:00", 1),
    ):
        assert await refused(client, SESSIONS_AFTER, a=after) == "after: not a cursor of this list"
    # The largest key a row can have is still a cursor: it pages to nothing.
    page = await data(client, USERS_AFTER, a=cursor("users", 2**63 - 1))
    assert page == {"users": {"edges": []}}


async def test_a_cursor_is_accepted_only_as_the_api_spelled_it(
    client: TestClient, member: dict[str, Any]
) -> None:
    await make_user(client, "bob@example.com")
    issued = (await data(client, USERS_AFTER, a=None))["users"]["edges"][0]["cursor"]
    assert len((await data(client, USERS_AFTER, a=issued))["users"]["edges"]) == 1
    listing, key = json.loads(base64.urlsafe_b64decode(issued + "=" * (-len(issued) % 4)))
    for after in (issued + "=" * (-len(issued) % 4 or 4), b64(json.dumps([listing, key]))):  # padded, spaced
        assert await refused(client, USERS_AFTER, a=after) == "after: not a cursor of this list"
    issued = (await data(client, SESSIONS_AFTER, a=None))["shootingSessions"]["edges"][0]["cursor"]
    assert (await data(client, SESSIONS_AFTER, a=issued))["shootingSessions"]["edges"] == []
    listing, instant, key = json.loads(base64.urlsafe_b64decode(issued + "=" * (-len(issued) % 4)))
    at = datetime.fromisoformat(instant)
    finer = f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond:06d}000+00:00"  # the same instant, in nanoseconds
    for after in (cursor(listing, finer, key), b64(json.dumps([listing, instant, key]))):
        assert await refused(client, SESSIONS_AFTER, a=after) == "after: not a cursor of this list"


async def test_instants_out_of_range_in_utc_are_bad_user_input_and_write_nothing(
    client: TestClient, member: dict[str, Any], source: DataSource
) -> None:
    before = await counts(source)
    session = {"userId": member["id"], "discipline": "air", "shots": [{"score": 9.0}]}
    for started in ("0001-01-01T00:00+14:00", "9999-12-31T23:00-14:00", "0999-12-31T23:59:59Z"):
        message = await refused(client, CREATE_SESSION, input={**session, "startedAt": started})
        assert message.startswith("input.startedAt: must be from 1000-01-01T00:00Z to 9999-12-31T00:00Z")
        message = await refused(client, UPDATE, id=member["session"]["id"], i={"startedAt": started})
        assert message.startswith("input.startedAt: must be")
        message = await refused(client, FILTERED, f={"startedAfter": started})
        assert message.startswith("filter.startedAfter: must be")
    assert await counts(source) == before
    # The bounds themselves are stored and read back alike on every backend.
    for started in ("1000-01-01T00:00:00+00:00", "9999-12-31T00:00:00+00:00"):
        made = await data(client, CREATE_SESSION, input={**session, "startedAt": started})
        assert made["createShootingSession"]["startedAt"] == started
    newest = await data(client, "{ shootingSessions(first: 1) { edges { node { startedAt } } } }")
    assert newest["shootingSessions"]["edges"][0]["node"]["startedAt"] == "9999-12-31T00:00:00+00:00"


async def test_nul_characters_are_bad_user_input_and_write_nothing(
    client: TestClient, member: dict[str, Any], source: DataSource
) -> None:
    before = await counts(source)
    for user_input, field in (
        ({"email": "eve\x00@example.com", "displayName": "Eve"}, "input.email"),
        ({"email": "eve@example.com", "displayName": "E\x00ve"}, "input.displayName"),
    ):
        message = await refused(client, CREATE_USER, input=user_input)
        assert message == f"{field}: must not contain NUL characters (\\u0000)"
    session = {"userId": member["id"], "discipline": "air\x00", "shots": []}
    assert (await refused(client, CREATE_SESSION, input=session)).startswith("input.discipline: must not")
    notes = {"userId": member["id"], "discipline": "air", "notes": "\x00"}
    assert (await refused(client, CREATE_SESSION, input=notes)).startswith("input.notes: must not")
    group = 'mutation { createGroup(input: {name: "a\\u0000b"}) { id } }'
    assert (await refused(client, group)).startswith("input.name: must not")
    changed = await refused(client, UPDATE, id=member["session"]["id"], i={"location": "x\x00"})
    assert changed.startswith("input.location: must not")
    # A read: PostgreSQL would refuse the parameter.
    assert (await refused(client, FILTERED, f={"discipline": "a\x00"})).startswith("filter.discipline:")
    assert await counts(source) == before


async def test_huge_and_non_finite_numbers_are_bad_user_input_and_write_nothing(
    client: TestClient, member: dict[str, Any], source: DataSource
) -> None:
    before = await counts(source)
    session = {"userId": member["id"], "discipline": "air"}
    for shot, field in (
        ({"score": 1e308}, "score"),
        ({"score": -1e308}, "score"),
        ({"score": 9.0, "x": 1e308}, "x"),
        ({"score": 9.0, "y": -1.7e308}, "y"),
        ({"score": 9.0, "x": 1_000_000.5}, "x"),
    ):
        message = await refused(client, CREATE_SESSION, input={**session, "shots": [shot]})
        assert message.startswith(f"input.shots[0].{field}: must be")
        message = await refused(client, ADD_SHOTS, s=member["session"]["id"], shots=[shot])
        assert message.startswith(f"shots[0].{field}: must be")
    # In a document, 1e400 is a Float literal that graphql-core reads as infinity.
    for shot, field in (("{score: 1e400}", "score"), ("{score: 9, x: -1e400}", "x")):
        literal = f"mutation($s: ID!) {{ addShots(sessionId: $s, shots: [{shot}]) {{ id }} }}"
        message = await refused(client, literal, s=member["session"]["id"])
        assert message.startswith(f"shots[0].{field}: must be")
    assert await counts(source) == before


async def test_add_shots_to_a_malformed_or_missing_session_writes_nothing(
    client: TestClient, member: dict[str, Any], source: DataSource
) -> None:
    before = await counts(source)
    for session_id in ("xyz", b64("User:1"), b64("ShootingSession:-1"), b64("ShootingSession:٣")):
        message = await refused(client, ADD_SHOTS, s=session_id, shots=[{"score": 1e308}])
        assert message.startswith("shots[0].score:")  # the shots are judged first, then the id
        message = await refused(client, ADD_SHOTS, s=session_id, shots=[{"score": 9.0}])
        assert message == f"sessionId: {session_id!r} is not a ShootingSession id"
    nowhere = b64("ShootingSession:999999999999999999")
    missing = await graphql(client, ADD_SHOTS, s=nowhere, shots=[{"score": 9}])
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert await counts(source) == before


async def test_ids_are_read_only_as_the_api_spells_them(client: TestClient, member: dict[str, Any]) -> None:
    user = "query($id: ID!) { user(id: $id) { id } }"
    assert await data(client, user, id=member["id"]) == {"user": {"id": member["id"]}}
    pk = base64.urlsafe_b64decode(member["id"] + "==").decode().partition(":")[2]
    arabic_digits = "".join(chr(0x660 + int(digit)) for digit in pk)
    for other in (b64(f"User:0{pk}"), member["id"] + "==", b64(f"User:{arabic_digits}"), "!" + member["id"]):
        assert await data(client, user, id=other) == {"user": None}, other
