"""Writes: what they return, what they record, and that bad input writes nothing."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient

from gateway.datasources.protocol import DataSource
from gateway.schema.inputs import MAX_GROUPS_PER_USER, MAX_SHOTS_PER_CALL, MAX_SHOTS_PER_SESSION
from tests.club import CREATE_SESSION, CREATE_USER, JOIN, make_group, make_session, make_user
from tests.conftest import count_rows
from tests.graphql_client import data, error_codes, graphql

# The core scenarios also run over verified TLS to PostgreSQL and MariaDB.
OVER_TLS_TOO = True

ACTIVITIES = "{ activities { edges { node { kind user { id } group { id } shootingSession { id } } } } }"


async def test_session_shots_are_numbered_in_order_and_scored(client: TestClient) -> None:
    user = await make_user(client, "ada@example.com")
    group = await make_group(client)
    session = await make_session(
        client,
        user["id"],
        [10.4, 9.8, 0.0, 10.9],
        groupId=group["id"],
        startedAt="2026-05-01T09:30:00+02:00",
        location="Club range",
        distanceMeters=10,
        notes="windy",
    )
    assert [s["sequence"] for s in session["shots"]] == [1, 2, 3, 4]
    assert [s["score"] for s in session["shots"]] == [10.4, 9.8, 0.0, 10.9]
    assert session["shotCount"] == 4
    assert session["totalScore"] == 31.1
    assert session["averageScore"] == 7.78
    assert session["startedAt"] == "2026-05-01T07:30:00+00:00"
    assert session["user"]["id"] == user["id"]
    assert session["group"]["id"] == group["id"]
    assert (session["location"], session["distanceMeters"], session["notes"]) == ("Club range", 10, "windy")


# What a hand-made SQL literal would get wrong: quotes, backslashes, the driver's own `%`
# placeholders, comment markers, and text beyond ASCII.
AWKWARD = "O'Brien \"100%\" %s %(x)s %% \\ \\' ; -- /* é 🎯"


async def test_text_and_numbers_are_stored_exactly_as_sent(client: TestClient) -> None:
    user = await make_user(client, "ada@example.com", AWKWARD)
    session = await make_session(
        client, user["id"], [10.9, 0.0], location=AWKWARD, notes=AWKWARD, distanceMeters=100_000
    )
    added = await data(
        client,
        "mutation($id: ID!, $s: [ShotInput!]!) { addShots(sessionId: $id, shots: $s) { id } }",
        id=session["id"],
        s=[{"score": 7.5, "x": -0.5, "y": 999_999.25}, {"score": 8.0}],
    )
    assert added["addShots"]["id"] == session["id"]
    read = await data(
        client,
        "query($id: ID!) { shootingSession(id: $id) { location notes distanceMeters"
        " user { displayName } shots { sequence score x y } } }",
        id=session["id"],
    )
    assert read["shootingSession"] == {
        "location": AWKWARD,
        "notes": AWKWARD,
        "distanceMeters": 100_000,
        "user": {"displayName": AWKWARD},
        "shots": [
            {"sequence": 1, "score": 10.9, "x": None, "y": None},
            {"sequence": 2, "score": 0.0, "x": None, "y": None},
            {"sequence": 3, "score": 7.5, "x": -0.5, "y": 999_999.25},
            {"sequence": 4, "score": 8.0, "x": None, "y": None},
        ],
    }


async def test_added_shots_continue_the_sequence(client: TestClient) -> None:
    user = await make_user(client, "ada@example.com")
    session = await make_session(client, user["id"], [9.0, 9.5])
    added = await data(
        client,
        "mutation($id: ID!, $s: [ShotInput!]!) { addShots(sessionId: $id, shots: $s)"
        " { shotCount totalScore shots { sequence score x y } } }",
        id=session["id"],
        s=[{"score": 10.0, "x": 1.5, "y": -2.25}, {"score": 8.7}],
    )
    shots = added["addShots"]["shots"]
    assert [s["sequence"] for s in shots] == [1, 2, 3, 4]
    assert shots[2] == {"sequence": 3, "score": 10.0, "x": 1.5, "y": -2.25}
    assert added["addShots"]["shotCount"] == 4
    assert added["addShots"]["totalScore"] == 37.2


async def test_concurrent_added_shots_each_answer_the_session_as_their_write_left_it(
    client: TestClient, source: DataSource
) -> None:
    """20 clients add two shots to one session at once: none is lost, each write records one
    activity, and each answer's shots are the ones its shotCount and totalScore count."""
    user = await make_user(client, "ada@example.com")
    session = await make_session(client, user["id"], [1.0])
    add = (
        "mutation($id: ID!) { addShots(sessionId: $id, shots: [{score: 10.0}, {score: 5.5}])"
        " { shotCount totalScore shots { sequence score } } }"
    )
    answers = await asyncio.gather(*(data(client, add, id=session["id"]) for _ in range(20)))
    counts = sorted(answer["addShots"]["shotCount"] for answer in answers)
    assert counts == list(range(3, 42, 2))  # each write saw the ones before it, and only those
    for answer in answers:
        added = answer["addShots"]
        assert [shot["sequence"] for shot in added["shots"]] == list(range(1, added["shotCount"] + 1))
        assert sum(shot["score"] for shot in added["shots"]) == pytest.approx(added["totalScore"])
    assert await count_rows(source, "shots") == 41
    assert await count_rows(source, "activities") == 21


