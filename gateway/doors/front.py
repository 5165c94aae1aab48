"""The aiohttp door's one middleware: what every request meets before its route.

In order: the request's exchange is made current (request id, access line, trace span), a
browser's CORS preflight is answered by the policy alone, and anything else but a socket or an
event stream is bounded by REQUEST_TIMEOUT, body read included (plus a second, so an operation's
own TIMEOUT error, raised at REQUEST_TIMEOUT, is the answer when it applies).

One middleware rather than three: aiohttp wraps each middleware anew for every request
(`functools.update_wrapper`, a partial, a current-app context manager), about 4% of a point
lookup's time per layer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from gateway.deadlines import deadline
from gateway.doors import cors
from gateway.doors.live import is_live
from gateway.doors.observed import CLIENT_GONE
from gateway.doors.responses import Answer
from gateway.telemetry.recorder import REQUEST_ID_HEADER, Telemetry

__all__ = ["front", "respond"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_TOO_LONG = "the request took longer than REQUEST_TIMEOUT"


def respond(answer: Answer) -> web.Response:
    """`answer` as an aiohttp response."""
    # The media type as a header: aiohttp's content_type argument refuses parameters (charset).
    headers = {**answer.headers, hdrs.CONTENT_TYPE: answer.media_type}
    return web.Response(body=answer.body, status=answer.status, headers=headers)


def front(telemetry: Telemetry, policy: cors.CorsPolicy, request_timeout: float) -> Middleware:
    """The middleware observing, answering preflights and bounding every request."""
    seconds = request_timeout + 1.0

    @web.middleware
    async def meet(request: web.Request, handler: Handler) -> web.StreamResponse:
        exchange, handle = telemetry.begin(request.method, request.path, request.headers)
        status = 500
        try:
            if cors.is_preflight(request.method, request.headers):
                response: web.StreamResponse = respond(
                    policy.preflight(
                        request.headers[hdrs.ORIGIN],
                        request.headers[hdrs.ACCESS_CONTROL_REQUEST_METHOD],
                        request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, ""),
                    )
                )
            elif is_live(request):
                response = await handler(request)  # sockets and streams last; their operations are bounded
            else:
                try:
                    async with deadline(seconds):
                        response = await handler(request)
                except TimeoutError:
                    method, path = request.method, request.path
                    log.warning("%s %s cut off after REQUEST_TIMEOUT (%gs)", method, path, seconds)
                    raise web.HTTPRequestTimeout(text=_TOO_LONG) from None
            status = response.status
            response.headers[REQUEST_ID_HEADER] = exchange.request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = exchange.request_id
            raise
        except asyncio.CancelledError:
            status = CLIENT_GONE
            raise
        finally:
            telemetry.end(exchange, handle, request.method, request.path, status)

    return meet
