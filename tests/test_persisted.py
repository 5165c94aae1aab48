"""Persisted operations as Apollo Client's link and a trusted-documents build speak them, on both doors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.doors.asgi_app import create_asgi_app
from gateway.execution.executor import Executor
from gateway.settings import Settings, SettingsError, load_settings
from tests.conftest import count_rows
from tests.test_policy import serve_asgi

USERS = "query Users { users { edges { node { displayName } } } }"
CREATE = 'mutation { createUser(input: {email: "x@example.com", displayName: "X"}) { id } }'


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest(text)}}


@dataclass
class Door:
    name: str
    url: str
    executor: Executor


@pytest.fixture
async def doors(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Starts both doors with the given settings overrides; stops them at the end."""
    stops: list[Callable[[], Any]] = []

    async def start(**overrides: Any) -> list[Door]:
        settings = make_settings("sqlite", **overrides)
        app = create_app(settings)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        asgi = create_asgi_app(settings)
        url, uvicorn_server, task = await serve_asgi(asgi)

        async def stop() -> None:
            uvicorn_server.should_exit = True
            await task
            await server.close()

        stops.append(stop)
        return [
            Door("aiohttp", str(server.make_url("/graphql")), app[EXECUTOR]),
            Door("asgi", url, asgi.state.executor),
        ]

    yield start
    for stop in stops:
        await stop()


async def post(http: aiohttp.ClientSession, door: Door, payload: dict[str, Any]) -> dict[str, Any]:
    async with http.post(door.url, json=payload) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def get(
    http: aiohttp.ClientSession, door: Door, accept: str = "application/json", **params: Any
) -> dict[str, Any]:
    query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    async with http.get(door.url, params=query, headers={"Accept": accept}) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def test_apollo_link_flow_registers_then_runs_by_hash_over_post_and_get(doors: Any) -> None:
    async with aiohttp.ClientSession() as http:
        for door in await doors():
            unknown = await post(http, door, {"extensions": apq(USERS)})
            # What Apollo's persisted-queries link retries on: this message and code.
            assert unknown["errors"][0]["message"] == "PersistedQueryNotFound"
            assert codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]
            first = await post(http, door, {"query": USERS, "extensions": apq(USERS)})
            assert first == {"data": {"users": {"edges": []}}}
            parsed = door.executor.documents.prepared
            for _ in range(3):
                assert await post(http, door, {"extensions": apq(USERS)}) == first
                assert await get(http, door, extensions=apq(USERS)) == first  # cacheable by a CDN
            assert door.executor.documents.prepared == parsed, "a persisted document is parsed once"


async def test_a_hash_only_get_with_apollos_accept_header_is_an_operation_not_graphiql(doors: Any) -> None:
    # Apollo's HttpLink sends `Accept: */*`, which on a GET without `query` also means a browser
    # asking for the GraphiQL page.
    async with aiohttp.ClientSession() as http:
        for door in await doors():
            unknown = await get(http, door, accept="*/*", extensions=apq(USERS))
            assert codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]
            first = await post(http, door, {"query": USERS, "extensions": apq(USERS)})
            assert await get(http, door, accept="*/*", extensions=apq(USERS)) == first


async def test_a_hash_that_does_not_match_its_document_registers_nothing(doors: Any) -> None:
    async with aiohttp.ClientSession() as http:
        for door in await doors():
            lying = {"query": CREATE, "extensions": apq(USERS)}
            body = await post(http, door, lying)
            assert codes(body) == ["BAD_USER_INPUT"]
            assert "provided sha does not match query" in body["errors"][0]["message"]
            assert codes(await post(http, door, {"extensions": apq(USERS)})) == ["PERSISTED_QUERY_NOT_FOUND"]
            source = door.executor.data_source
            assert source is not None and await count_rows(source, "users") == 0


