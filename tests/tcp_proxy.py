"""A loopback TCP proxy that can be cut and restored, strip TLS from MySQL greetings, or hold
a reply back, to play the network.

Each proxied connection records what the client sent through it, so a test can prove what a
client did (or did not) send after a greeting it was shown.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

# The CLIENT_SSL capability flag, in the lower two bytes of a MySQL greeting's capabilities.
CLIENT_SSL = 0x0800


@dataclass
class Proxied:
    """One client connection through the proxy."""

    index: int
    greeting_stripped: bool = False
    hold: float = 0.0  # seconds the next reply waits before it goes on to the client
    sent: bytearray = field(default_factory=bytearray)  # every byte the client sent towards the target
    silent: bool = False  # forwards nothing more, either way, and is never closed


def strip_tls_from_greeting(packet: bytes) -> bytes:
    """A MySQL greeting packet (header included) without the CLIENT_SSL flag; an error packet unchanged."""
    payload = packet[4:]
    if not payload or payload[0] == 0xFF:
        return packet
    # protocol version, NUL-terminated server version, thread id (4), scramble (8), filler (1), flags.
    flags_at = 4 + payload.index(b"\0", 1) + 1 + 4 + 8 + 1
    flags = int.from_bytes(packet[flags_at : flags_at + 2], "little") & ~CLIENT_SSL
    return packet[:flags_at] + flags.to_bytes(2, "little") + packet[flags_at + 2 :]


class TcpProxy:
    """Forwards 127.0.0.1:`port` to a target; `cut()` drops every connection and refuses new ones.

    With `strip_tls_from` set to n, the MySQL greeting of the n-th connection (counting from 0)
    and of every later one reaches the client without the TLS capability flag.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.sent = bytearray()  # every byte clients sent towards the target
        self.connections: list[Proxied] = []
        self.strip_tls_from: int | None = None
        self._slow: tuple[bytes, float] | None = None
        self.held = 0  # replies held back
        self.released = 0  # of those, how many have gone on to the client
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._cut = asyncio.Event()  # set by `cut()`: what a silent connection waits for

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        server, self._server = self._server, None
        self._flowing.set()  # what waited on a freeze now meets the cut
        self._cut.set()
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            # Since Python 3.12 this waits for every connection to end, so it comes after the aborts.
            await server.wait_closed()

    def freeze(self) -> None:
        """Forward nothing more, either way, and leave new connections unanswered, as a host that
        has stopped does; no connection is closed. `thaw()` lets everything held go on."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def silence_open(self) -> None:
        """The connections open now forward nothing more, either way, and stay open; new ones
        flow: a failover behind the same name, the old host gone without a word."""
        for proxied in self.connections:
            proxied.silent = True

    def hold_replies_to(self, marker: bytes, seconds: float) -> None:
        """The reply to what a client sends containing `marker` reaches it `seconds` late: the
        server has answered (a commit has landed) while the client still waits."""
        self._slow = (marker, seconds)

    def strip_tls_after(self, clean: int = 0) -> None:
        """Strip TLS from the greetings of new connections, after `clean` more that are left alone."""
        self.strip_tls_from = len(self.connections) + clean

    @property
    def stripped(self) -> list[Proxied]:
        """The connections whose greeting was stripped of TLS."""
        return [conn for conn in self.connections if conn.greeting_stripped]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxied = Proxied(len(self.connections))
        self.connections.append(proxied)
        self._writers.add(writer)
        await self._flowing.wait()
        if self._server is None:  # cut while frozen
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        strip = self.strip_tls_from is not None and proxied.index >= self.strip_tls_from

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError, asyncio.IncompleteReadError):
                if strip and not record:
                    header = await src.readexactly(4)
                    body = await src.readexactly(int.from_bytes(header[:3], "little"))
                    dst.write(strip_tls_from_greeting(header + body))
                    proxied.greeting_stripped = True
                while data := await src.read(65536):
                    if record:
                        self.sent += data
                        proxied.sent += data
                        if self._slow is not None and self._slow[0] in data:
                            proxied.hold = self._slow[1]
                    elif proxied.hold:
                        hold, proxied.hold = proxied.hold, 0.0
                        self.held += 1
                        await asyncio.sleep(hold)
                        self.released += 1
                    await self._flowing.wait()
                    if proxied.silent:
                        await self._cut.wait()
                        break
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        self._writers -= {writer, up_writer}
