"""examples/react, built and driven in Debian's Chromium against a real `gateway serve`.

The app is type-checked against schema.graphql (graphql-codegen --check, tsc), built by Vite, and
served from an origin of its own; `tests/react_example/drive.mjs` drives it with playwright-core
and reports every request to the gateway, its CORS preflight and its answer, and the WebSocket
of the live feed. `scripts/test`
installs Chromium and both lockfiles' packages.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from gateway.commands.demo import load_demo
from gateway.datasources import create_data_source
from gateway.settings import Settings
from tests.conftest import server_env
from tests.processes import ROOT, free_port, serve

EXAMPLE = ROOT / "examples" / "react"
DRIVER = ROOT / "tests" / "react_example"
CHROMIUM = "/usr/bin/chromium"
PAGE_SIZE = 5  # examples/react/src/Sessions.tsx
MEMBER = {"sub": "react-example-member", "displayName": "Rita Example", "email": "rita@example.com"}
NEW_SESSION = {"discipline": "25m Pistol", "location": "Lane 7 north", "scores": "10.1, 9.5"}


async def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run a command to completion; its stdout, or a failure showing what it printed."""
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        # SIGTERM first: playwright closes the browser it launched on SIGTERM, not on SIGKILL.
        process.terminate()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        pytest.fail(f"{' '.join(argv[:3])} took over {timeout:g} s")
    output = f"{out.decode()}\n{err.decode()}"
    assert process.returncode == 0, f"{' '.join(argv[:3])} exited {process.returncode}:\n{output}"
    return out.decode()


def require_tools() -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: examples/react needs Node.js 20.19 or later")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does)")
    for folder in (EXAMPLE, DRIVER):
        if not (folder / "node_modules").is_dir():
            pytest.fail(f"run `npm ci` in {folder} (scripts/test does)")


async def build(graphql_url: str, out: Path) -> None:
    """Check the committed operation types against schema.graphql, then build the app for `graphql_url`."""
    try:
        await run(["npm", "run", "--silent", "check"], EXAMPLE)
    except AssertionError as exc:
        hint = "if schema.graphql changed, run `npm run codegen` in examples/react and commit src/gql"
        raise AssertionError(f"{exc}\n{hint}") from None
    env = {**os.environ, "VITE_GRAPHQL_URL": graphql_url}
    await run(["npm", "run", "--silent", "build", "--", "--outDir", str(out), "--emptyOutDir"], EXAMPLE, env)


@asynccontextmanager
async def static_site(root: Path, port: int) -> AsyncIterator[None]:
    """Serve the built app at an origin of its own, as a CDN or `vite preview` would."""
    app = web.Application()

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(root / "index.html")

    app.router.add_get("/", index)
    app.router.add_static("/assets", root / "assets")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def load_demo_club(path: Path) -> None:
    """The sample club of `gateway init-db --demo`, in a new SQLite file."""
    settings = Settings(_env_file=None, db_backend="sqlite", db_sqlite_path=path)  # type: ignore[call-arg]
    source = create_data_source(settings)
    await source.open()
    try:
        assert await load_demo(source)
    finally:
        await source.close()


