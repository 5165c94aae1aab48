"""Requests handed straight to an ASGI app, as a serverless host or an ASGI server would hand them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["asgi_post", "asgi_post_chunks"]


async def asgi_post(app: Any, payload: dict[str, Any]) -> tuple[int, bytes]:
    """POST `payload` as JSON to /graphql of `app`: the response's status and body."""
    return await asgi_post_chunks(app, iter([json.dumps(payload).encode()]))


async def asgi_post_chunks(app: Any, chunks: Iterator[bytes]) -> tuple[int, bytes]:
    """POST a JSON body to /graphql of `app`, one message per chunk, each taken from `chunks` only
    when the app asks for it: the response's status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"gateway.test")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    ended = False
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal ended
        if ended:
            return {"type": "http.disconnect"}
        chunk = next(chunks, None)
        ended = chunk is None
        return {"type": "http.request", "body": chunk or b"", "more_body": not ended}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])
