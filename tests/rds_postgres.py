"""PostgreSQL as RDS serves a user with IAM authentication, on loopback.

RDS asks for the token in clear, inside TLS, and checks it once, at login: issued for this host,
port and user, and not past its X-Amz-Expires. Here a TLS front does that check against the
test's clock, then relays the session to this machine's PostgreSQL. A connection already open is
never checked again, as on RDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import trustme

from tests.conftest import PG
from tests.fake_servers import server_context

__all__ = ["IamLogin", "RdsPostgres", "rds_postgres"]

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
class RdsPostgres:
    port: int
    logins: list[IamLogin] = field(default_factory=list)


def _query(token: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(token.split("?", 1)[1]).items()}


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
) -> AsyncIterator[RdsPostgres]:
    """An RDS-like PostgreSQL for IAM user `user` on a free port, whose sessions run in `database`."""
    tls = server_context(ca)
    state = RdsPostgres(0)
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
            token = body.rstrip(b"\x00").decode()
            issued_for = f"localhost:{state.port}/?Action=connect&DBUser={user}&"
            login = IamLogin(token, kind == b"p" and token.startswith(issued_for))
            login.accepted = login.accepted and login.signed_at <= now() <= login.expires_at
            state.logins.append(login)
            if not login.accepted:
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
