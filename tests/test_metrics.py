"""/metrics: what it counts on every backend and both doors, who may read it, and how it stays bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp.test_utils import TestClient

from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.execution.executor import Executor
from gateway.execution.operation import Operation
from gateway.settings import Settings
from gateway.telemetry.exchange import MAX_RECORDED
from tests.aws_servers import AWS_KEYS, moto_endpoint
from tests.conftest import PG, server_env, sql_source
from tests.live_client import LEGACY_WS, TRANSPORT_WS, open_socket, open_stream
from tests.metrics_text import label_values, value
from tests.polling import until
from tests.processes import serve
from tests.served_doors import DOORS, served

__all__ = ["moto_endpoint"]  # the fixture

USERS = {"query": "query Users { users(first: 2) { edges { node { id displayName } } } }"}
CREATE = {
    "query": 'mutation Join($email: String!) { createUser(input: {email: $email, displayName: "A"}) { id } }',
    "variables": {"email": "ada@example.com"},
}
BAD_EMAIL = {**CREATE, "variables": {"email": "not an email"}}
SECRET = "metrics-test-secret-of-at-least-32-bytes!"


async def scrape(client: TestClient, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return await response.text()


async def test_operations_paths_errors_and_pool_are_counted(
    backend: str, client: TestClient, make_settings: Callable[..., Settings]
) -> None:
    compiled = client.app[EXECUTOR].fast is not None
    for document in (USERS, USERS, CREATE, BAD_EMAIL):
        assert (await client.post("/graphql", json=document)).status == 200
    text = await scrape(client)

    count = "gateway_operation_duration_seconds_count"
    assert value(text, count, operation_name="Users", operation_type="query") == 2
    assert value(text, count, operation_name="Join", operation_type="mutation") == 2
    executed = "gateway_operations_executed_total"
    assert value(text, executed, path="fast_path") == (2 if compiled else 0)
    # A mutation selecting its result's scalars runs without graphql-core's executor.
    assert value(text, executed, path="direct") == (2 if compiled else 0)
    assert value(text, executed, path="interpreted") == (0 if compiled else 4)
    assert value(text, "gateway_graphql_errors_total", code="BAD_USER_INPUT") == 1
    assert value(text, "gateway_graphql_errors_total", code="NOT_FOUND") == 0

    settings = client.app[EXECUTOR].settings
    assert value(text, "gateway_db_pool_max") == settings.db_pool_max
    assert value(text, "gateway_db_pool_size") >= 1  # type: ignore[operator]
    assert value(text, "gateway_db_pool_in_use") == 0
    assert value(text, "gateway_db_pool_waiting") == 0


async def test_pool_in_use_and_waiting_are_read_when_scraped(
    backend: str, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    client: TestClient = await aiohttp_client(
        create_app(make_settings(backend, db_pool_max=1, db_pool_min=1, fast_path=False))
    )
    source = sql_source(client.app[EXECUTOR].data_source)
    async with source.connection():  # the pool's only connection, held
        waiting = asyncio.create_task(client.post("/graphql", json=USERS))

        async def a_request_waits() -> bool:
            return value(await scrape(client), "gateway_db_pool_waiting") == 1

        await until(a_request_waits, "the request waits for the held connection")
        text = await scrape(client)
        assert value(text, "gateway_db_pool_in_use") == 1
        assert value(text, "gateway_db_pool_size") == 1
    response = await waiting
    assert response.status == 200 and "errors" not in await response.json()
    text = await scrape(client)
    assert value(text, "gateway_db_pool_in_use") == 0
    assert value(text, "gateway_db_pool_waiting") == 0


async def test_operation_names_are_bounded(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    client: TestClient = await aiohttp_client(create_app(make_settings("sqlite", metrics_operation_names=3)))
    names = [f"Random{i}" for i in range(12)]
    for name in names:
        document = {"query": f"query {name} {{ users(first: 1) {{ edges {{ cursor }} }} }}"}
        assert (await client.post("/graphql", json=document)).status == 200
    await client.post("/graphql", json={"query": "{ users(first: 1) { edges { cursor } } }"})
    text = await scrape(client)
    count = "gateway_operation_duration_seconds_count"
    assert label_values(text, count, "operation_name") == {*names[:3], "other", "anonymous"}
    assert value(text, count, operation_name="other", operation_type="query") == 9
    assert value(text, count, operation_name="anonymous", operation_type="query") == 1


async def test_names_of_the_manifest_are_labelled_and_others_are_not(
    make_settings: Callable[..., Settings], aiohttp_client: Any, tmp_path: Path
) -> None:
    manifest = tmp_path / "persisted.json"
    known = "query KnownUsers { users(first: 1) { edges { cursor } } }"
    manifest.write_text(json.dumps({"abc123": known}))
    settings = make_settings("sqlite", persisted_operations_manifest=manifest, metrics_operation_names=0)
    client: TestClient = await aiohttp_client(create_app(settings))
    await client.post("/graphql", json={"query": known})
    await client.post("/graphql", json={"query": "query Stranger { users(first: 1) { edges { cursor } } }"})
    text = await scrape(client)
    names = label_values(text, "gateway_operation_duration_seconds_count", "operation_name")
    assert names == {"KnownUsers", "other"}


@pytest.mark.parametrize("door", DOORS)
async def test_refusals_at_the_door_count_as_errors(
    door: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings("sqlite", auth_jwt_secret=SECRET)
    async with served(door, settings) as url, aiohttp.ClientSession() as http:
        bearer = {"Authorization": "Bearer not-a-token"}
        async with http.post(f"{url}/graphql", json=USERS, headers=bearer) as response:
            assert response.status == 401
        not_an_operation = {"data": b'"a string"', "headers": {"Content-Type": "application/json"}}
        async with http.post(f"{url}/graphql", **not_an_operation) as r:  # type: ignore[arg-type]
            assert r.status == 400
        async with http.get(f"{url}/metrics") as response:
            text = await response.text()
    assert value(text, "gateway_graphql_errors_total", code="UNAUTHENTICATED") == 1
    assert value(text, "gateway_graphql_errors_total", code="BAD_REQUEST") == 1


@pytest.mark.parametrize("door", DOORS)
async def test_metrics_token_guards_the_endpoint(door: str, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        "sqlite", app_env="production", auth_jwt_secret=SECRET, metrics_token="scrape-me-please"
    )
    async with served(door, settings) as url, aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic scrape-me-please"}):
            async with http.get(f"{url}/metrics", headers=headers) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                assert "gateway_" not in await response.text()
        token = {"Authorization": "Bearer scrape-me-please"}
        async with http.get(f"{url}/metrics", headers=token) as response:
            assert response.status == 200
            assert "gateway_db_pool_max" in await response.text()


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("overrides", [{"metrics": False}, {"app_env": "production", "auth_disabled": True}])
async def test_metrics_off_is_a_404(
    door: str, overrides: dict[str, Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings("sqlite", **overrides)
    async with served(door, settings) as url, aiohttp.ClientSession() as http:
        async with http.post(f"{url}/graphql", json=USERS) as response:
            assert response.status == 200
        async with http.get(f"{url}/metrics") as response:
            assert response.status == 404


async def test_secret_reads_are_counted_once_each(
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
    moto_endpoint: str,
    pg_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, secret in AWS_KEYS.items():
        monkeypatch.setenv(key, secret)
    aws = boto3.client("secretsmanager", region_name="ca-central-1", endpoint_url=moto_endpoint)
    name = f"club/metrics/{pg_database}"
    secret_value = {"username": PG["user"], "password": "unused-by-trust-auth", "dbname": pg_database}
    aws.create_secret(Name=name, SecretString=json.dumps(secret_value))
    settings = make_settings("postgres", aws_secret_name=name, aws_endpoint_url=moto_endpoint)
    client: TestClient = await aiohttp_client(create_app(settings))
    reads = "gateway_secret_reads_total"
    assert value(await scrape(client), reads, stage="AWSCURRENT", result="ok") == 1
    assert value(await scrape(client), reads, stage="AWSCURRENT", result="ok") == 1


async def test_workers_add_up_in_one_exposition(pg_database: str, tmp_path: Path) -> None:
    env = server_env(
        "postgres", pg_database, DB_POOL_MAX="4", DB_POOL_MIN="1", LOG_LEVEL="WARNING", TMPDIR=str(tmp_path)
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    sent = 0
    # A new TCP connection per request, so the kernel spreads them over both workers (once the
    # second one listens too: the server is up when either answers).
    spread = aiohttp.TCPConnector(force_close=True)
    serving = serve("aiohttp", env, "--workers", "2")
    async with serving as server, aiohttp.ClientSession(connector=spread) as http:
        shared = list(tmp_path.glob("gateway-metrics-*"))
        assert len(shared) == 1

        async def both_workers_answered() -> bool:
            nonlocal sent
            for _ in range(10):
                async with http.post(f"{server.url}/graphql", json=USERS) as response:
                    assert response.status == 200
                sent += 1
            # Each worker writes its own files there once it has answered.
            return len({f.name.rsplit("_", 1)[1] for f in shared[0].glob("counter_*.db")}) == 2

        await until(both_workers_answered, "both workers answer requests", timeout=30)

        async def every_request_is_counted() -> bool:
            async with http.get(f"{server.url}/metrics") as response:
                text = await response.text()
            count = "gateway_operation_duration_seconds_count"
            # Each worker's pool (DB_POOL_MAX=4 split: 2 each) once both have published.
            return (
                value(text, count, operation_name="Users", operation_type="query") == sent
                and value(text, "gateway_db_pool_max") == 4
            )

        await until(every_request_is_counted, "every worker's requests and pool are in /metrics", timeout=15)
    assert server.process.returncode == 0
    assert not list(tmp_path.glob("gateway-metrics-*")), "the run's metrics folder outlived it"


async def test_refusals_over_sockets_and_event_streams_are_counted_once(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    # Refused here, a subscription's errors were answered but never counted, while the same refusal
    # of a query was.
    settings = make_settings(
        "sqlite", auth_jwt_secret=SECRET, max_query_depth=3, subscriptions_per_connection=1
    )
    client: TestClient = await aiohttp_client(create_app(settings))
    url = str(client.make_url("/graphql"))
    deep = "subscription { activityAdded { shootingSession { user { groups { name } } } } }"
    feed = "subscription { activityAdded { kind } }"
    for protocol in (TRANSPORT_WS, LEGACY_WS):
        async with open_socket(url, protocol) as socket:
            await socket.init()
            await socket.subscribe("deep", deep)
            refused = await socket.receive()
            assert refused["type"] == "error", refused
        async with open_socket(url, protocol) as socket:
            await socket.init()
            await socket.subscribe("1", feed)
            await until(lambda: client.app[EXECUTOR].receiving() == 1, "the subscription follows the feed")
            await socket.subscribe("2", feed)
            refused = await socket.receive()
            assert refused["type"] == "error" and refused["id"] == "2", refused
        await until(lambda: client.app[EXECUTOR].subscriptions == 0, "the subscription ends")
        async with open_socket(url, protocol) as socket:
            closed = await socket.init({"Authorization": "Bearer not-a-token"})
            assert closed["type"] in ("closed", "connection_error"), closed
    async with open_stream(url, deep) as stream:
        name, payload = await stream.event()
        assert name == "next" and payload["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    text = await scrape(client)
    errors = "gateway_graphql_errors_total"
    assert value(text, errors, code="QUERY_TOO_COMPLEX") == 3
    assert value(text, errors, code="TOO_MANY_SUBSCRIPTIONS") == 2
    assert value(text, errors, code="UNAUTHENTICATED") == 2


async def test_a_long_lived_connection_keeps_a_bounded_record_and_counts_every_error(
    make_settings: Callable[..., Settings],
) -> None:
    """A WebSocket is one exchange for its whole life: its access line lists at most MAX_RECORDED
    operations, while the error counter still counts each error answered."""
    executor = Executor(make_settings("sqlite"))
    await executor.open()
    try:
        exchange, handle = executor.telemetry.begin("GET", "/graphql", {})
        bad = Operation("query Bad($n: Int) { users(first: $n) { edges { cursor } } }", "Bad", {"n": "x"})
        for _ in range(MAX_RECORDED + 30):
            await executor.execute(bad, None, None)
        assert len(exchange.operations) == MAX_RECORDED
        assert len(exchange.errors) == MAX_RECORDED
        executor.telemetry.end(exchange, handle, "GET", "/graphql", 101)
        stats = executor.stats()
        text = executor.telemetry.render_metrics(stats)[0].decode()
    finally:
        await executor.close()
    assert value(text, "gateway_graphql_errors_total", code="BAD_USER_INPUT") == MAX_RECORDED + 30
