"""Every MySQL login: TLS first when DB_SSL is on, or nothing is sent at all; a refusing greeting named.

aiomysql continues in plaintext when a server's greeting does not offer TLS, even with `ssl=`
given: it would send the user, the password's scramble (or, to a server asking for
mysql_clear_password as RDS IAM does, the password or token itself) and `init_command`
unencrypted. `TlsFirstConnection` checks the greeting of each connection, the pool's later ones
included, and closes the socket before the handshake response when TLS is not on offer. A server
that greets with an error packet instead (too many connections, host blocked, host not allowed)
is reported with its own error code and message.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiomysql
import pymysql
from pymysql.constants import CLIENT, CR

from gateway.connect.credentials import Credentials
from gateway.datasources.protocol import DataSourceUnavailable

__all__ = [
    "ClosedBeforeGreeting",
    "GreetingWithoutTls",
    "RefusedBeforeHandshake",
    "TlsFirstConnection",
    "connect",
]

# Error numbers from 2000 up are the client library's own (lost connection...), not a server's refusal.
_CLIENT_ERRORS_FROM = 2000


class RefusedBeforeHandshake(DataSourceUnavailable):
    """The server greeted with an error packet: it refuses this client before any login."""

    def __init__(self, host: str, port: int, error_number: int, server_message: str) -> None:
        # Not `code`: GatewayError.code is the API's error code (UNAVAILABLE).
        self.host, self.port = host, port
        self.error_number, self.server_message = error_number, server_message
        super().__init__(
            f"MySQL server at {host}:{port} refused the connection before the handshake: "
            f"{error_number} {server_message}"
        )


class ClosedBeforeGreeting(DataSourceUnavailable):
    """The server accepted the TCP connection and closed it without a greeting."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"MySQL server at {host}:{port} closed the connection before its greeting")


class GreetingWithoutTls(DataSourceUnavailable):
    """The greeting did not offer TLS, so the connection was closed before sending anything."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        super().__init__(f"the MySQL server at {host}:{port} did not offer TLS in its greeting")


def _printable(text: str) -> str:
    # The message is shown on one line of a report; the server chose its bytes.
    return "".join(char if char.isprintable() else " " for char in text).strip()


class TlsFirstConnection(aiomysql.Connection):  # type: ignore[misc]
    """aiomysql's connection, which with an SSL context sends nothing unless TLS is established first."""

    async def _get_server_information(self) -> None:
        try:
            await super()._get_server_information()
        except pymysql.err.MySQLError as exc:
            number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            if number == CR.CR_SERVER_LOST:
                raise ClosedBeforeGreeting(self._host, self._port) from exc
            if 0 < number < _CLIENT_ERRORS_FROM and len(exc.args) > 1:
                message = _printable(str(exc.args[1]))
                raise RefusedBeforeHandshake(self._host, self._port, number, message) from exc
            raise

    async def _request_authentication(self) -> None:
        if self._ssl_context is not None and not self.server_capabilities & CLIENT.SSL:
            raise GreetingWithoutTls(self._host, self._port)
        await super()._request_authentication()

    @property
    def encrypted(self) -> bool:
        """Whether this connection's socket speaks TLS."""
        writer = self._writer
        return writer is not None and writer.get_extra_info("ssl_object") is not None


async def connect(
    credentials: Credentials, context: ssl.SSLContext | None, timeout: float, **options: Any
) -> TlsFirstConnection:
    """A logged-in connection, the whole handshake bounded by `timeout` (aiomysql's bounds TCP only)."""
    conn = TlsFirstConnection(
        host=credentials.host,
        port=credentials.port,
        user=credentials.user,
        # aiomysql sends the password as Latin-1; servers and the mysql client take it as UTF-8.
        password=credentials.password.get_secret_value().encode("utf-8").decode("latin-1"),
        db=credentials.database,
        connect_timeout=timeout,
        ssl=context,
        loop=asyncio.get_running_loop(),
        **options,
    )
    try:
        async with asyncio.timeout(timeout):
            await conn._connect()
    except BaseException:
        conn.close()
        raise
    if context is not None and not conn.encrypted:
        conn.close()
        raise GreetingWithoutTls(credentials.host, credentials.port)
    return conn
