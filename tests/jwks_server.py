"""A JWK Set served on 127.0.0.1, as an identity provider serves its keys; it counts the requests."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

__all__ = ["JwksServer"]


class JwksServer:
    """Serves `keys` at `url`; `publish` changes them (key rotation), `status` makes it fail, `body`
    replaces the document with raw bytes (a broken provider), and while `held` is set each answer
    waits for `release()` (a slow provider)."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.status = 200
        self.body: bytes | None = None
        self.requests = 0
        self.requested = asyncio.Event()
        self.held = False
        self._released = asyncio.Event()
        self.url = ""
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._answer)
        self._runner = web.AppRunner(app)

    def publish(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)

    def release(self) -> None:
        self._released.set()

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/.well-known/jwks.json"

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.requested.set()
        if self.held:
            await self._released.wait()
        if self.status != 200:
            return web.json_response({"error": "unavailable"}, status=self.status)
        if self.body is not None:
            return web.Response(body=self.body, content_type="application/json")
        return web.json_response({"keys": self.keys})
