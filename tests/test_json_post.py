"""A JSON POST is answered without Strawberry's HTTP view, exactly as that view would answer it.

The gateway and an application serving only Strawberry's view share one data source; every
request goes to both, and status, media type and body must match: results, GraphQL errors,
the view's own 400s for what it alone judges, and requests that ask for a stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from strawberry.aiohttp.views import GraphQLView
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.execution.executor import Executor
from gateway.execution.outcome import encode
from gateway.schema import RequestContext
from gateway.settings import Settings
from tests.club import make_session, make_user
from tests.conftest import empty_tables

SESSION_FIELDS = "id shotCount totalScore user { displayName } shots { sequence score }"
CREATE_SESSION = f"""mutation($input: CreateShootingSessionInput!) {{
  createShootingSession(input: $input) {{ {SESSION_FIELDS} }}
}}"""


@dataclass
class Doors:
    gateway: TestClient
    view: TestClient
    user_id: str

    async def answers(self, body: bytes, **headers: str) -> list[tuple[int, str, Any]]:
        """Each side's status, media type and body (parsed when it is JSON)."""
        answers = []
        for client in (self.gateway, self.view):
            response = await client.post(
                "/graphql", data=body, headers={"Content-Type": "application/json", **headers}
            )
            text = await response.text()
            parsed = json.loads(text) if response.content_type == "application/json" else text
            answers.append((response.status, response.content_type, parsed))
        return answers

    async def same(self, body: bytes | dict[str, Any], **headers: str) -> tuple[int, str, Any]:
        encoded = body if isinstance(body, bytes) else json.dumps(body).encode()
        gateway, view = await self.answers(encoded, **headers)
        assert gateway == view, encoded
        return gateway


class StrawberryView(GraphQLView[RequestContext, None]):
    """Strawberry's own view over the gateway's schema and data source: the reference answers."""

    def __init__(self, executor: Executor, **kwargs: Any) -> None:
        super().__init__(graphql_ide=None, **kwargs)
        self.executor = executor

    async def get_context(self, request: web.Request, response: Any) -> RequestContext:
        return self.executor.context(request, await self.executor.open())

    def encode_json(self, data: object) -> bytes:
        return encode(data)


