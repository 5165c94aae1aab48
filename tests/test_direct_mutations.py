"""Mutations that select only their result's scalars run without graphql-core's executor.

They must answer exactly as the interpreted path answers (the same gateway with FAST_PATH=false,
on the same database): values, key order, errors and their locations, and nothing written when
they fail.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from graphql import OperationDefinitionNode, parse

from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.execution.direct import direct_plan
from gateway.schema import build_schema
from gateway.schema.ids import encode_id
from tests.club import make_session, make_user
from tests.conftest import TABLES, count_rows

SESSION = """mutation($input: CreateShootingSessionInput!) { createShootingSession(input: $input) {
  __typename id startedAt location discipline distanceMeters notes shotCount total: totalScore } }"""


def _operation(document: str) -> OperationDefinitionNode:
    definition = parse(document).definitions[0]
    assert isinstance(definition, OperationDefinitionNode)
    return definition


@pytest.mark.parametrize(
    ("document", "direct"),
    [
        ('mutation { createGroup(input: {name: "A"}) { id name description } }', True),
        ('mutation { g: createGroup(input: {name: "A"}) { __typename key: id } }', True),
        ('mutation { deleteShootingSession(id: "x") }', True),
        ('mutation { createGroup(input: {name: "A"}) { id members { totalCount } } }', False),  # an object
        ('mutation { addShots(sessionId: "x", shots: []) { averageScore } }', False),  # its own resolver
        ('mutation { createGroup(input: {name: "A"}) { ...G } } fragment G on Group { id }', False),
        ('mutation { createGroup(input: {name: "A"}) { id @include(if: true) } }', False),
        (
            'mutation { a: createGroup(input: {name: "A"}) { id } b: deleteShootingSession(id: "x") }',
            False,
        ),
        ("query { viewer { id } }", False),
    ],
)
def test_only_a_single_field_selecting_plain_scalars_runs_directly(document: str, direct: bool) -> None:
    schema = build_schema(False)._schema
    assert (direct_plan(schema, _operation(document)) is not None) is direct


@pytest.fixture
async def interpreted(client: TestClient, aiohttp_client: Any) -> TestClient:
    """The same gateway with FAST_PATH=false, on the same database."""
    settings = client.app[EXECUTOR].settings
    made: TestClient = await aiohttp_client(create_app(settings.model_copy(update={"fast_path": False})))
    return made


async def both(client: TestClient, interpreted: TestClient, query: str, **variables: Any) -> list[Any]:
    """The answers of the direct path, then the interpreted one, to the same request."""
    answers = []
    for each in (client, interpreted):
        response = await each.post("/graphql", json={"query": query, "variables": variables})
        assert response.status == 200
        answers.append(json.loads(await response.text()))
    return answers


def _without_ids(value: Any) -> Any:
    return {k: v for k, v in value.items() if k != "id"} if isinstance(value, dict) else value


async def test_writes_answer_as_the_interpreted_path_answers(
    client: TestClient, interpreted: TestClient
) -> None:
    user = await make_user(client, "ada@example.com")
    fields = {"userId": user["id"], "discipline": "10m Air Rifle", "startedAt": "2026-05-01T09:30:00+02:00"}
    full = {**fields, "location": "Range", "distanceMeters": 10, "shots": [{"score": 10.9}, {"score": 0.0}]}
    for session_input in (fields, full):
        direct, slow = await both(client, interpreted, SESSION, input=session_input)
        assert "errors" not in direct, direct
        # Two sessions were written: the same answer but for their IDs.
        made, made_slowly = direct["data"]["createShootingSession"], slow["data"]["createShootingSession"]
        assert list(made) == list(made_slowly)  # key order too
        assert _without_ids(made) == _without_ids(made_slowly)
        assert made["id"] != made_slowly["id"]
    assert made == {
        "__typename": "ShootingSession",
        "id": made["id"],
        "startedAt": "2026-05-01T07:30:00+00:00",
        "location": "Range",
        "discipline": "10m Air Rifle",
        "distanceMeters": 10,
        "notes": None,
        "shotCount": 2,
        "total": 10.9,
    }
    session = made["id"]
    update = """mutation($id: ID!, $notes: String) {
      u: updateShootingSession(id: $id, input: {notes: $notes}) { notes shotCount id } }"""
    direct, slow = await both(client, interpreted, update, id=session, notes="windy")
    assert direct == slow == {"data": {"u": {"notes": "windy", "shotCount": 2, "id": session}}}
    delete = "mutation($id: ID!) { deleteShootingSession(id: $id) }"
    response = await client.post("/graphql", json={"query": delete, "variables": {"id": session}})
    assert json.loads(await response.text()) == {"data": {"deleteShootingSession": session}}
    prepared = client.app[EXECUTOR].documents.cached(SESSION)
    assert prepared is not None and prepared.direct[None] is not None  # it did run directly


async def test_refused_writes_answer_alike_and_write_nothing(
    client: TestClient, interpreted: TestClient
) -> None:
    source = client.app[EXECUTOR].data_source
    user = await make_user(client, "ada@example.com")
    await make_session(client, user["id"], [9.5])
    refusals: list[tuple[str, str, dict[str, Any]]] = [
        (
            "BAD_USER_INPUT",
            SESSION,
            {"input": {"userId": user["id"], "discipline": "x", "shots": [{"score": 11}]}},
        ),
        ("BAD_USER_INPUT", SESSION, {"input": {"userId": "not an id", "discipline": "x"}}),
        ("BAD_USER_INPUT", SESSION, {"input": {"userId": user["id"], "discipline": "x", "groupId": "bad"}}),
        (
            "BAD_USER_INPUT",
            SESSION,
            {"input": {"userId": user["id"], "discipline": "x", "shots": [{"score": 5}] * 501}},
        ),
        (
            "CONFLICT",
            'mutation($e: String!) { createUser(input: {email: $e, displayName: "B"}) { id } }',
            {"e": "ada@example.com"},
        ),
        ("BAD_USER_INPUT", 'mutation { createGroup(input: {name: ""}) { id name } }', {}),
        ("NOT_FOUND", SESSION, {"input": {"userId": encode_id("User", 10**9), "discipline": "x"}}),
    ]
    before = {table: await count_rows(source, table) for table in TABLES}
    for code, query, variables in refusals:
        direct, slow = await both(client, interpreted, query, **variables)
        assert direct == slow, query
        assert direct["data"] is None
        assert [e["extensions"]["code"] for e in direct["errors"]] == [code], (query, direct)
    assert {table: await count_rows(source, table) for table in TABLES} == before
