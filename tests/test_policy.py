"""A policy registered once holds on every path: compiled and interpreted, POST, GET and batches, both doors.

The rules here stand in for authorization: one refuses operations that select a forbidden root
field, one masks `User.email` except on one member's row, one marks `User.displayName` with a
mark the compiler cannot express. Each door runs as a real server on loopback over one database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import pytest
import uvicorn
from aiohttp.test_utils import TestServer
from graphql import OperationDefinitionNode, parse

from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.doors.asgi_app import create_asgi_app
from gateway.errors import ErrorCode
from gateway.execution.executor import Executor
from gateway.execution.policy import Mark, Mask, OperationView, Policy, Refused
from gateway.schema.context import RequestContext
from gateway.schema.ids import encode_id
from gateway.settings import Settings
from tests.conftest import count_rows, empty_tables
from tests.processes import free_port

CREATE_SESSION = "mutation($i: CreateShootingSessionInput!) { createShootingSession(input: $i) { id } }"
FORBIDDEN_ROOTS = frozenset({"activities", "deleteShootingSession"})


@dataclass(frozen=True, slots=True)
class Shout(Mark):
    """A mark the compiler knows nothing of: the value in capitals."""

    type_name: str
    field_name: str

    def apply(self, parent: Any, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


@dataclass
class Rules:
    """The rules under test; `visible_to` is the member whose e-mail stays visible."""

    visible_to: str | None = None
    shout: bool = False
    hidden: tuple[tuple[str, str], ...] = ()  # (type, field) pairs masked for everyone
    seen: list[str | None] = field(default_factory=list)

    def refuse_forbidden_roots(self, operation: OperationView) -> Iterable[Mark]:
        self.seen.append(operation.operation.name.value if operation.operation.name else None)
        for selection in operation.operation.selection_set.selections:
            name = getattr(selection, "name", None)
            if name is not None and name.value in FORBIDDEN_ROOTS:
                raise Refused(ErrorCode.FORBIDDEN, f"{name.value} is not allowed here")
        return ()

    def mask_emails(self, operation: OperationView) -> Iterable[Mark]:
        return [Mask("User", "email", visible_to=self.visible_to)]

    def shout_names(self, operation: OperationView) -> Iterable[Mark]:
        return [Shout("User", "displayName")] if self.shout else []

    def hide(self, operation: OperationView) -> Iterable[Mark]:
        return [Mask(type_name, field_name) for type_name, field_name in self.hidden]

    def policy(self) -> Policy:
        return Policy([self.refuse_forbidden_roots, self.mask_emails, self.shout_names, self.hide])


@dataclass
class Door:
    name: str
    url: str
    executor: Executor

    @property
    def compiled(self) -> int:
        return self.executor.fast.answered if self.executor.fast else 0


@dataclass
class Club:
    doors: list[Door]
    rules: Rules
    ada: str
    grace: str
    session: str
    http: aiohttp.ClientSession

    async def post(self, door: Door, payload: Any) -> Any:
        async with self.http.post(door.url, json=payload) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def get(self, door: Door, query: str, **variables: Any) -> Any:
        params = {"query": query, "variables": json.dumps(variables)}
        async with self.http.get(door.url, params=params, headers={"Accept": "application/json"}) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def serve_asgi(app: Any) -> tuple[str, uvicorn.Server, asyncio.Task[None]]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    return f"http://127.0.0.1:{port}/graphql", server, task


@pytest.fixture
async def club(backend: str, make_settings: Callable[..., Settings]) -> AsyncIterator[Club]:
    rules = Rules()
    settings = make_settings(backend)
    aiohttp_app = create_app(settings, rules.policy())
    asgi_app = create_asgi_app(settings, rules.policy())
    server = TestServer(aiohttp_app, host="127.0.0.1")
    await server.start_server()
    asgi_url, asgi_server, asgi_task = await serve_asgi(asgi_app)
    try:
        executor = aiohttp_app[EXECUTOR]
        assert executor.data_source is not None
        await empty_tables(executor.data_source)
        doors = [
            Door("aiohttp", str(server.make_url("/graphql")), executor),
            Door("asgi", asgi_url, asgi_app.state.executor),
        ]
        async with aiohttp.ClientSession() as http:
            made = Club(doors, rules, "", "", "", http)
            # Ada's profile belongs to a signed-in person: the one whose e-mail the mask shows.
            ada = await executor.data_source.create_user("ada@example.com", "Ada", "ada-subject")
            grace = await executor.data_source.create_user("grace@example.com", "Grace")
            made.ada, made.grace = encode_id("User", ada.id), encode_id("User", grace.id)
            session = await made.post(
                doors[0],
                {
                    "query": CREATE_SESSION,
                    "variables": {
                        "i": {"userId": made.ada, "discipline": "10m Air Rifle", "shots": [{"score": 9.5}]}
                    },
                },
            )
            made.session = session["data"]["createShootingSession"]["id"]
            rules.visible_to = "ada-subject"
            yield made
    finally:
        asgi_server.should_exit = True
        await asgi_task
        await server.close()


USERS = "query Users { users { edges { node { displayName email } } } }"
UNCOMPILED_USERS = (
    "query Users { users { edges { node { displayName email } } } schema: __schema { queryType { name } } }"
)
SESSIONS = "{ shootingSessions { edges { node { user { email } } } } }"


def emails(body: Any) -> dict[str, str | None]:
    return {e["node"]["displayName"]: e["node"]["email"] for e in body["data"]["users"]["edges"]}


async def test_a_mask_holds_on_the_compiled_path_of_both_doors_over_post_and_get(club: Club) -> None:
    for door in club.doors:
        before = door.compiled
        posted = await club.post(door, {"query": USERS})
        got = await club.get(door, USERS)
        assert door.compiled == before + 2, door.name  # the SQL honoured the mask itself
        for body in (posted, got):
            assert emails(body) == {"Ada": "ada@example.com", "Grace": None}, door.name
        nested = await club.post(door, {"query": SESSIONS})
        assert nested["data"]["shootingSessions"]["edges"] == [
            {"node": {"user": {"email": "ada@example.com"}}}
        ]


async def test_a_mask_holds_on_the_interpreted_path_of_both_doors(club: Club) -> None:
    for door in club.doors:
        before = door.compiled
        posted = await club.post(door, {"query": UNCOMPILED_USERS})
        got = await club.get(door, UNCOMPILED_USERS)
        assert door.compiled == before, door.name  # introspection is never compiled
        for body in (posted, got):
            assert emails(body) == {"Ada": "ada@example.com", "Grace": None}, door.name


async def test_a_mask_holds_on_a_mutations_selection_and_in_a_batch(club: Club) -> None:
    create = "mutation($i: CreateUserInput!) { createUser(input: $i) { displayName email } }"
    for n, door in enumerate(club.doors):
        created = await club.post(
            door,
            {"query": create, "variables": {"i": {"email": f"new{n}@example.com", "displayName": f"New{n}"}}},
        )
        assert created["data"]["createUser"] == {"displayName": f"New{n}", "email": None}
        batch = await club.post(door, [{"query": USERS}, {"query": UNCOMPILED_USERS}, {"query": SESSIONS}])
        for body in batch[:2]:
            found = emails(body)
            assert found["Ada"] == "ada@example.com", door.name
            assert [email for name, email in found.items() if name != "Ada"] == [None] * (len(found) - 1)
        assert batch[2]["data"]["shootingSessions"]["edges"][0]["node"]["user"]["email"] == "ada@example.com"


async def test_a_mark_the_compiler_cannot_express_sends_the_query_to_strawberry(club: Club) -> None:
    club.rules.shout = True
    for door in club.doors:
        before = door.compiled
        body = await club.post(door, {"query": USERS})
        assert door.compiled == before, door.name  # never compiled without the mark
        assert emails(body) == {"ADA": "ada@example.com", "GRACE": None}


async def test_a_mask_on_a_root_connection_or_page_field_holds_on_every_path(club: Club) -> None:
    """Fields the compiler writes itself (root fields, connections, edges, PageInfo) carry no mark in
    its SQL: a query selecting a marked one runs interpreted, where the mask holds."""
    club.rules.hidden = (("Query", "node"), ("Query", "shootingSession"), ("PageInfo", "endCursor"))
    queries = {
        "query($id: ID!) { node(id: $id) { id } }": {"node": None},
        "query($id: ID!) { shootingSession(id: $id) { id } }": {"shootingSession": None},
        "{ users { pageInfo { endCursor } } }": {"users": {"pageInfo": {"endCursor": None}}},
    }
    for door in club.doors:
        before = door.compiled
        for query, expected in queries.items():
            variables = {"id": club.ada if "node" in query else club.session}
            body = await club.post(door, {"query": query, "variables": variables})
            assert body == {"data": expected}, (door.name, query)
        assert door.compiled == before, door.name
        # Unmarked, the same fields are compiled again.
        unmarked = await club.post(door, {"query": "{ users { pageInfo { hasNextPage } } }"})
        assert unmarked == {"data": {"users": {"pageInfo": {"hasNextPage": False}}}}
        assert door.compiled == before + 1, door.name


async def test_a_refusal_holds_on_every_path_and_writes_nothing(club: Club) -> None:
    delete = "mutation($id: ID!) { deleteShootingSession(id: $id) }"
    feed = "{ activities { edges { node { kind } } } }"
    source = club.doors[0].executor.data_source
    assert source is not None
    activities_before = await count_rows(source, "activities")
    for door in club.doors:
        answers = [
            await club.post(door, {"query": delete, "variables": {"id": club.session}}),
            await club.post(door, {"query": feed}),
            await club.get(door, feed),
            *await club.post(door, [{"query": delete, "variables": {"id": club.session}}, {"query": feed}]),
        ]
        for body in answers:
            assert body["data"] is None, door.name
            assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], door.name
            assert "is not allowed here" in body["errors"][0]["message"]
    assert await count_rows(source, "shooting_sessions") == 1
    assert await count_rows(source, "activities") == activities_before


async def test_operations_that_cannot_run_never_reach_the_rules(club: Club) -> None:
    club.rules.seen.clear()
    door = club.doors[0]
    invalid = await club.post(door, {"query": "query Bad { nope }"})
    assert invalid["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    await club.post(door, {"query": "query Good { __typename }"})
    assert club.rules.seen == ["Good"]


def test_each_person_keeps_their_own_marks_past_the_decisions_the_policy_remembers() -> None:
    rules = Rules()
    policy = Policy([rules.mask_emails])
    document = parse(USERS)
    operation = cast(OperationDefinitionNode, document.definitions[0])
    view = OperationView(document, operation, {}, {}, cast(RequestContext, None))
    members = [f"member-{n}" for n in range(1_500)]  # more than it keeps decided
    for subject in [*members, *members[:10], None]:
        rules.visible_to = subject
        decision = policy.decide(view)
        assert decision.marks == {("User", "email"): Mask("User", "email", visible_to=subject)}
        assert list(decision.values.values()) == [subject]