async def _session_holding(client: TestClient, shots: int) -> str:
    """The ID of a new session holding `shots` shots (at least 500) of 9.0, added 500 a call."""
    user = await make_user(client, "ada@example.com")
    session_id: str = (await make_session(client, user["id"], [9.0] * 500))["id"]
    for start in range(500, shots, 500):
        batch = [{"score": 9.0}] * min(500, shots - start)
        await data(client, ADD_SHOTS, id=session_id, s=batch)
    return session_id


ADD_SHOTS = "mutation($id: ID!, $s: [ShotInput!]!) { addShots(sessionId: $id, shots: $s) { shotCount } }"


async def test_concurrent_added_shots_never_take_a_session_past_its_limit(
    client: TestClient, source: DataSource
) -> None:
    """10 clients add two shots at once to a session holding 995 of its 1000: two are added, the
    other eight refused, and no shot or activity of theirs is written."""
    assert MAX_SHOTS_PER_SESSION == 1000
    session_id = await _session_holding(client, 995)
    activities = await count_rows(source, "activities")
    two = [{"score": 10.0}, {"score": 10.0}]
    answers = await asyncio.gather(*(graphql(client, ADD_SHOTS, id=session_id, s=two) for _ in range(10)))
    added = sorted(a["data"]["addShots"]["shotCount"] for a in answers if "errors" not in a)
    assert added == [997, 999]
    refused = [a for a in answers if "errors" in a]
    assert [error_codes(a) for a in refused] == [["BAD_USER_INPUT"]] * 8
    assert await count_rows(source, "shots") == 999
    assert await count_rows(source, "activities") == activities + 2
    read = await data(client, "query($id: ID!) { shootingSession(id: $id) { shotCount } }", id=session_id)
    assert read["shootingSession"]["shotCount"] == 999


async def test_shots_past_the_session_limit_are_refused_and_write_nothing(
    client: TestClient, source: DataSource
) -> None:
    session_id = await _session_holding(client, 999)
    before = await data(client, SESSION_SHOTS, id=session_id)
    activities = await count_rows(source, "activities")
    add = (
        "mutation($id: ID!, $s: [ShotInput!]!) { addShots(sessionId: $id, shots: $s)"
        " { shotCount shots { sequence } } }"
    )
    body = await graphql(client, add, id=session_id, s=[{"score": 10.0}, {"score": 10.0}])
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"] == (
        "shots: a session holds at most 1000 shots and this one holds 999:"
        " 2 more would make 1001 (start a new session)"
    )
    assert await data(client, SESSION_SHOTS, id=session_id) == before
    assert await count_rows(source, "shots") == 999
    assert await count_rows(source, "activities") == activities
    # The last one fits; past it even one is refused.
    assert (await data(client, ADD_SHOTS, id=session_id, s=[{"score": 10.0}]))["addShots"][
        "shotCount"
    ] == 1000
    body = await graphql(client, ADD_SHOTS, id=session_id, s=[{"score": 10.0}])
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "at most 1000 shots and this one holds 1000: 1 more" in body["errors"][0]["message"]
    assert await count_rows(source, "shots") == 1000


