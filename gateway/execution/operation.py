"""One GraphQL operation as a request carries it, and how a JSON body is read into one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import ErrorCode, GatewayError
from gateway.schema import BATCH_MAX_OPERATIONS

__all__ = ["MalformedRequest", "Operation", "read_json", "read_json_operation"]

# Fields of an operation object, and the JSON types each may hold besides null.
_FIELDS: dict[str, tuple[type, str]] = {
    "query": (str, "a string"),
    "operationName": (str, "a string"),
    "variables": (dict, "an object"),
    "extensions": (dict, "an object"),
}


class MalformedRequest(GatewayError):
    """A request no GraphQL view can read; the door answers 400 BAD_REQUEST with this message."""

    code = ErrorCode.BAD_REQUEST


@dataclass(slots=True)  # not frozen: a frozen dataclass is built through object.__setattr__
class Operation:
    """What a request asks to run: the document, the operation's name, variables and extensions."""

    query: str | None
    operation_name: str | None = None
    variables: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None
    document_id: str | None = None  # a persisted document's id (`documentId`), instead of `query`


def read_json(data: bytes | str) -> Any:
    """The JSON value of a request body or query parameter.

    Raises json.JSONDecodeError when it is not JSON, and MalformedRequest when it cannot be read
    at all: not UTF-8, nested deeper than a parser's stack allows, holding an integer too long to
    convert, or a lone surrogate (text no database or encoder accepts).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass  # NaN, Infinity, lone surrogates, very deep nesting: what orjson refuses, json may read
    try:
        text = data.decode() if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise MalformedRequest("the body is not UTF-8 text") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise MalformedRequest("the JSON is nested too deeply") from None
    except ValueError:  # an integer of more than 4,300 digits (Python's int_max_str_digits)
        raise MalformedRequest("the JSON holds a number too long to read") from None
    _check_read(value)
    return value


# orjson's limit. json reads deeper from Python 3.12 on (~10,000 levels against 3.11's ~1,000), which
# would let a request carry values deeper than code that walks them by recursion can follow.
_MAX_DEPTH = 1024


def _check_read(value: Any) -> None:
    """MalformedRequest if `value` (what json read where orjson refused) is nested deeper than
    orjson reads, or any string in it (keys too) holds a lone surrogate."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            strings: list[str] = [item]
        elif isinstance(item, (dict, list)) and depth > _MAX_DEPTH:
            raise MalformedRequest("the JSON is nested too deeply")
        elif isinstance(item, dict):
            strings = list(item)
            pending.extend((inner, depth + 1) for inner in item.values())
        elif isinstance(item, list):
            pending.extend((inner, depth + 1) for inner in item)
            continue
        else:
            continue
        for string in strings:
            try:
                string.encode()
            except UnicodeEncodeError:
                raise MalformedRequest("the JSON holds a lone UTF-16 surrogate (\\ud800-\\udfff)") from None


def _check_operation(item: Any, where: str) -> None:
    """MalformedRequest naming what in `item`, an operation of a batch, Strawberry's view cannot run."""
    if not isinstance(item, dict):
        raise MalformedRequest(f"{where} is {_json_type(item)}, not an object holding an operation")
    for name, (kind, described) in _FIELDS.items():
        value = item.get(name)
        if value is not None and not isinstance(value, kind):
            raise MalformedRequest(f"{where}: `{name}` must be {described} or null")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def read_json_operation(body: bytes, accept: str) -> Operation | None:
    """The one operation in a JSON `body`, or None for anything Strawberry's view must judge or stream.

    The view then answers malformed operations with its own 400s and runs batches through the
    executor. Raises MalformedRequest for a body the view cannot read (it answered those 500):
    not UTF-8, nested too deeply, a JSON value that is neither an object nor an array, an
    `operationName` that is not a string, a batch holding anything but operation objects, or more
    than BATCH_MAX_OPERATIONS of them.
    """
    try:
        payload = read_json(body)
    except json.JSONDecodeError:
        return None  # the view answers with its own message
    if isinstance(payload, list):
        if len(payload) > BATCH_MAX_OPERATIONS:
            # Refused before any operation is read; the view's own refusal was an uncoded text/plain 400.
            raise MalformedRequest(
                f"a batch holds at most {BATCH_MAX_OPERATIONS} operations (this one {len(payload)})"
            )
        for position, item in enumerate(payload):
            _check_operation(item, f"batch item {position}")
        return None
    if not isinstance(payload, dict):
        raise MalformedRequest(f"the body is {_json_type(payload)}, not an object holding an operation")
    name = payload.get("operationName")
    if not (name is None or isinstance(name, str)):
        # The view does not check it: an object or array failed deep in execution as a 500.
        raise MalformedRequest("`operationName` must be a string or null")
    lowered = accept.lower()
    if "text/event-stream" in lowered or "multipart/mixed" in lowered:
        return None  # a streamed answer (SSE, multipart subscriptions): Strawberry's view streams
    query, variables, extensions = payload.get("query"), payload.get("variables"), payload.get("extensions")
    document_id = payload.get("documentId")
    if not (variables is None or isinstance(variables, dict)):
        return None
    if not (extensions is None or isinstance(extensions, dict)):
        return None
    if not (document_id is None or isinstance(document_id, str)):
        return None
    # A persisted operation names its document instead of sending it (execution/persisted.py).
    persisted = document_id is not None or (extensions is not None and "persistedQuery" in extensions)
    if not (isinstance(query, str) or (query is None and persisted)):
        return None
    return Operation(query, name, variables, extensions, document_id)
