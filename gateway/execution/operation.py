"""One GraphQL operation as a request carries it, and how a JSON body is read into one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Operation", "read_json_operation"]

# Accept values asking for a streamed answer (SSE, multipart subscriptions): Strawberry's view streams.
_STREAMED = ("text/event-stream", "multipart/mixed")


@dataclass(frozen=True, slots=True)
class Operation:
    """What a request asks to run: the document, the operation's name, variables and extensions."""

    query: str | None
    operation_name: str | None = None
    variables: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None
    document_id: str | None = None  # a persisted document's id (`documentId`), instead of `query`


def read_json_operation(body: bytes, accept: str) -> Operation | None:
    """The one operation in a JSON `body`, or None for anything Strawberry's view must judge or stream.

    The view then answers malformed bodies with its own 400s and runs batches through the executor.
    """
    lowered = accept.lower()
    if any(media in lowered for media in _STREAMED):
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the view answers with its own message (it also reads what orjson refuses)
    if not isinstance(payload, dict):
        return None  # a batch
    query, name = payload.get("query"), payload.get("operationName")
    variables, extensions = payload.get("variables"), payload.get("extensions")
    if not isinstance(query, str) or not (name is None or isinstance(name, str)):
        return None
    if not (variables is None or isinstance(variables, dict)):
        return None
    if not (extensions is None or isinstance(extensions, dict)):
        return None
    return Operation(query, name, variables, extensions)