def test_create_shooting_session_cannot_pass_the_session_limit() -> None:
    """createShootingSession is checked only against the per-call limit: that must be the lower."""
    assert MAX_SHOTS_PER_CALL <= MAX_SHOTS_PER_SESSION


SESSION_SHOTS = "query($id: ID!) { shootingSession(id: $id) { shotCount totalScore } }"


async def test_each_write_records_its_activity_newest_first(client: TestClient) -> None:
    user = await make_user(client, "ada@example.com")
    group = await make_group(client)
    await data(client, JOIN, g=group["id"], u=user["id"])
    session = await make_session(client, user["id"], [10.0], groupId=group["id"])
    await data(
        client,
        "mutation($id: ID!) { addShots(sessionId: $id, shots: [{score: 9.9}]) { id } }",
        id=session["id"],
    )
    await data(
        client,
        "mutation($g: ID!, $u: ID!) { leaveGroup(groupId: $g, userId: $u) { id } }",
        g=group["id"],
        u=user["id"],
    )
    feed = [e["node"] for e in (await data(client, ACTIVITIES))["activities"]["edges"]]
    assert [a["kind"] for a in feed] == ["GROUP_LEFT", "SHOTS_ADDED", "SESSION_CREATED", "GROUP_JOINED"]
    assert feed[1]["shootingSession"] == {"id": session["id"]}
    assert all(a["user"]["id"] == user["id"] and a["group"]["id"] == group["id"] for a in feed)


async def test_joining_twice_is_one_membership_and_one_activity(
    client: TestClient, source: DataSource
) -> None:
    user = await make_user(client, "ada@example.com")
    group = await make_group(client)
    for _ in range(2):
        await data(client, JOIN, g=group["id"], u=user["id"])
    assert await count_rows(source, "memberships") == 1
    assert await count_rows(source, "activities") == 1


async def _new_groups(client: TestClient, count: int) -> list[str]:
    """The IDs of `count` new groups."""
    return [(await make_group(client, f"Group {n}"))["id"] for n in range(count)]


async def _member_of(client: TestClient, groups: int) -> tuple[str, list[str]]:
    """The ID of a new member of `groups` new groups, and those groups' IDs."""
    user = (await make_user(client, "ada@example.com"))["id"]
    joined = await _new_groups(client, groups)
    for group in joined:
        await data(client, JOIN, g=group, u=user)
    return user, joined


USER_GROUPS = "query($id: ID!) { user(id: $id) { groups { id } } }"


async def test_concurrent_joins_never_take_a_member_past_the_group_limit(
    client: TestClient, source: DataSource
) -> None:
    """A member of 95 groups joins 10 more at once: five are joined, the other five refused, and no
    membership or activity of theirs is written."""
    assert MAX_GROUPS_PER_USER == 100
    user, _ = await _member_of(client, 95)
    activities = await count_rows(source, "activities")
    more = await _new_groups(client, 10)
    answers = await asyncio.gather(*(graphql(client, JOIN, g=group, u=user) for group in more))
    joined = {a["data"]["joinGroup"]["id"] for a in answers if "errors" not in a}
    refused = [a for a in answers if "errors" in a]
    assert len(joined) == 5
    assert [error_codes(a) for a in refused] == [["BAD_USER_INPUT"]] * 5
    assert await count_rows(source, "memberships") == 100
    assert await count_rows(source, "activities") == activities + 5
    groups = {g["id"] for g in (await data(client, USER_GROUPS, id=user))["user"]["groups"]}
    assert len(groups) == 100
    assert joined <= groups
    assert not (set(more) - joined) & groups


