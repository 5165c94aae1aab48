"""Access and error logs of a served gateway: JSON lines with the request id, operation, duration,
status and error codes, and never a token or a variable's value; on both doors."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from gateway.auth.issuing import issue_token
from gateway.settings import Settings
from gateway.telemetry.access_log import safe_message
from tests.conftest import server_env
from tests.processes import DOORS, serve
from tests.served_doors import served
from tests.tcp_proxy import TcpProxy

JWT_SECRET = "access-log-test-secret-0123456789abcdef"
# Values a client might send that must never reach a log.
EMAIL_SECRET = "hunter2-EMAIL-SECRET-7f3a"
COUNT_SECRET = "PAGE-SECRET-91c2"
LITERAL_SECRET = "LITERAL-SECRET-55d0"
TAKEN_EMAIL = "taken-7d1e@example.com"
CREATE = 'mutation Join($email: String!) { createUser(input: {email: $email, displayName: "A"}) { id } }'
USERS = "query Users($first: Int) { users(first: $first) { edges { node { id } } } }"


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every log line the gateway wrote (uvicorn's own start-up lines are not the gateway's)."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("door", DOORS)
async def test_json_access_and_error_lines_carry_no_token_and_no_value(door: str, tmp_path: Any) -> None:
    signing = Settings(_env_file=None, auth_jwt_secret=JWT_SECRET)  # type: ignore[call-arg]
    token = issue_token(signing, subject="sub-ada", roles=["admin"])
    env = server_env(
        "sqlite",
        None,
        DB_SQLITE_PATH=str(tmp_path / "gateway.db"),
        LOG_FORMAT="json",
        AUTH_JWT_SECRET=JWT_SECRET,
    )
    signed_in = {"Authorization": f"Bearer {token}"}
    async with serve(door, env) as server, aiohttp.ClientSession(headers=signed_in) as http:
        graphql = f"{server.url}/graphql"
        body = {"query": CREATE, "variables": {"email": EMAIL_SECRET}}
        async with http.post(graphql, json=body, headers={"X-Request-Id": "req-create-1"}) as response:
            assert response.headers["X-Request-Id"] == "req-create-1"
            assert (await response.json())["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        params = {"query": USERS, "variables": json.dumps({"first": COUNT_SECRET})}
        async with http.get(graphql, params=params, headers={"X-Request-Id": "req-get-2"}) as response:
            assert response.headers["X-Request-Id"] == "req-get-2"
        # A conflict on a member's e-mail: the message, and so its logged copy, names no address.
        for _ in range(2):
            taken = {"query": CREATE, "variables": {"email": TAKEN_EMAIL}}
            async with http.post(graphql, json=taken, headers={"X-Request-Id": "req-taken"}) as response:
                answered = await response.json()
        assert answered["errors"][0]["extensions"]["code"] == "CONFLICT"
        literal = {"query": f'{{ users(first: "{LITERAL_SECRET}") {{ edges {{ cursor }} }} }}'}
        async with http.post(graphql, json=literal) as response:
            generated = response.headers["X-Request-Id"]
        # An id that is not sane (too long, or outside the safe characters) is replaced by ours.
        for unsafe in ("x" * 200, 'quote"and space'):
            headers = {"X-Request-Id": unsafe}
            async with http.post(graphql, json={"query": USERS}, headers=headers) as response:
                replaced = response.headers["X-Request-Id"]
                assert replaced != unsafe and len(replaced) == 32
        # What no route takes is observed all the same: an unknown path, a method /graphql lacks.
        async with http.get(f"{server.url}/nowhere/x", headers={"X-Request-Id": "req-404"}) as response:
            assert (response.status, response.headers["X-Request-Id"]) == (404, "req-404")
        async with http.put(graphql, json={"query": USERS}, headers={"X-Request-Id": "req-405"}) as response:
            assert (response.status, response.headers["X-Request-Id"]) == (405, "req-405")
            assert {"GET", "POST"} <= set(response.headers["Allow"].replace(" ", "").split(","))
    lines = json_lines(server.stderr)
    everything = server.stderr
    for secret in (token, JWT_SECRET, EMAIL_SECRET, COUNT_SECRET, LITERAL_SECRET, TAKEN_EMAIL):
        assert secret not in everything
    assert "variables=" not in everything  # no query string in an access line

    access = {line["request_id"]: line for line in lines if line["logger"] == "gateway.access"}
    create = access["req-create-1"]
    assert create["level"] == "INFO"
    assert (create["method"], create["path"], create["status"]) == ("POST", "/graphql", 200)
    assert (create["operation_name"], create["operation_type"]) == ("Join", "mutation")
    assert create["error_codes"] == ["BAD_USER_INPUT"]
    assert isinstance(create["duration_ms"], float) and create["duration_ms"] > 0
    get = access["req-get-2"]
    assert (get["method"], get["path"], get["operation_name"], get["operation_type"]) == (
        "GET",
        "/graphql",
        "Users",
        "query",
    )
    assert get["error_codes"] == ["BAD_USER_INPUT"]
    assert access[generated]["error_codes"] == ["GRAPHQL_VALIDATION_FAILED"]
    assert (access["req-404"]["method"], access["req-404"]["path"], access["req-404"]["status"]) == (
        "GET",
        "/nowhere/x",
        404,
    )
    assert (access["req-405"]["method"], access["req-405"]["status"]) == ("PUT", 405)
    assert access[generated]["operation_name"] == "anonymous"

    errors = {line["request_id"]: line for line in lines if line["logger"] == "gateway.graphql"}
    assert errors["req-create-1"]["errors"] == [
        {"code": "BAD_USER_INPUT", "message": "input.email: (value not logged)"}
    ]
    assert errors["req-get-2"]["errors"] == [
        {"code": "BAD_USER_INPUT", "message": "Variable '$first' has invalid value (value not logged)"}
    ]
    assert errors[generated]["errors"][0]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_text_access_lines_name_the_operation(tmp_path: Any) -> None:
    env = server_env("sqlite", None, DB_SQLITE_PATH=str(tmp_path / "gateway.db"))
    async with serve("aiohttp", env) as server, aiohttp.ClientSession() as http:
        body = {"query": USERS, "variables": {"first": 1}}
        async with http.post(f"{server.url}/graphql", json=body, headers={"X-Request-Id": "abc.1"}) as r:
            assert r.status == 200
    lines = server.stderr.splitlines()
    line = next(line for line in lines if "gateway.access" in line and "id=abc.1" in line)
    assert "POST /graphql 200 " in line and "ms query Users id=abc.1" in line
    assert "aiohttp.access" not in server.stderr  # replaced, with its query strings


@pytest.mark.parametrize("door", DOORS)
async def test_a_path_cannot_write_a_log_line_of_its_own(door: str, tmp_path: Any) -> None:
    # Decoded, %0a ends the access line and the rest reads as a forged one; %0d and %1b do as much
    # on a terminal. The path is logged with them encoded, one line per request.
    env = server_env("sqlite", None, DB_SQLITE_PATH=str(tmp_path / "gateway.db"))
    forged = "2026-12-07 12:00:00,000 INFO gateway.access: GET /admin 200"
    async with serve(door, env) as server, aiohttp.ClientSession() as http:
        for n, control in enumerate(("%0a", "%0d", "%1b[2K")):
            url = aiohttp.client.URL(f"{server.url}/x{control}{forged.replace(' ', '%20')}", encoded=True)
            async with http.get(url, headers={"X-Request-Id": f"req-path-{n}"}) as response:
                assert (response.status, response.headers["X-Request-Id"]) == (404, f"req-path-{n}")
    lines = server.stderr.splitlines()
    assert not any(line.startswith(forged[:23]) for line in lines)  # no line begins as the forged one
    for n, control in enumerate(("%0A", "%0D", "%1B[2K")):
        (line,) = [line for line in lines if f"id=req-path-{n}" in line]
        assert f"GET /x{control}2026-12-07" in line and "\r" not in line and "\x1b" not in line


@pytest.mark.parametrize("door", DOORS)
async def test_a_document_id_cannot_write_a_log_line_of_its_own(door: str, tmp_path: Any) -> None:
    # With PERSISTED_OPERATIONS=only an unknown documentId is quoted in the error, and the error
    # line logged it whole: its newline ended the line and the rest read as a forged one.
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"a" * 64: "query Known { __typename }"}))
    env = server_env(
        "sqlite",
        None,
        DB_SQLITE_PATH=str(tmp_path / "gateway.db"),
        PERSISTED_OPERATIONS="only",
        PERSISTED_OPERATIONS_MANIFEST=str(manifest),
    )
    forged = "2026-12-07 12:00:00,000 INFO gateway.access: GET /admin 200"
    async with serve(door, env) as server, aiohttp.ClientSession() as http:
        for n, control in enumerate(("\n", "\r", "\x1b[2K", "\u2028")):
            body = {"documentId": f"x{control}{forged}"}
            headers = {"X-Request-Id": f"req-doc-{n}"}
            async with http.post(f"{server.url}/graphql", json=body, headers=headers) as response:
                answered = await response.json()
            assert answered["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
            assert control in answered["errors"][0]["message"], "the client is still told"
    lines = server.stderr.splitlines()
    assert not any(line.startswith(forged[:23]) for line in lines)
    for n, control in enumerate(("\\n", "\\r", "\\x1b[2K", "\\u2028")):
        (line,) = [line for line in lines if "gateway.graphql" in line and f"id=req-doc-{n}" in line]
        assert f"no persisted operation x{control}2026-12-07" in line
        assert "\r" not in line and "\x1b" not in line and "\u2028" not in line


async def test_at_log_level_warning_a_server_side_error_keeps_its_line(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    # LOG_LEVEL=WARNING drops the access lines, not the warning that the database went away.
    direct = make_settings("postgres")
    proxy = TcpProxy(direct.db_host, direct.database_port)
    await proxy.start()
    settings = make_settings(
        "postgres", db_host="127.0.0.1", db_port=proxy.port, db_acquire_timeout=1, db_connect_timeout=1
    )
    caplog.set_level(logging.WARNING, logger="gateway")
    async with served("aiohttp", settings) as url, aiohttp.ClientSession() as http:
        graphql = f"{url}/graphql"
        for request_id, status in (("req-up", 200), ("req-down", 503)):
            if status == 503:
                await proxy.cut()
            headers = {"X-Request-Id": request_id}
            async with http.post(graphql, json={"query": USERS}, headers=headers) as response:
                assert response.status == status
    logged = [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("gateway.")]
    assert not [line for line in logged if line[0] == "gateway.access"]
    errors = [line for line in logged if line[0] == "gateway.graphql"]
    assert len(errors) == 1, logged
    assert errors[0][1] == "WARNING"
    assert "UNAVAILABLE" in errors[0][2] and errors[0][2].endswith("id=req-down")


@pytest.mark.parametrize(
    ("code", "message", "logged"),
    [
        ("BAD_USER_INPUT", "input.email: 'pw' is not an email address", "input.email: (value not logged)"),
        (
            "BAD_USER_INPUT",
            "Variable '$n' got invalid value 'pw'; Int cannot represent non-integer value: 'pw'",
            "Variable '$n' got invalid value (value not logged)",
        ),
        (
            "BAD_USER_INPUT",
            "Variable '$n' has invalid value: Int cannot represent non-integer value: 'pw'",
            "Variable '$n' has invalid value (value not logged)",
        ),
        (
            "GRAPHQL_VALIDATION_FAILED",
            'Int cannot represent non-integer value: "pw"',
            "Int cannot represent non-integer (value not logged)",
        ),
        (
            "GRAPHQL_VALIDATION_FAILED",
            "Expected value of type 'Int!', found \"pw\".",
            "Expected value of type (value not logged)",
        ),
        (
            "GRAPHQL_PARSE_FAILED",
            "Syntax Error: Unexpected Name 'pw'.",
            "Syntax Error: Unexpected Name (value not logged)",
        ),
        ("NOT_FOUND", "user not found", "user not found"),
        # Quotes hold names and values alike: an enum literal, a field a client typed.
        (
            "GRAPHQL_VALIDATION_FAILED",
            "Value 'hunter2SECRET' does not exist in 'ShootingSessionOrder' enum.",
            "Value (value not logged)",
        ),
        (
            "GRAPHQL_VALIDATION_FAILED",
            "Cannot query field 'pw' on type 'Query'.",
            "Cannot query field (value not logged)",
        ),
    ],
)
def test_logged_messages_keep_no_value(code: str, message: str, logged: str) -> None:
    assert safe_message(code, message) == logged


def test_generated_request_ids_differ_between_processes_and_requests() -> None:
    """Ids are a per-process prefix and a counter: a forked worker must not repeat its parent's."""
    import os

    from gateway.telemetry.exchange import request_id_from

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out without running the parent's cleanup
        os.write(write, " ".join(request_id_from(None) for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    ours = [request_id_from(None) for _ in range(3)]
    os.waitpid(pid, 0)
    theirs = os.read(read, 4096).decode().split()
    os.close(read)
    assert len(set(ours + theirs)) == 6
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ours + theirs)


@pytest.mark.parametrize("door", DOORS)
async def test_an_enum_literal_and_a_bare_authorization_header_stay_out_of_the_log(
    door: str, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    # Both were logged whole: "Value 'hunter2SECRET' does not exist …" and
    # "Authorization scheme 'hunterSECRET' is not Bearer".
    caplog.set_level(logging.INFO, logger="gateway")
    settings = make_settings("sqlite", auth_jwt_secret="s" * 32)
    async with served(door, settings) as url, aiohttp.ClientSession() as http:
        query = {"query": "{ shootingSessions(orderBy: hunter2SECRET) { totalCount } }"}
        async with http.post(f"{url}/graphql", json=query) as response:
            assert "hunter2SECRET" in await response.text(), "the client is still told"
        headers = {"Authorization": "hunterSECRET"}
        async with http.post(f"{url}/graphql", json={"query": USERS}, headers=headers) as response:
            assert response.status == 401
            assert "hunterSECRET" not in await response.text()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "GRAPHQL_VALIDATION_FAILED Value (value not logged)" in logged
    assert "the Authorization header has no scheme" in logged
    assert "hunter2SECRET" not in logged and "hunterSECRET" not in logged
