"""Subscribing to a running gateway the way browsers and apps do: graphql-transport-ws, the legacy
graphql-ws (subscriptions-transport-ws), and graphql-sse over one HTTP response."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

__all__ = ["EventStream", "Socket", "open_socket", "open_stream"]

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
_WAIT = 15.0  # seconds any one message may take
_CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


class Socket:
    """One GraphQL WebSocket; messages the protocol uses to keep alive are skipped."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.protocol = ws.protocol

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send connection_init; the answer (connection_ack, or the close)."""
        await self.send({"type": "connection_init", **({"payload": payload} if payload is not None else {})})
        return await self.receive()

    async def subscribe(self, op_id: str, query: str, **variables: Any) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.send({"id": op_id, "type": kind, "payload": {"query": query, "variables": variables}})

    async def receive(self, wait: float = _WAIT) -> dict[str, Any]:
        """The next message; a close is returned as {"type": "closed", "code": …, "reason": …}."""
        async with asyncio.timeout(wait):
            while True:
                message = await self.ws.receive()
                if message.type == aiohttp.WSMsgType.TEXT:
                    decoded: dict[str, Any] = json.loads(message.data)
                    if decoded.get("type") in ("ka", "ping", "pong"):
                        continue
                    return decoded
                if message.type in _CLOSED:
                    return {"type": "closed", "code": self.ws.close_code, "reason": message.extra}
                if message.type == aiohttp.WSMsgType.ERROR:
                    return {"type": "closed", "code": self.ws.close_code, "reason": str(message.data)}

    async def next_payload(self, op_id: str) -> dict[str, Any]:
        """The payload of the next `next` (or legacy `data`) message of `op_id`; fails on anything else."""
        message = await self.receive()
        assert message.get("id") == op_id and message["type"] in ("next", "data"), message
        payload: dict[str, Any] = message["payload"]
        return payload


@asynccontextmanager
async def open_socket(
    url: str, protocol: str = TRANSPORT_WS, headers: dict[str, str] | None = None, autoping: bool = True
) -> AsyncIterator[Socket]:
    """A WebSocket to `url` (http:// is fine) speaking `protocol`, not yet initialised; without
    `autoping` the server's ping frames reach `ws.receive()` (and are not answered)."""
    async with aiohttp.ClientSession() as http:
        ws_url = url.replace("http://", "ws://", 1)
        connecting = http.ws_connect(ws_url, protocols=(protocol,), headers=headers or {}, autoping=autoping)
        async with connecting as ws:
            yield Socket(ws)


class EventStream:
    """A graphql-sse response (distinct connections mode): its events, in order."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def event(self, wait: float = _WAIT) -> tuple[str, Any]:
        """The next event's name and data (JSON decoded when not empty); comments (pings) are skipped."""
        name, data = "", ""
        async with asyncio.timeout(wait):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    return "closed", None
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    continue
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "" and name:
                    return name, json.loads(data) if data else None


@asynccontextmanager
async def open_stream(
    url: str, query: str, variables: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[EventStream]:
    """POST `query` asking for text/event-stream; the response must be a 200 event stream."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url,
            json={"query": query, "variables": variables or {}},
            headers={"Accept": "text/event-stream", **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.content_type == "text/event-stream", response.content_type
        yield EventStream(response)