def sessions_in_database(path: Path) -> list[tuple[Any, ...]]:
    """Every session newest first, as the list shows it: name, discipline, location, shots, total."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute(
            "SELECT u.display_name, s.discipline, s.location, s.shot_count, s.total_tenths, u.subject"
            " FROM shooting_sessions s JOIN users u ON u.id = s.user_id"
            " ORDER BY s.started_at DESC, s.id DESC"
        ).fetchall()


def row_text(name: str, discipline: str, location: str, shots: int, tenths: int) -> str:
    """How Sessions.tsx writes a session, after its date (whose format is the browser's locale)."""
    return f"{name} · {discipline} at {location} · {shots} shots, {tenths / 10:g}"


def operation_of(exchange: dict[str, Any]) -> tuple[str, str | None, str]:
    """The operation name, document text (None: hash only) and APQ hash a request sent."""
    if exchange["method"] == "GET":
        params = {key: values[0] for key, values in parse_qs(urlsplit(exchange["url"]).query).items()}
        extensions = json.loads(params["extensions"])
        return params["operationName"], params.get("query"), extensions["persistedQuery"]["sha256Hash"]
    body = json.loads(exchange["body"])
    return body["operationName"], body.get("query"), body["extensions"]["persistedQuery"]["sha256Hash"]


def codes(exchange: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in (exchange.get("response") or {}).get("errors", [])]


async def test_the_react_example_lists_pages_creates_and_speaks_apq_across_origins(tmp_path: Path) -> None:
    require_tools()
    database = tmp_path / "club.db"
    await load_demo_club(database)
    demo = sessions_in_database(database)
    assert len(demo) > PAGE_SIZE

    app_port, other_port = free_port(), free_port()
    app_origin, other_origin = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{other_port}"
    secret = secrets.token_urlsafe(48)
    env = server_env(
        "sqlite", None, DB_SQLITE_PATH=str(database), AUTH_JWT_SECRET=secret, CORS_ORIGINS=app_origin
    )
    # The member's token, as a developer pastes it: printed by `gateway token`.
    token_command = ["token", "--sub", MEMBER["sub"], "--email", MEMBER["email"]]
    token = (await run([sys.executable, "-m", "gateway", *token_command], ROOT, env)).strip()
    dist = tmp_path / "dist"
    async with serve("aiohttp", env) as gateway:
        graphql_url = gateway.url + "/graphql"
        await build(graphql_url, dist)
        config = {
            "app": app_origin + "/",
            "blocked": other_origin + "/",
            "graphql": graphql_url,
            "token": token,
            "pageSize": PAGE_SIZE,
            "chromium": CHROMIUM,
            "profile": {"displayName": MEMBER["displayName"], "email": MEMBER["email"]},
            "session": NEW_SESSION,
        }
        async with static_site(dist, app_port), static_site(dist, other_port):
            seen = json.loads(await run(["node", "drive.mjs", json.dumps(config)], DRIVER, timeout=90))
    allowed, blocked = seen["allowed"], seen["blocked"]
    assert "failed" not in allowed, allowed.get("failed")

    # The list shows the database's newest sessions; fetchMore appends the rest.
    expected = [row_text(*row[:5]) for row in demo]
    assert [row.split(" · ", 1)[1] for row in allowed["firstPage"]] == expected[:PAGE_SIZE]
    assert [row.split(" · ", 1)[1] for row in allowed["afterFetchMore"]] == expected

    # The form's mutation wrote the member's session, and the list shows it on top.
    after = sessions_in_database(database)
    assert len(after) == len(demo) + 1
    created = row_text(MEMBER["displayName"], NEW_SESSION["discipline"], NEW_SESSION["location"], 2, 196)
    assert after[0] == (MEMBER["displayName"], "25m Pistol", "Lane 7 north", 2, 196, MEMBER["sub"])
    assert allowed["afterCreate"][0].split(" · ", 1)[1] == created
    assert allowed["signedIn"].startswith(f"Signed in as {MEMBER['displayName']}")

    # The feed's subscription, opened over a WebSocket at page load, delivered the new session.
    assert allowed["subscribed"] == 1
    assert allowed["feed"][0] == f"{MEMBER['displayName']} recorded a session"
    (socket,) = allowed["sockets"]
    assert socket["url"] == graphql_url.replace("http://", "ws://")
    assert socket["received"][0] == "connection_ack" and "next" in socket["received"]
    assert allowed["alerts"] == []

    # APQ: each operation's first request is its hash alone, answered PERSISTED_QUERY_NOT_FOUND;
    # the link retries once with the document; every later request is the hash alone again.
    exchanges = allowed["exchanges"]
    by_operation: dict[str, list[dict[str, Any]]] = {}
    for exchange in exchanges:
        by_operation.setdefault(operation_of(exchange)[0], []).append(exchange)
    assert set(by_operation) == {"Sessions", "Viewer", "CreateProfile", "CreateSession"}
    for name, sent in by_operation.items():
        first, retry, *later = sent
        _, document, digest = operation_of(first)
        assert document is None and codes(first) == ["PERSISTED_QUERY_NOT_FOUND"], name
        _, document, retry_digest = operation_of(retry)
        assert document is not None and retry_digest == digest, name
        assert digest == hashlib.sha256(document.encode()).hexdigest(), name
        assert retry["method"] == "POST" and "data" in retry["response"] and codes(retry) == [], name
        for exchange in later:
            assert operation_of(exchange)[1] is None and codes(exchange) == [], name
            assert exchange["response"]["data"], name
    queries = by_operation["Sessions"] + by_operation["Viewer"]
    hash_only_queries = [e for e in queries if operation_of(e)[1] is None]
    assert {e["method"] for e in hash_only_queries} == {"GET"}  # cacheable by a CDN
    assert len(by_operation["Sessions"]) >= 4  # first, retry, fetchMore, again after sign-in

    # CORS: every request crossed origins, with Apollo's client headers and, signed in, the token,
    # and passed; the browser sent those headers only after a preflight (or its cached answer)
    # allowed them.
    assert {e["headers"].get("origin") for e in exchanges} == {app_origin}
    assert {e["headers"].get("apollographql-client-name") for e in exchanges} == {"club-react-example"}
    assert any("authorization" in e["headers"] for e in exchanges)
    assert {e["status"] for e in exchanges} == {200}
    assert {e["responseHeaders"].get("access-control-allow-origin") for e in exchanges} == {app_origin}
    preflights = allowed["preflights"]
    assert preflights and {p["status"] for p in preflights} == {200}
    asked = {h.strip() for p in preflights for h in p["headers"]["Access-Control-Request-Headers"].split(",")}
    assert {"content-type", "apollographql-client-name", "apollographql-client-version"} <= asked

    # From an origin not in CORS_ORIGINS the preflight is refused and the page shows the failure.
    assert "failed" not in blocked, blocked.get("failed")
    assert blocked["error"] == [] and blocked["alerts"] == ["Failed to fetch"]
    # Its WebSocket handshake is refused too: 403, nothing received.
    assert blocked["sockets"] and all(s["received"] == [] and s["closed"] for s in blocked["sockets"])
    assert all("Unexpected response code: 403" in s["error"] for s in blocked["sockets"])
    assert blocked["exchanges"] and all("status" not in e and e["failure"] for e in blocked["exchanges"])
    assert {p["status"] for p in blocked["preflights"]} == {403}
    assert all(p["headers"]["Origin"] == other_origin for p in blocked["preflights"])
