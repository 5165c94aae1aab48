"""Fake database servers on loopback that ask for the password in clear, as RDS does for IAM tokens.

They speak just enough of each protocol to reach the point where the client sends its password,
record what arrived and whether TLS was up by then, and refuse the login. A real RDS instance
cannot run here; these show what the gateway would send it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trustme

# MySQL capability flags.
_LONG_PASSWORD, _CONNECT_WITH_DB, _PROTOCOL_41, _SSL = 0x1, 0x8, 0x200, 0x800
_TRANSACTIONS, _SECURE_CONNECTION, _MULTI_STATEMENTS, _MULTI_RESULTS = 0x2000, 0x8000, 0x10000, 0x20000
_PLUGIN_AUTH, _LENENC_CLIENT_DATA = 0x80000, 0x200000
# PostgreSQL's SSLRequest code, and its cleartext password request.
_SSL_REQUEST = 80877103
_CLEARTEXT_PASSWORD = 3


@dataclass
class Login:
    """One client's attempt: whether TLS was established, and the password it sent in clear."""

    tls: bool = False
    password: str | None = None
    bytes_before_tls: bytes = b""


@dataclass
class FakeServer:
    port: int
    logins: list[Login] = field(default_factory=list)


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A server's TLS set-up with a certificate from `ca` for `names` (localhost by default)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("localhost",))).configure_cert(context)
    return context


def mysql_packet(sequence: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload


def _greeting(offer_tls: bool) -> bytes:
    capabilities = _LONG_PASSWORD | _CONNECT_WITH_DB | _PROTOCOL_41 | _TRANSACTIONS | _SECURE_CONNECTION
    capabilities |= _MULTI_STATEMENTS | _MULTI_RESULTS | _PLUGIN_AUTH | _LENENC_CLIENT_DATA
    if offer_tls:
        capabilities |= _SSL
    scramble = b"abcdefghijklmnopqrst"
    return (
        b"\x0a8.0.35-fake\x00"
        + struct.pack("<I", 7)
        + scramble[:8]
        + b"\x00"
        + struct.pack("<H", capabilities & 0xFFFF)
        + b"\x21"
        + struct.pack("<H", 2)
        + struct.pack("<H", capabilities >> 16)
        + bytes([21])
        + b"\x00" * 10
        + scramble[8:]
        + b"\x00"
        + b"mysql_native_password\x00"
    )


def read_exactly(sock: socket.socket | ssl.SSLSocket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionResetError("the client hung up")
        data += chunk
    return data


def read_mysql(sock: socket.socket | ssl.SSLSocket) -> tuple[int, bytes]:
    header = read_exactly(sock, 4)
    return header[3], read_exactly(sock, int.from_bytes(header[:3], "little"))


def mysql_error(sequence: int, code: int, message: str) -> bytes:
    return mysql_packet(sequence, b"\xff" + struct.pack("<H", code) + b"#28000" + message.encode())


@asynccontextmanager
async def serving(serve_one: Callable[[socket.socket], None]) -> AsyncIterator[int]:
    """A listener on a free loopback port handing each client to `serve_one` in a thread; yields the port.

    Blocking sockets, not asyncio: a MySQL client starts TLS right after its SSL request without
    waiting for an answer, and reading exactly that request leaves the TLS hello unread for the
    handshake; and a refused handshake sends its alert before the socket closes.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(30)
            threading.Thread(target=serve_one, args=(raw,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        await asyncio.to_thread(acceptor.join, 10)
        listener.close()


@asynccontextmanager
async def fake_mysql(
    ca: trustme.CA, offer_tls: bool = True, context: ssl.SSLContext | None = None
) -> AsyncIterator[FakeServer]:
    """A MySQL server that switches every login to mysql_clear_password, records it, and refuses it.

    `context` is the server's TLS set-up: by default a certificate for localhost from `ca`.
    """
    context = context or server_context(ca)
    state = FakeServer(0)

    def serve_one(raw: socket.socket) -> None:
        login = Login()
        state.logins.append(login)
        sock: socket.socket | ssl.SSLSocket = raw
        try:
            sock.sendall(mysql_packet(0, _greeting(offer_tls)))
            sequence, payload = read_mysql(sock)
            flags = struct.unpack_from("<I", payload)[0]
            if flags & _SSL and len(payload) == 32:  # an SSL request: TLS before anything else
                sock = context.wrap_socket(raw, server_side=True)
                login.tls = True
                sequence, payload = read_mysql(sock)
            else:
                login.bytes_before_tls = payload
            # The handshake response; then switch to the plugin RDS uses for IAM tokens.
            sock.sendall(mysql_packet(sequence + 1, b"\xfemysql_clear_password\x00"))
            sequence, payload = read_mysql(sock)
            login.password = payload.rstrip(b"\x00").decode()
            sock.sendall(mysql_error(sequence + 1, 1045, "Access denied for user (fake server)"))
        except (OSError, ssl.SSLError):
            pass  # the client hung up: what it sent until then is recorded
        finally:
            sock.close()

    async with serving(serve_one) as state.port:
        yield state


@asynccontextmanager
async def fake_postgres(ca: trustme.CA, context: ssl.SSLContext | None = None) -> AsyncIterator[FakeServer]:
    """A PostgreSQL server that accepts TLS, asks for a cleartext password, records it, and refuses it.

    `context` is the server's TLS set-up: by default a certificate for localhost from `ca`.
    """
    tls = context or server_context(ca)
    state = FakeServer(0)

    def serve_one(raw: socket.socket) -> None:
        login = Login()
        state.logins.append(login)
        sock: socket.socket | ssl.SSLSocket = raw
        try:
            length, code = struct.unpack("!II", read_exactly(sock, 8))
            if code == _SSL_REQUEST:
                sock.sendall(b"S")
                sock = tls.wrap_socket(raw, server_side=True)
                login.tls = True
                (length,) = struct.unpack("!I", read_exactly(sock, 4))
                read_exactly(sock, length - 4)  # the startup message
            else:
                login.bytes_before_tls = read_exactly(sock, length - 8)
            sock.sendall(b"R" + struct.pack("!II", 8, _CLEARTEXT_PASSWORD))
            kind = read_exactly(sock, 1)
            (length,) = struct.unpack("!I", read_exactly(sock, 4))
            body = read_exactly(sock, length - 4)
            if kind == b"p":
                login.password = body.rstrip(b"\x00").decode()
            fields = b"SFATAL\x00C28P01\x00MPAM authentication failed (fake server)\x00\x00"
            sock.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)
        except (OSError, ssl.SSLError):
            pass
        finally:
            sock.close()

    async with serving(serve_one) as state.port:
        yield state