async def test_joining_past_the_group_limit_is_refused_and_writes_nothing(
    client: TestClient, source: DataSource
) -> None:
    user, joined = await _member_of(client, 100)
    [extra] = await _new_groups(client, 1)
    activities = await count_rows(source, "activities")
    body = await graphql(client, JOIN, g=extra, u=user)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"] == (
        "groupId: a member belongs to at most 100 groups and this one belongs to 100 (leave one first)"
    )
    assert await count_rows(source, "memberships") == 100
    assert await count_rows(source, "activities") == activities
    # Joining a group they already belong to changes nothing, as below the limit.
    assert (await data(client, JOIN, g=joined[0], u=user))["joinGroup"]["id"] == joined[0]
    assert await count_rows(source, "activities") == activities
    # Leaving one makes room for one.
    leave = "mutation($g: ID!, $u: ID!) { leaveGroup(groupId: $g, userId: $u) { id } }"
    await data(client, leave, g=joined[0], u=user)
    assert (await data(client, JOIN, g=extra, u=user))["joinGroup"]["id"] == extra
    assert len((await data(client, USER_GROUPS, id=user))["user"]["groups"]) == 100
    assert await count_rows(source, "memberships") == 100


async def test_duplicate_email_is_a_conflict_and_writes_nothing(
    client: TestClient, source: DataSource
) -> None:
    await make_user(client, "ada@example.com")
    body = await graphql(client, CREATE_USER, input={"email": "ADA@example.com", "displayName": "Other"})
    assert error_codes(body) == ["CONFLICT"]
    assert (
        body["errors"][0]["message"] == "a user with this email already exists"
    )  # the address unquoted: it is logged
    assert await count_rows(source, "users") == 1


async def test_bad_input_is_refused_with_a_message_naming_it(client: TestClient, source: DataSource) -> None:
    user = await make_user(client, "ada@example.com")
    cases = [
        (CREATE_USER, {"input": {"email": "not-an-email", "displayName": "X"}}, "input.email"),
        (CREATE_USER, {"input": {"email": "b@example.com", "displayName": "   "}}, "input.displayName"),
        (
            'mutation { createGroup(input: {name: ""}) { id } }',
            {},
            "input.name",
        ),
        (
            CREATE_SESSION,
            {"input": {"userId": user["id"], "discipline": "x", "shots": [{"score": 11.0}]}},
            "input.shots[0].score",
        ),
        (
            CREATE_SESSION,
            {"input": {"userId": user["id"], "discipline": "x", "shots": [{"score": -0.1}]}},
            "input.shots[0].score",
        ),
        (
            CREATE_SESSION,
            {"input": {"userId": user["id"], "discipline": "x", "shots": [{"score": 9.75}]}},
            "input.shots[0].score",
        ),
        (
            CREATE_SESSION,
            {
                "input": {
                    "userId": user["id"],
                    "discipline": "x",
                    "shots": [{"score": 9.0}, {"score": 9.0, "y": 1e9}],
                }
            },
            "input.shots[1].y",
        ),
        (
            CREATE_SESSION,
            {
                "input": {
                    "userId": user["id"],
                    "discipline": "x",
                    "shots": [{"score": 9.0}, {"score": 9.0, "x": -1e9}],
                }
            },
            "input.shots[1].x",
        ),
        (
            CREATE_SESSION,
            {"input": {"userId": user["id"], "discipline": "x", "startedAt": "2026-05-01T09:30:00"}},
            "input.startedAt",
        ),
        (CREATE_SESSION, {"input": {"userId": "garbage", "discipline": "x"}}, "input.userId"),
        ("{ users(first: 101) { edges { cursor } } }", {}, "first"),
        ("{ users(first: -1) { edges { cursor } } }", {}, "first"),
        ('{ users(after: "bogus") { edges { cursor } } }', {}, "after"),
    ]
    for query, variables, field in cases:
        body = await graphql(client, query, **variables)
        assert error_codes(body) == ["BAD_USER_INPUT"], (field, body)
        assert body["errors"][0]["message"].startswith(field), body
    assert await count_rows(source, "users") == 1
    assert await count_rows(source, "club_groups") == 0
    assert await count_rows(source, "shooting_sessions") == 0
    assert await count_rows(source, "shots") == 0
    assert await count_rows(source, "activities") == 0


