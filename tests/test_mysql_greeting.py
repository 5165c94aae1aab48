"""A MySQL server that greets with an error packet is reported with its own code and message.

The fake server below is what MySQL and MariaDB send a client they refuse before the handshake:
one ERR packet (0xFF, the error code little-endian, optionally '#' and a 5-byte SQL state, the
message) with sequence id 0, then the connection is closed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from gateway.datasources import create_data_source
from gateway.datasources.mysql.handshake import RefusedBeforeHandshake
from gateway.datasources.protocol import DataSourceUnavailable
from gateway.errors import ErrorCode
from gateway.settings import Settings
from tests.processes import run_gateway_async

REFUSALS = [
    (1040, None, "Too many connections"),
    (1040, "08004", "Too many connections"),
    (1129, None, "Host '127.0.0.1' is blocked because of many connection errors; unblock with 'FLUSH HOSTS'"),
    (1130, None, "Host '127.0.0.1' is not allowed to connect to this MariaDB server"),
]
EXIT_SERVER_REFUSED = 18
EXIT_OTHER = 16


def err_packet(code: int, sql_state: str | None, message: str) -> bytes:
    payload = b"\xff" + code.to_bytes(2, "little")
    if sql_state is not None:
        payload += b"#" + sql_state.encode("ascii")
    payload += message.encode("utf-8")
    return len(payload).to_bytes(3, "little") + b"\x00" + payload


@asynccontextmanager
async def refusing_server(packet: bytes) -> AsyncIterator[int]:
    """A server on a free loopback port that greets every client with `packet` (maybe none) and hangs up."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(packet)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def expected(port: int, code: int, message: str) -> str:
    return f"MySQL server at 127.0.0.1:{port} refused the connection before the handshake: {code} {message}"


async def check_connection(port: int, ssl: str) -> tuple[int, str]:
    """`gateway check-connection` against 127.0.0.1:port: its exit code and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "AWS_"))}
    env.update(DB_BACKEND="mysql", DB_HOST="127.0.0.1", DB_PORT=str(port), DB_USER="club")
    env.update(DB_NAME="club", DB_PASSWORD="pw-never-shown", DB_SSL=ssl)
    result = await run_gateway_async(["check-connection"], env)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("ssl", ["true", "false"])
@pytest.mark.parametrize(("code", "sql_state", "message"), REFUSALS)
async def test_check_connection_reports_the_servers_refusal_with_its_own_exit_code(
    ssl: str, code: int, sql_state: str | None, message: str
) -> None:
    async with refusing_server(err_packet(code, sql_state, message)) as port:
        returncode, output = await check_connection(port, ssl)
    assert returncode == EXIT_SERVER_REFUSED, output
    failed = [line.strip() for line in output.splitlines() if "FAILED" in line]
    assert failed == [f"FAILED (server_refused): {expected(port, code, message)}"], output
    assert "does not offer TLS" not in output and "pw-never-shown" not in output


@pytest.mark.parametrize("ssl", ["true", "false"])
async def test_check_connection_reports_a_server_that_hangs_up_without_a_greeting(ssl: str) -> None:
    async with refusing_server(b"") as port:
        returncode, output = await check_connection(port, ssl)
    assert returncode == EXIT_OTHER, output
    failed = [line.strip() for line in output.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "Traceback" not in output, output
    assert f"MySQL server at 127.0.0.1:{port} closed the connection before its greeting" in failed[0]


async def open_refused(port: int) -> DataSourceUnavailable:
    """Why opening a MySQL data source on 127.0.0.1:port (with TLS) failed."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        db_backend="mysql",
        db_host="127.0.0.1",
        db_port=port,
        db_user="club",
        db_name="club",
        db_ssl=True,
    )
    source = create_data_source(settings)
    with pytest.raises(DataSourceUnavailable) as caught:
        await source.open()
    await source.close()
    return caught.value


@pytest.mark.parametrize(("code", "sql_state", "message"), REFUSALS)
async def test_opening_the_data_source_raises_the_servers_refusal(
    code: int, sql_state: str | None, message: str
) -> None:
    async with refusing_server(err_packet(code, sql_state, message)) as port:
        refusal = await open_refused(port)
    assert isinstance(refusal, RefusedBeforeHandshake)
    assert refusal.code is ErrorCode.UNAVAILABLE  # what a GraphQL client is told
    assert str(refusal) == expected(port, code, message)
    assert (refusal.error_number, refusal.server_message) == (code, message)


async def test_opening_the_data_source_reports_a_server_that_hangs_up_without_a_greeting() -> None:
    async with refusing_server(b"") as port:
        refusal = await open_refused(port)
    assert f"MySQL server at 127.0.0.1:{port} closed the connection before its greeting" in str(refusal)
