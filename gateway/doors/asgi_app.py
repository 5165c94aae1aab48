"""The ASGI door for serverless hosts (Vercel): the same executor behind Starlette, opened on first use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL

from gateway.auth.identity import Identity
from gateway.auth.tokens import TokenRejected
from gateway.doors import cors
from gateway.doors.graphql_view import ExecutorView
from gateway.doors.health import readiness
from gateway.doors.refusals import Refusal, invalid_token, unavailable
from gateway.doors.serverless import serverless_profile
from gateway.errors import GatewayError
from gateway.execution.executor import Executor
from gateway.execution.operation import read_json_operation
from gateway.execution.policy import Policy
from gateway.schema import RequestContext
from gateway.settings import Settings

__all__ = ["create_asgi_app"]


class _GraphQLView(ExecutorView, GraphQL[RequestContext, None]):  # type: ignore[misc]
    """Strawberry's ASGI view; the executor runs what it parses."""

    def identity_of(self, request: Request) -> Identity | None:
        identity: Identity | None = request.scope["state"]["identity"]
        return identity


class _GraphQLDoor:
    """/graphql: opens the data source first (a failure is a 503), answers a JSON POST of one operation
    through the executor, and hands anything else to the view."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._view = _GraphQLView(executor.schema, graphql_ide="graphiql")
        self._view.executor = executor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._executor.open()
            identity = await self._executor.identify(_header(scope, b"authorization") or None)
        except GatewayError as exc:
            await _refusal(unavailable(exc))(scope, receive, send)
            return
        except TokenRejected as exc:
            await _refusal(invalid_token(exc))(scope, receive, send)
            return
        # The view builds its own Request over this scope: the identity travels in its state.
        scope.setdefault("state", {})["identity"] = identity
        media_type = _header(scope, b"content-type").split(";")[0].strip().lower()
        if scope["method"] == "POST" and media_type == "application/json":
            body = await _read_body(receive)
            operation = read_json_operation(body, _header(scope, b"accept"))
            if operation is not None:
                answer = await self._executor.answer(operation, Request(scope, receive), identity)
                if answer is not None:
                    await Response(answer, media_type="application/json")(scope, receive, send)
                    return
            receive = _replay(body, receive)
        await self._view(scope, receive, send)


def _refusal(refusal: Refusal) -> Response:
    status, headers, body = refusal
    return JSONResponse(body, status_code=status, headers=headers)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives Strawberry the body already read, then the rest of the connection."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def create_asgi_app(settings: Settings, policy: Policy | None = None) -> Starlette:
    """Wire the ASGI app; nothing connects until the first request."""
    executor = Executor(serverless_profile(settings), policy)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        status, body = await readiness(executor)
        return JSONResponse(body, status_code=status)

    async def root(request: Request) -> Response:
        return RedirectResponse("/graphql", status_code=302)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await executor.close()

    app = Starlette(
        routes=[
            Route("/graphql", _GraphQLDoor(executor)),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/", root),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=cors.ALLOWED_METHODS,
                allow_headers=cors.ALLOWED_HEADERS,
                allow_credentials=cors.ALLOW_CREDENTIALS,
                max_age=cors.MAX_AGE,
            )
        ],
        lifespan=lifespan,
    )
    app.state.executor = executor
    return app