@pytest.fixture
async def doors(
    backend: str, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> AsyncIterator[Doors]:
    settings = make_settings(backend)
    app = create_app(settings)
    gateway = await aiohttp_client(app)
    await empty_tables(app[EXECUTOR].data_source)
    bare = web.Application()
    # With graphql-sse on, as the gateway has it for subscriptions over Server-Sent Events.
    protocols = (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL)
    view = StrawberryView(app[EXECUTOR], schema=app[EXECUTOR].schema, subscription_protocols=protocols)
    bare.router.add_route("*", "/graphql", view)
    view = await aiohttp_client(bare)
    user = await make_user(gateway, "ada@example.com", "Ada")
    await make_session(gateway, user["id"], [9.5, 10.1])
    yield Doors(gateway, view, user["id"])


def session_input(user_id: str, **fields: Any) -> dict[str, Any]:
    return {"userId": user_id, "discipline": "10m Air Rifle", "shots": [{"score": 9.9}], **fields}


async def test_queries_and_their_errors_are_answered_as_the_view_answers(doors: Doors) -> None:
    sessions = "{ shootingSessions(first: 5) { edges { node { " + SESSION_FIELDS + " } } } }"
    status, _, body = await doors.same({"query": sessions})
    assert status == 200 and len(body["data"]["shootingSessions"]["edges"]) == 1
    await doors.same(
        {"query": "query($id: ID!) { user(id: $id) { email } }", "variables": {"id": doors.user_id}}
    )
    # GraphQL errors, with status 200: validation, variables, lookups, a fragment, extensions.
    await doors.same({"query": "{ users { nope } }"})
    await doors.same({"query": "{ user(id: 12) { id }"})
    await doors.same({"query": "query($id: ID!) { user(id: $id) { id } }"})
    await doors.same({"query": "query($id: ID!) { user(id: $id) { id } }", "variables": {"id": "bm9wZQ"}})
    await doors.same(
        {"query": "query A { __typename } query B { users { edges { cursor } } }", "operationName": "B"}
    )
    await doors.same(
        {"query": "{ __typename }", "variables": None, "operationName": None, "extensions": {"x": 1}}
    )
    await doors.same({"query": "subscription { users { id } }"})
    # Where Strawberry's view runs the first of several operations unnamed, past any policy, the
    # gateway asks for a name (GraphQL's GetOperation): tests/test_operation_choice.py.
    gateway, view = await doors.answers(b'{"query": "query A { __typename } query B { __typename }"}')
    assert view[2] == {"data": {"__typename": "Query"}}
    assert gateway[:2] == (200, "application/json") and gateway[2]["errors"][0]["extensions"] == {
        "code": "BAD_REQUEST"
    }


async def test_mutations_and_their_errors_are_answered_as_the_view_answers(doors: Doors) -> None:
    # Each side writes its own session: the answers differ only in the new id.
    answers = await doors.answers(
        json.dumps({"query": CREATE_SESSION, "variables": {"input": session_input(doors.user_id)}}).encode()
    )
    ids = [body["data"]["createShootingSession"].pop("id") for _, _, body in answers]
    assert answers[0] == answers[1] and ids[0] != ids[1]
    assert answers[0][2]["data"]["createShootingSession"]["shots"] == [{"sequence": 1, "score": 9.9}]
    # Errors change nothing, so both sides must answer them identically.
    await doors.same({"query": CREATE_SESSION, "variables": {"input": session_input("bm9wZQ")}})
    await doors.same(
        {"query": CREATE_SESSION, "variables": {"input": session_input(doors.user_id, shots=[{"score": 11}])}}
    )
    await doors.same({"query": CREATE_SESSION, "variables": {"input": {"userId": doors.user_id}}})
    duplicate = 'mutation { createUser(input: {email: "ADA@example.com", displayName: "A"}) { id } }'
    status, _, body = await doors.same({"query": duplicate})
    assert status == 200 and body["errors"][0]["extensions"]["code"]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"query": null}',
        b"{}",
        b'{"query": 5}',
        b'{"query": "{ __typename }", "variables": []}',
        b'{"query": "{ __typename }", "extensions": "x"}',
    ],
)
async def test_what_only_the_view_judges_gets_the_views_400(doors: Doors, body: bytes) -> None:
    status, _, _ = await doors.same(body)
    assert status == 400


async def test_an_operation_name_the_document_lacks_is_a_coded_error_not_the_views_bare_400(
    doors: Doors,
) -> None:
    # As every request that cannot run: coded, logged and counted (the view's 400 text was none).
    body = b'{"query": "query A { __typename }", "operationName": "C"}'
    gateway, view = await doors.answers(body)
    assert view[:2] == (400, "text/plain")
    assert gateway == (
        200,
        "application/json",
        {
            "data": None,
            "errors": [{"message": 'Unknown operation named "C".', "extensions": {"code": "BAD_REQUEST"}}],
        },
    )
    refused = await doors.answers(body, Accept="application/graphql-response+json")
    status, media, text = refused[0]
    assert (status, media) == (400, "application/graphql-response+json")
    assert json.loads(text)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_json_the_standard_library_reads_and_orjson_refuses_is_still_answered(doors: Doors) -> None:
    status, _, body = await doors.same(b'{"query": "{ __typename }", "variables": {"n": NaN}}')
    assert (status, body) == (200, {"data": {"__typename": "Query"}})


async def test_a_request_asking_for_a_stream_gets_the_views_answer(doors: Doors) -> None:
    query = {"query": "{ __typename }"}
    status, _, body = await doors.same(query, Accept='multipart/mixed;subscriptionSpec="1.0"')
    assert (status, body) == (200, {"data": {"__typename": "Query"}})
    status, media, body = await doors.same(query, Accept="text/event-stream")
    assert (status, media) == (200, "text/event-stream")
    assert body.startswith('event: next\r\ndata: {"data":{"__typename":"Query"}}\r\n\r\nevent: complete')


async def test_a_batch_is_answered_as_an_array_of_results(doors: Doors) -> None:
    batch = [
        {"query": "query($id: ID!) { user(id: $id) { displayName } }", "variables": {"id": doors.user_id}},
        {"query": "{ nope }"},
    ]
    status, media, body = await doors.same(json.dumps(batch).encode())
    assert (status, media) == (200, "application/json")
    assert body[0] == {"data": {"user": {"displayName": "Ada"}}}
    assert body[1]["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