async def test_unknown_referenced_ids_are_not_found_and_write_nothing(
    client: TestClient, source: DataSource
) -> None:
    user = await make_user(client, "ada@example.com")
    group = await make_group(client)
    await data(
        client,
        "mutation($id: ID!) { deleteShootingSession(id: $id) }",
        id=(await make_session(client, user["id"], []))["id"],
    )
    before = await count_rows(source, "activities")
    ghost_user = "VXNlcjo5OTk5OTk"  # User:999999
    ghost_group = "R3JvdXA6OTk5OTk5"  # Group:999999
    cases = [
        (
            CREATE_SESSION,
            {"input": {"userId": ghost_user, "discipline": "x", "shots": [{"score": 9}]}},
            "user",
        ),
        (
            CREATE_SESSION,
            {
                "input": {
                    "userId": user["id"],
                    "groupId": ghost_group,
                    "discipline": "x",
                    "shots": [{"score": 9}],
                }
            },
            "group",
        ),
        (JOIN, {"g": group["id"], "u": ghost_user}, "user"),
        (JOIN, {"g": ghost_group, "u": user["id"]}, "group"),
        (
            'mutation { addShots(sessionId: "U2hvb3RpbmdTZXNzaW9uOjk5OTk5OQ", shots: [{score: 1}]) { id } }',
            {},
            "shooting session",
        ),
    ]
    for query, variables, kind in cases:
        body = await graphql(client, query, **variables)
        assert error_codes(body) == ["NOT_FOUND"], body
        assert body["errors"][0]["message"].startswith(kind), body
    assert await count_rows(source, "shooting_sessions") == 0
    assert await count_rows(source, "shots") == 0
    assert await count_rows(source, "memberships") == 0
    assert await count_rows(source, "activities") == before


async def test_update_changes_only_the_given_fields(client: TestClient) -> None:
    user = await make_user(client, "ada@example.com")
    group = await make_group(client)
    session = await make_session(
        client, user["id"], [9.0], location="Range A", notes="calm", groupId=group["id"]
    )
    updated = await data(
        client,
        "mutation($id: ID!, $input: UpdateShootingSessionInput!)"
        " { updateShootingSession(id: $id, input: $input)"
        " { location notes discipline group { id } shotCount } }",
        id=session["id"],
        input={"location": "Range B", "groupId": None},
    )
    assert updated["updateShootingSession"] == {
        "location": "Range B",
        "notes": "calm",
        "discipline": "10m Air Rifle",
        "group": None,
        "shotCount": 1,
    }


async def test_deleted_session_is_gone_with_its_shots_and_the_feed_keeps_its_entry(
    client: TestClient, source: DataSource
) -> None:
    user = await make_user(client, "ada@example.com")
    session = await make_session(client, user["id"], [9.0, 8.0])
    deleted = await data(client, "mutation($id: ID!) { deleteShootingSession(id: $id) }", id=session["id"])
    assert deleted["deleteShootingSession"] == session["id"]
    gone = await data(client, "query($id: ID!) { shootingSession(id: $id) { id } }", id=session["id"])
    assert gone["shootingSession"] is None
    assert await count_rows(source, "shots") == 0
    feed = [e["node"] for e in (await data(client, ACTIVITIES))["activities"]["edges"]]
    assert [a["kind"] for a in feed] == ["SESSION_DELETED", "SESSION_CREATED"]
    assert feed[1]["shootingSession"] is None
    again = await graphql(client, "mutation($id: ID!) { deleteShootingSession(id: $id) }", id=session["id"])
    assert error_codes(again) == ["NOT_FOUND"]
