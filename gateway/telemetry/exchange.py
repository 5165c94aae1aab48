"""One HTTP request as telemetry sees it: its id, the operations it ran, their errors.

The door makes one per request and makes it current (a context variable, so the executor, the
log lines and the tasks of a batch all find it without being handed it).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = ["CURRENT", "MAX_RECORDED", "Exchange", "request_id_from"]

# An incoming X-Request-Id is kept only if it is short and made of characters safe in a log line
# and a header; anything else (a newline, a quote, 10 KB) is replaced by one of ours.
_SANE_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")


def request_id_from(incoming: str | None) -> str:
    """The request id: the client's X-Request-Id when it is sane, else a new one (32 hex digits)."""
    if incoming and _SANE_ID.fullmatch(incoming):
        return incoming
    # Unique, not secret: a random prefix per process and a counter, without a system call each.
    return f"{_prefix}{next(_counter):016x}"


def _start_sequence() -> None:
    global _prefix, _counter
    _prefix, _counter = os.urandom(8).hex(), itertools.count()


_prefix, _counter = "", itertools.count()
_start_sequence()
os.register_at_fork(after_in_child=_start_sequence)  # a forked worker must not repeat its parent's ids


@dataclass(slots=True)
class Exchange:
    """What one request did, filled in as it runs; read by the access log and the error counters."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    # (name, type) of each operation that resolved to a definition in its document.
    operations: list[tuple[str | None, str]] = field(default_factory=list)
    # (code, message as the client received it) of each error in the answer.
    errors: list[tuple[str, str]] = field(default_factory=list)
    # Codes of the door's refusals (the executor counts its operations' errors itself).
    refusals: list[str] = field(default_factory=list)

    def refused(self, code: str, message: str) -> None:
        """The door answered with an error before any operation ran."""
        self.refusals.append(code)
        if len(self.errors) < MAX_RECORDED:
            self.errors.append((code, message))


# A WebSocket or event stream is one exchange for its whole life: what it records is bounded.
MAX_RECORDED = 50

CURRENT: ContextVar[Exchange | None] = ContextVar("gateway_exchange", default=None)
