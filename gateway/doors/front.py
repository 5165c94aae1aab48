"""What every request to `gateway serve` meets before its route's own handler.

In order: the request's exchange is made current (request id, access line, trace span), a
browser's CORS preflight is answered by the policy alone, and anything else but a socket or an
event stream is bounded by REQUEST_TIMEOUT, body read included (plus a second, so an operation's
own TIMEOUT error, raised at REQUEST_TIMEOUT, is the answer when it applies). A body past
MAX_BODY_BYTES (the app's client_max_size: aiohttp stops reading there) is answered as the ASGI
door answers it. Every answer then gets its headers (`stamp`): the request id, its CORS grant,
and `Vary: Origin`.

It wraps each route's handler rather than being an aiohttp middleware: aiohttp wraps every
middleware anew for every request (`functools.update_wrapper`, a partial, a current-app context
manager), ~8 us of a point lookup's ~200. So that requests matching no route meet it too, the
app ends its routes with `fallbacks`: every path answers a method it lacks with 405 and an
unknown path with 404, through the same wrapper.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Protocol

from aiohttp import hdrs, web

from gateway.deadlines import Deadline
from gateway.doors import cors
from gateway.doors.live import is_live
from gateway.doors.observed import CLIENT_GONE
from gateway.doors.refusals import too_large
from gateway.doors.responses import Answer, media_type, vary_also
from gateway.telemetry.recorder import REQUEST_ID_HEADER, Telemetry

__all__ = ["Wrap", "fallbacks", "front", "respond", "stamp"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_TOO_LONG = "the request took longer than REQUEST_TIMEOUT"


def respond(answer: Answer) -> web.Response:
    """`answer` as an aiohttp response."""
    # The media type as a header: aiohttp's content_type argument refuses parameters (charset).
    headers = {**answer.headers, hdrs.CONTENT_TYPE: answer.media_type}
    return web.Response(body=answer.body, status=answer.status, headers=headers)


def stamp(
    headers: MutableMapping[str, str],
    policy: cors.CorsPolicy,
    origin: str | None,
    request_id: str | None,
    vary: str = "Origin",
) -> None:
    """Give an answer's `headers` what every answer carries: the request id, the CORS grant for
    `origin` (a preflight's answer has its own: pass None), and `Vary: Origin`, or the route's
    `vary` (which names Origin too)."""
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    if origin is not None:
        headers.update(policy.allowed_headers(origin))
    current = headers.get(hdrs.VARY)
    headers[hdrs.VARY] = vary if current is None else vary_also(current, vary)  # most have none: no call


class Wrap(Protocol):
    """`front`'s wrapper: `vary`, what the route's answers vary by (Origin among them)."""

    def __call__(self, handler: Handler, vary: str = "Origin") -> Handler: ...


def front(telemetry: Telemetry, policy: cors.CorsPolicy, request_timeout: float) -> Wrap:
    """What wraps each route's handler: observing, answering preflights and bounding every request."""
    seconds = request_timeout + 1.0

    def wrap(handler: Handler, vary: str = "Origin") -> Handler:
        async def meet(request: web.Request) -> web.StreamResponse:
            headers = request.headers
            exchange, handle = telemetry.begin(request.method, request.path, headers)
            status = 500
            origin = headers.get(hdrs.ORIGIN)
            try:
                if cors.is_preflight(request.method, headers):
                    response: web.StreamResponse = respond(
                        policy.preflight(
                            headers[hdrs.ORIGIN],
                            headers[hdrs.ACCESS_CONTROL_REQUEST_METHOD],
                            headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, ""),
                        )
                    )
                    origin = None  # the preflight's answer says what it grants
                elif is_live(request):
                    # Sockets and streams last; their operations are bounded.
                    response = await handler(request)
                else:
                    try:
                        with Deadline(seconds):
                            response = await handler(request)
                    except TimeoutError:
                        method, path = request.method, request.path
                        log.warning("%s %s cut off after REQUEST_TIMEOUT (%gs)", method, path, seconds)
                        raise web.HTTPRequestTimeout(text=_TOO_LONG) from None
                status = response.status
                if not response.prepared:  # a stream or a socket got its headers from the view
                    stamp(response.headers, policy, origin, exchange.request_id, vary)
                return response
            except web.HTTPRequestEntityTooLarge:
                # Raised by request.read() in place of aiohttp's text: a GraphQL error, as on ASGI.
                response = respond(too_large().answer(media_type(headers.get(hdrs.ACCEPT, ""))))
                status = response.status
                stamp(response.headers, policy, origin, exchange.request_id, vary)
                return response
            except web.HTTPException as exc:
                status = exc.status
                stamp(exc.headers, policy, origin, exchange.request_id, vary)
                raise
            except asyncio.CancelledError:
                status = CLIENT_GONE
                raise
            finally:
                telemetry.end(exchange, handle, request.method, request.path, status)

        return meet

    return wrap


def fallbacks(router: web.UrlDispatcher, wrap: Wrap) -> None:
    """Answer what no route takes, through `wrap`: 405 (with Allow) for a method a path lacks, 404
    for an unknown path. Added after every route."""
    for resource in list(router.resources()):
        if isinstance(resource, web.Resource):
            allowed = {route.method for route in resource}
            resource.add_route(hdrs.METH_ANY, wrap(_refuse_method(allowed)))
    # [\s\S], not `.`: a path holding a decoded newline matched no route, so aiohttp answered its
    # 404 outside the wrapper (no request id, no access line).
    router.add_route(hdrs.METH_ANY, r"/{path:[\s\S]*}", wrap(_not_found))


def _refuse_method(allowed: set[str]) -> Handler:
    async def refuse(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMethodNotAllowed(request.method, allowed)

    return refuse


async def _not_found(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()
