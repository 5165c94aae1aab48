"""REQUEST_TIMEOUT on `gateway serve`: a request whose body stalls, or that runs too long, is cut off."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.doors.live import is_live
from gateway.settings import Settings

__all__ = ["deadline"]

log = logging.getLogger(__name__)


def deadline(settings: Settings) -> Middleware:
    """A middleware bounding each request, body read included, by REQUEST_TIMEOUT (plus a second, so
    an operation's own TIMEOUT error, raised at REQUEST_TIMEOUT, is the answer when it applies)."""
    seconds = settings.request_timeout + 1.0

    @web.middleware
    async def bounded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_live(request):
            return await handler(request)  # sockets and event streams last; their operations are bounded
        try:
            async with asyncio.timeout(seconds):
                return await handler(request)
        except TimeoutError:
            log.warning("%s %s cut off after REQUEST_TIMEOUT (%gs)", request.method, request.path, seconds)
            raise web.HTTPRequestTimeout(text="the request took longer than REQUEST_TIMEOUT") from None

    return bounded
