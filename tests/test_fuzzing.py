"""Schemathesis fuzzes the live gateway in GraphQL mode, on every backend: no server error.

The gateway (`gateway serve`'s aiohttp door, in this process on 127.0.0.1) serves a small club on a
fresh database; schemathesis runs as its own process against `schema.graphql`, with a fixed seed and
a bounded number of examples per operation, checking `not_a_server_error`: no HTTP 5xx and no
GraphQL error the server caused (our client-error codes are declared in tests/fuzz/). Dictionaries
steer part of its arguments to the club's real IDs and to the edge values of issue 14 (NUL bytes,
extreme floats, instants out of range, a cursor holding 2^70), so it reaches past input checks.
The server's own log must hold no unexpected error either.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.schema import build_schema
from gateway.settings import Settings
from tests.processes import ROOT
from tests.served_doors import served

SEED = 14
EXAMPLES = 40  # per operation: about 900 requests and 12 s a backend here
HOOKS = ROOT / "tests" / "fuzz" / "schemathesis_hooks.py"
# Schemathesis tests each root field of queries and mutations as one operation.
_ROOTS = build_schema()._schema
OPERATIONS = len(_ROOTS.query_type.fields) + len(_ROOTS.mutation_type.fields)  # type: ignore[union-attr]


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def make_club(url: str) -> dict[str, str]:
    """Two members, a group, a session with shots; the IDs they were given."""
    async with aiohttp.ClientSession() as http:

        async def data(query: str, **variables: Any) -> dict[str, Any]:
            async with http.post(url, json={"query": query, "variables": variables}) as response:
                body = await response.json()
            assert "errors" not in body, body
            result: dict[str, Any] = body["data"]
            return result

        create_user = "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }"
        ada = (await data(create_user, i={"email": "ada@example.com", "displayName": "Ada"}))["createUser"]
        bob = (await data(create_user, i={"email": "bob@example.com", "displayName": "Bob"}))["createUser"]
        group = (await data('mutation { createGroup(input: {name: "Juniors"}) { id } }'))["createGroup"]
        join = "mutation($g: ID!, $u: ID!) { joinGroup(groupId: $g, userId: $u) { id } }"
        await data(join, g=group["id"], u=ada["id"])
        session = await data(
            "mutation($i: CreateShootingSessionInput!) { createShootingSession(input: $i) { id } }",
            i={"userId": ada["id"], "groupId": group["id"], "discipline": "air", "shots": [{"score": 9.5}]},
        )
        return {
            "ada": ada["id"],
            "bob": bob["id"],
            "group": group["id"],
            "session": session["createShootingSession"]["id"],
        }


def toml(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes (\", \\, \uXXXX) are TOML's too
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return repr(value)


def fuzz_config(club: dict[str, str]) -> str:
    """schemathesis.toml: dictionaries of real and edge values, and the arguments they feed."""
    dictionaries: dict[str, list[Any]] = {
        "ids": [
            *club.values(),
            b64("ShootingSession:999999999999999999"),
            b64("User:" + chr(0x663)),
            club["ada"] + "==",
            "",
        ],
        "cursors": [
            b64(json.dumps(["users", 2**70])),
            b64(json.dumps(["sessions:STARTED_AT_DESC", "0001-01-01T00:00:00+14:00", 1])),
            b64(json.dumps(["sessions:STARTED_AT_DESC", "2026-05-01T09:30:00+00:00", 1])),
            b64("[" * 3000 + "]" * 3000),
        ],
        "emails": ["ada@example.com", "carol@example.com", "nul\u0000@example.com", "A@B.CO"],
        "texts": ["air", "x\u0000y", "   ", "z" * 2001],
        "instants": [
            "2026-05-01T09:30:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "1000-01-01T00:00:00Z",
        ],
        "numbers": [9.5, 10.9, 11.0, 0.05, -0.0, 1e308, -1.7976931348623157e308, 5e-324, 1000000.5],
    }
    bindings = {
        "*.*.id": "ids",
        "*.*.userId": "ids",
        "*.*.groupId": "ids",
        "*.*.sessionId": "ids",
        "*.*.input.userId": "ids",
        "*.*.input.groupId": "ids",
        "*.*.filter.userId": "ids",
        "*.*.filter.groupId": "ids",
        "*.*.after": "cursors",
        "*.*.input.email": "emails",
        "*.*.input.displayName": "texts",
        "*.*.input.name": "texts",
        "*.*.input.discipline": "texts",
        "*.*.input.notes": "texts",
        "*.*.input.location": "texts",
        "*.*.filter.discipline": "texts",
        "*.*.input.startedAt": "instants",
        "*.*.filter.startedAfter": "instants",
        "*.*.filter.startedBefore": "instants",
        "Mutation.addShots.shots[*].score": "numbers",
        "Mutation.addShots.shots[*].x": "numbers",
        "Mutation.createShootingSession.input.shots[*].score": "numbers",
        "Mutation.createShootingSession.input.shots[*].y": "numbers",
    }
    lines = []
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {toml(values)}", ""]
    for key, dictionary in bindings.items():
        lines += [f'[parameters."{key}"]', f"dictionary = {toml(dictionary)}", "probability = 0.7", ""]
    return "\n".join(lines)


async def schemathesis(url: str, config: Path, report: Path) -> dict[str, Any]:
    """Run schemathesis against `url`; its JSON report (at most 120 s)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        str(ROOT / "schema.graphql"),
        "--url",
        url,
        "--checks",
        "not_a_server_error",
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        cwd=report.parent,  # schemathesis keeps a cache folder where it runs
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        output, _ = await process.communicate()
    assert report.exists(), output.decode()[-3000:]
    result: dict[str, Any] = json.loads(report.read_text())
    result["output"] = output.decode()
    return result


async def test_schemathesis_finds_no_server_error(
    backend: str,
    make_settings: Callable[..., Settings],
    fresh_database: Callable[[str], str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = {} if backend == "sqlite" else {"db_name": fresh_database(backend)}
    settings = make_settings(backend, **database)
    with caplog.at_level(logging.WARNING):
        async with served("aiohttp", settings) as base:
            url = base + "/graphql"
            club = await make_club(url)
            config = tmp_path / "schemathesis.toml"
            config.write_text(fuzz_config(club))
            report = await schemathesis(url, config, tmp_path / "report.json")
    summary = report["output"][-3000:]
    assert report["failures"] == [] and report["errors"] == [], summary
    assert report["exit_code"] == 0 and report["complete"], summary
    assert report["operations"]["tested"] == OPERATIONS, summary
    assert report["test_cases"]["generated"] >= OPERATIONS * EXAMPLES, summary
    unexpected = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert unexpected == []
