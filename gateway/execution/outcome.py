"""What running one operation gives a door: a compiled response body, or Strawberry's result."""

from __future__ import annotations

from typing import Any

import orjson
from strawberry.types import ExecutionResult

__all__ = ["Outcome", "as_result", "encode", "with_extension"]

encode = orjson.dumps  # the JSON encoder of every GraphQL response

# A compiled answer is the response body itself; anything else is Strawberry's result.
Outcome = bytes | ExecutionResult


def as_result(outcome: Outcome) -> ExecutionResult:
    """`outcome` as a result, for a transport that sends results (a socket, a stream, a batch)."""
    if isinstance(outcome, bytes):
        # A compiled answer has data and no errors.
        return ExecutionResult(data=orjson.loads(outcome)["data"], errors=None)
    return outcome


def with_extension(outcome: Outcome, key: str, value: Any) -> Outcome:
    """`outcome` with `extensions.key` set; a compiled body has no extensions of its own."""
    if isinstance(outcome, bytes):
        return outcome[:-1] + b',"extensions":{"' + key.encode() + b'":' + encode(value) + b"}}"
    outcome.extensions = {**(outcome.extensions or {}), key: value}
    return outcome
