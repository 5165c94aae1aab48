"""PostgreSQL and MariaDB as RDS serves a user with IAM authentication, on loopback.

RDS asks for the token in clear, inside TLS, and checks it once, at login: issued for this host,
port and user, and not past its X-Amz-Expires. Here a TLS front does that check against the
test's clock, then relays the session to this machine's server, logged in as its test user. A
connection already open is never checked again, as on RDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import trustme

from tests.conftest import MY, PG
from tests.fake_servers import mysql_error, mysql_packet, read_mysql, server_context, serving

__all__ = ["IamLogin", "RdsServer", "rds_mysql", "rds_postgres"]

_SSL_REQUEST = 80877103
_CLEARTEXT_PASSWORD = 3
_PROTOCOL_3 = 196608


@dataclass
class IamLogin:
    token: str
    accepted: bool

    @property
    def signed_at(self) -> datetime:
        return datetime.strptime(_query(self.token)["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    @property
    def expires_at(self) -> datetime:
        return self.signed_at + timedelta(seconds=int(_query(self.token)["X-Amz-Expires"]))


@dataclass
class RdsServer:
    port: int
    logins: list[IamLogin] = field(default_factory=list)


def _query(token: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(token.split("?", 1)[1]).items()}


def _checked(state: RdsServer, token: str, user: str, now: Callable[[], datetime]) -> IamLogin:
    """`token` checked as RDS checks it at login, and recorded."""
    issued_for = f"localhost:{state.port}/?Action=connect&DBUser={user}&"
    login = IamLogin(token, token.startswith(issued_for))
    login.accepted = login.accepted and login.signed_at <= now() <= login.expires_at
    state.logins.append(login)
    return login


def _error(code: str, message: str) -> bytes:
    fields = b"SFATAL\x00C" + code.encode() + b"\x00M" + message.encode() + b"\x00\x00"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


async def _message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    kind = await reader.readexactly(1)
    (length,) = struct.unpack("!I", await reader.readexactly(4))
    return kind, await reader.readexactly(length - 4)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        sink.close()


@asynccontextmanager
async def rds_postgres(
    ca: trustme.CA, database: str, now: Callable[[], datetime], user: str = "club"
) -> AsyncIterator[RdsServer]:
    """An RDS-like PostgreSQL for IAM user `user` on a free port, whose sessions run in `database`."""
    tls = server_context(ca)
    state = RdsServer(0)
    sessions: set[asyncio.Task[None]] = set()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _, code = struct.unpack("!II", await reader.readexactly(8))
            if code != _SSL_REQUEST:
                return  # RDS refuses an IAM login without TLS; no answer needed here
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(tls)
            (length,) = struct.unpack("!I", await reader.readexactly(4))
            await reader.readexactly(length - 4)  # the startup message
            writer.write(b"R" + struct.pack("!II", 8, _CLEARTEXT_PASSWORD))
            await writer.drain()
            kind, body = await _message(reader)
            login = _checked(state, body.rstrip(b"\x00").decode(), user, now)
            if kind != b"p" or not login.accepted:
                writer.write(_error("28P01", f'PAM authentication failed for user "{user}"'))
                await writer.drain()
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(PG["host"], PG["port"])
            params = f"user\x00{PG['user']}\x00database\x00{database}\x00\x00".encode()
            upstream_writer.write(struct.pack("!II", len(params) + 8, _PROTOCOL_3) + params)
            # From here on PostgreSQL answers (trust: AuthenticationOk first), as RDS after its check.
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def start(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(session(reader, writer))
        sessions.add(task)
        task.add_done_callback(sessions.discard)

    server = await asyncio.start_server(start, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for task in list(sessions):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*sessions, return_exceptions=True)
        await server.wait_closed()


# MySQL capability flags, and the packets' first bytes.
_CONNECT_WITH_DB, _SSL, _PLUGIN_AUTH, _CONNECT_ATTRS = 0x8, 0x800, 0x80000, 0x100000
_OK, _AUTH_SWITCH = 0x00, 0xFE


def _offering_tls(greeting: bytes) -> bytes:
    """The server's greeting with the TLS capability added (the relay, not the server, speaks TLS)."""
    at = greeting.index(b"\x00", 1) + 1 + 4 + 8 + 1  # version, thread id, scramble, filler
    (lower,) = struct.unpack_from("<H", greeting, at)
    return greeting[:at] + struct.pack("<H", lower | _SSL) + greeting[at + 2 :]


def _upstream_login(response: bytes, database: str) -> bytes:
    """The client's handshake response, redone for the machine's server: its user, no password."""
    (capabilities,) = struct.unpack_from("<I", response)
    capabilities &= ~(_SSL | _CONNECT_ATTRS)
    # An empty password: a zero length, whether the client sends it length-encoded or not.
    login = struct.pack("<I", capabilities) + response[4:32] + MY["user"].encode() + b"\x00" + b"\x00"
    if capabilities & _CONNECT_WITH_DB:
        login += database.encode() + b"\x00"
    if capabilities & _PLUGIN_AUTH:
        login += b"mysql_native_password\x00"
    return login


def _relay(client: ssl.SSLSocket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes; one thread, as an SSL socket wants."""
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while True:
            for key, _ in selector.select():
                source, sink = key.fileobj, key.data
                while True:
                    data = source.recv(65536)
                    if not data:
                        return
                    sink.sendall(data)
                    # TLS may hold decrypted bytes the socket no longer signals.
                    if not (isinstance(source, ssl.SSLSocket) and source.pending()):
                        break


@asynccontextmanager
async def rds_mysql(
    ca: trustme.CA, database: str, now: Callable[[], datetime], user: str = "club"
) -> AsyncIterator[RdsServer]:
    """An RDS-like MySQL for IAM user `user` on a free port, whose sessions run in `database` on the
    machine's MariaDB (whose greeting, thread id included, the client sees)."""
    tls = server_context(ca)
    state = RdsServer(0)

    def serve_one(raw: socket.socket) -> None:
        upstream = socket.create_connection((MY["host"], MY["port"]), timeout=30)
        client: socket.socket | ssl.SSLSocket = raw
        try:
            _, greeting = read_mysql(upstream)
            raw.sendall(mysql_packet(0, _offering_tls(greeting)))
            sequence, request = read_mysql(raw)
            if not struct.unpack_from("<I", request)[0] & _SSL or len(request) != 32:
                return  # RDS refuses an IAM login without TLS
            client = tls.wrap_socket(raw, server_side=True)
            sequence, response = read_mysql(client)
            client.sendall(mysql_packet(sequence + 1, bytes([_AUTH_SWITCH]) + b"mysql_clear_password\x00"))
            sequence, token = read_mysql(client)
            login = _checked(state, token.rstrip(b"\x00").decode(), user, now)
            if not login.accepted:
                client.sendall(mysql_error(sequence + 1, 1045, f"Access denied for user '{user}'"))
                return
            upstream.sendall(mysql_packet(1, _upstream_login(response, database)))
            upstream_sequence, answer = read_mysql(upstream)
            if answer[0] == _AUTH_SWITCH:  # the server's own plugin: still no password
                upstream.sendall(mysql_packet(upstream_sequence + 1, b""))
                _, answer = read_mysql(upstream)
            client.sendall(mysql_packet(sequence + 1, answer))
            if answer[0] == _OK:
                _relay(client, upstream)
        except (OSError, ssl.SSLError):
            pass
        finally:
            client.close()
            upstream.close()

    async with serving(serve_one) as state.port:
        yield state