async def test_trusted_documents_mode_runs_only_the_manifest(doors: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({digest(USERS): USERS, "users-by-id": USERS}))
    async with aiohttp.ClientSession() as http:
        for door in await doors(persisted_operations="only", persisted_operations_manifest=manifest):
            assert "data" in await post(http, door, {"extensions": apq(USERS)})
            assert "data" in await get(http, door, extensions=apq(USERS))
            assert "data" in await post(http, door, {"query": USERS})  # the very text of a document
            for payload in (
                {"query": CREATE},
                {"query": "{ users { edges { node { email } } } }"},
                {"extensions": apq(CREATE)},
                {"query": CREATE, "extensions": apq(CREATE)},  # no registering in this mode
            ):
                body = await post(http, door, payload)
                assert codes(body) == ["PERSISTED_QUERY_REQUIRED"], payload
                assert body.get("data") is None
            source = door.executor.data_source
            assert source is not None and await count_rows(source, "users") == 0


def test_a_manifest_that_cannot_be_used_stops_start_up_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    cases = {
        "needs PERSISTED_OPERATIONS_MANIFEST": {"persisted_operations": "only"},
        "cannot be read": {"persisted_operations_manifest": tmp_path / "missing.json"},
        "not JSON": {"persisted_operations_manifest": broken},
    }
    for message, overrides in cases.items():
        with pytest.raises(SettingsError, match=message):
            load_settings(_env_file=None, **overrides)


async def test_a_document_id_names_a_manifest_document_on_the_json_door(doors: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({"users-v1": USERS}))
    async with aiohttp.ClientSession() as http:
        for door in await doors(persisted_operations="only", persisted_operations_manifest=manifest):
            assert await post(http, door, {"documentId": "users-v1"}) == {"data": {"users": {"edges": []}}}
            assert codes(await post(http, door, {"documentId": "nope"})) == ["PERSISTED_QUERY_REQUIRED"]


async def test_a_document_id_names_a_manifest_document_over_get_in_batches_and_streams(
    doors: Any, tmp_path: Path
) -> None:
    manifest = tmp_path / "persisted-documents.json"
    create = 'mutation Create { createGroup(input: {name: "By id"}) { id } }'
    manifest.write_text(json.dumps({"users-v1": USERS, "create-v1": create}))
    empty = {"data": {"users": {"edges": []}}}
    async with aiohttp.ClientSession() as http:
        for door in await doors(persisted_operations="only", persisted_operations_manifest=manifest):
            # GET, as a CDN caches it; a mutation's id over GET is refused as its text would be.
            assert await get(http, door, documentId="users-v1") == empty
            async with http.get(door.url, params={"documentId": "create-v1"}) as response:
                assert (response.status, response.headers.get("Allow")) == (405, "POST")
            async with http.post(
                door.url, json=[{"documentId": "users-v1"}, {"documentId": "nope"}]
            ) as response:
                first, second = await response.json()
            assert first == empty and codes(second) == ["PERSISTED_QUERY_REQUIRED"]
            async with http.post(door.url, json=[{"documentId": 5}]) as response:
                assert response.status == 400
                assert "`documentId` must be a string or null" in await response.text()
            source = door.executor.data_source
            assert source is not None and await count_rows(source, "club_groups") == 0
            stream = {"Accept": "text/event-stream"}
            async with http.post(door.url, json={"documentId": "users-v1"}, headers=stream) as response:
                assert '"users"' in await response.text()


@pytest.mark.parametrize("name", ["query", "operationName", "variables", "extensions", "documentId"])
async def test_a_get_parameter_given_twice_is_refused_on_both_doors(doors: Any, name: str) -> None:
    # One door read the first value, the other the last (as may a CDN or a firewall in front):
    # the operation that ran was not the one checked.
    values = {
        "query": ["{ __typename }", 'mutation { createGroup(input: {name: "Twice"}) { id } }'],
        "operationName": ["A", "B"],
        "variables": ["{}", '{"a": 1}'],
        "extensions": ["{}", "{}"],
        "documentId": ["a", "b"],
    }[name]
    async with aiohttp.ClientSession() as http:
        for door in await doors():
            params = [("query", "query A { __typename } query B { __typename }")] if name != "query" else []
            params += [(name, value) for value in values]
            async with http.get(door.url, params=params, headers={"Accept": "application/json"}) as response:
                assert response.status == 400, await response.text()
                body = await response.json()
            assert body["errors"][0]["message"] == f"the query parameter `{name}` is given more than once"
            assert codes(body) == ["BAD_REQUEST"]
            source = await door.executor.open()
            assert await count_rows(source, "club_groups") == 0
