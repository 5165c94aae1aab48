"""Read a MySQL server's greeting to learn whether it offers TLS, before sending it a single byte.

aiomysql silently continues in plaintext when the server does not advertise TLS, after which it
would send the login and `init_command` unencrypted; this check refuses such a server first.
A server that greets with an error packet instead (too many connections, host blocked, host not
allowed) is reported with its own error code and message.
"""

from __future__ import annotations

import asyncio
import errno
import struct

from gateway.datasources.protocol import DataSourceUnavailable

__all__ = ["RefusedBeforeHandshake", "server_offers_tls"]

_CLIENT_SSL = 0x0800
_ERROR_PACKET = 0xFF
_SQL_STATE_MARKER = ord("#")
_SQL_STATE_LENGTH = 5


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


def _refusal(packet: bytes, host: str, port: int) -> RefusedBeforeHandshake:
    """The error in an ERR packet: 0xFF, the code (2 bytes, little-endian), ['#' + SQL state], message."""
    (code,) = struct.unpack_from("<H", packet, 1)
    message = packet[3:]
    if message[:1] == bytes([_SQL_STATE_MARKER]):
        message = message[1 + _SQL_STATE_LENGTH :]
    text = message.decode("utf-8", "replace")
    # The message is shown on one line of a report; the server chose its bytes.
    printable = "".join(char if char.isprintable() else " " for char in text).strip()
    return RefusedBeforeHandshake(host, port, code, printable)


async def server_offers_tls(host: str, port: int, timeout: float) -> bool:
    """Whether the greeting's capability flags offer TLS; RefusedBeforeHandshake if it is an error."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            header = await reader.readexactly(4)
            length = int.from_bytes(header[:3], "little")
            greeting = await reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            # An OSError, as a refused or reset connection is, so callers report it the same way.
            raise ConnectionResetError(
                errno.ECONNRESET, f"MySQL server at {host}:{port} closed the connection before its greeting"
            ) from exc
        finally:
            writer.close()
    if greeting[0] == _ERROR_PACKET:
        raise _refusal(greeting, host, port)
    # protocol version, NUL-terminated server version, thread id, 8 bytes of scramble, a filler.
    after_version = greeting.index(b"\0", 1) + 1
    (capabilities,) = struct.unpack_from("<H", greeting, after_version + 4 + 8 + 1)
    return bool(capabilities & _CLIENT_SSL)
