"""OpenTelemetry traces sent to a real OTLP/HTTP receiver, on both doors; and nothing loaded without one."""

from __future__ import annotations

import gzip
import json
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from gateway.auth.issuing import issue_token
from gateway.settings import Settings
from tests.processes import ROOT
from tests.served_doors import DOORS, served

JWT_SECRET = "tracing-test-secret-0123456789abcdef012"
VARIABLE_SECRET = "TRACE-VARIABLE-SECRET-3b9e"
USERS = "query Users($n: Int, $after: String) { users(first: $n, after: $after) { edges { cursor } } }"
ONE = "query One { users(first: 1) { edges { cursor } } }"  # compiled where the fast path runs
CREATE = 'mutation Join($email: String!) { createUser(input: {email: $email, displayName: "A"}) { id } }'


@dataclass
class Receiver:
    """An OTLP/HTTP trace receiver: every span it was sent, and the raw bodies."""

    url: str
    spans: list[Any] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A tiny collector on loopback accepting protobuf POSTs on /v1/traces."""
    got = Receiver("")

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        got.bodies.append(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                got.spans.extend(scope_spans.spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    got.url = str(server.make_url("")).rstrip("/")
    yield got
    await server.close()


def attribute_values(span: Any) -> list[str]:
    return [str(attribute.value) for attribute in span.attributes]


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
@pytest.mark.parametrize("door", DOORS)
async def test_spans_continue_the_callers_trace_and_hold_no_value(
    door: str, backend: str, receiver: Receiver, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(backend, auth_jwt_secret=JWT_SECRET, otel_exporter_otlp_endpoint=receiver.url)
    token = issue_token(settings, subject="sub-ada", roles=["admin"])
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01", "Authorization": f"Bearer {token}"}
    async with served(door, settings) as url, aiohttp.ClientSession(headers=headers) as http:
        query = {"query": USERS, "variables": {"n": 2, "after": VARIABLE_SECRET}}
        async with http.post(f"{url}/graphql", json=query) as response:
            assert response.status == 200
        async with http.post(f"{url}/graphql", json={"query": ONE}) as response:
            assert "errors" not in await response.json()
        email = f"{VARIABLE_SECRET}.{secrets.token_hex(4)}@example.com"  # the database outlives a run
        mutation = {"query": CREATE, "variables": {"email": email}}
        async with http.post(f"{url}/graphql", json=mutation) as response:
            assert "errors" not in await response.json()
    # Closing the app flushed its spans.
    spans = receiver.spans
    names = {span.name for span in spans}
    assert {"POST /graphql", "query Users", "mutation Join", "graphql.parse", "graphql.validate"} <= names
    assert "graphql.execute" in names  # the mutation ran through Strawberry
    assert any(name.startswith("sql ") for name in names)
    if settings.fast_path:
        assert "graphql.plan" in names
    # The compiled query's one statement has its span inside the operation's.
    one = next(span for span in spans if span.name == "query One")
    (statement,) = [s for s in spans if s.parent_span_id == one.span_id and s.name == "sql SELECT"]
    system = {a.key: a.value.string_value for a in statement.attributes}["db.system.name"]
    assert system == backend  # OpenTelemetry's names for the two are the settings' own
    assert {span.trace_id.hex() for span in spans} == {trace_id}
    servers = [span for span in spans if span.name == "POST /graphql"]
    assert len(servers) == 3 and {span.parent_span_id.hex() for span in servers} == {parent_id}
    by_id = {span.span_id: span for span in spans}
    for span in spans:
        if span not in servers:
            assert span.parent_span_id in by_id, f"{span.name} is not inside the request's span"
    operation = next(span for span in spans if span.name == "query Users")
    attributes = {a.key: a.value for a in operation.attributes}
    assert attributes["graphql.operation.type"].string_value == "query"
    assert attributes["graphql.operation.name"].string_value == "Users"
    # The cursor (a secret here) is refused: the code is on the span, the value is not.
    codes = [v.string_value for v in attributes["graphql.error.codes"].array_value.values]
    assert codes == ["BAD_USER_INPUT"]
    for body in receiver.bodies:
        for secret in (VARIABLE_SECRET, token, JWT_SECRET):
            assert secret.encode() not in body


@pytest.mark.parametrize("door", DOORS)
async def test_server_spans_are_named_by_route_not_by_the_clients_path(
    door: str, receiver: Receiver, make_settings: Callable[..., Settings]
) -> None:
    # Named "{method} {path}", every path a scanner tried, and every method it made up, was a span
    # name of its own, which tracing backends group and index by.
    settings = make_settings("sqlite", otel_exporter_otlp_endpoint=receiver.url)
    async with served(door, settings) as url, aiohttp.ClientSession() as http:
        async with http.post(f"{url}/graphql", json={"query": "{ __typename }"}) as response:
            assert response.status == 200
        for n, method in enumerate(("PROPFIND", "MKCOL", "LOCK")):  # methods aiohttp's parser knows
            async with http.get(f"{url}/wp-admin/probe-{n}.php") as response:
                assert response.status == 404
            async with http.request(method, f"{url}/graphql") as response:
                assert response.status == 405
        async with http.get(f"{url}/graphiql/0123456789abcdef/explorer.js") as response:
            assert response.status == 200
    names = sorted(span.name for span in receiver.spans if span.kind == span.SPAN_KIND_SERVER)
    assert names == ["GET"] * 3 + ["GET /graphiql/{build}/{name}"] + ["HTTP /graphql"] * 3 + ["POST /graphql"]
    paths = {
        {a.key: a.value.string_value for a in span.attributes}["url.path"]
        for span in receiver.spans
        if span.kind == span.SPAN_KIND_SERVER
    }
    assert "/wp-admin/probe-2.php" in paths  # the path itself is still recorded, as an attribute


_PROBE = """
import asyncio, json, sys, tempfile
from aiohttp.test_utils import TestClient, TestServer
from gateway.doors.aiohttp_app import create_app
from gateway.settings import Settings

async def main() -> None:
    settings = Settings(_env_file=None, db_sqlite_path=tempfile.mkdtemp() + "/g.db", metrics=False)
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.post("/graphql", json={"query": "{ users { edges { cursor } } }"})
        assert response.status == 200, await response.text()
    loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "prometheus_client")))
    print(json.dumps(loaded))

asyncio.run(main())
"""


def test_without_an_endpoint_or_metrics_nothing_of_them_is_imported() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
