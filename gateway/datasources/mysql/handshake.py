"""Read a MySQL server's greeting to learn whether it offers TLS, before sending it a single byte.

aiomysql silently continues in plaintext when the server does not advertise TLS, after which it
would send the login and `init_command` unencrypted; this check refuses such a server first.
"""

from __future__ import annotations

import asyncio
import struct

__all__ = ["server_offers_tls"]

_CLIENT_SSL = 0x0800
_ERROR_PACKET = 0xFF


async def server_offers_tls(host: str, port: int, timeout: float) -> bool | None:
    """True or False from the greeting's capability flags; None if the server greeted with an error."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            header = await reader.readexactly(4)
            length = int.from_bytes(header[:3], "little")
            greeting = await reader.readexactly(length)
        finally:
            writer.close()
    if greeting[0] == _ERROR_PACKET:
        return None  # e.g. "host blocked" or "too many connections": the real connect reports it
    # protocol version, NUL-terminated server version, thread id, 8 bytes of scramble, a filler.
    after_version = greeting.index(b"\0", 1) + 1
    (capabilities,) = struct.unpack_from("<H", greeting, after_version + 4 + 8 + 1)
    return bool(capabilities & _CLIENT_SSL)
