"""The access log (one line per request) and the GraphQL error log, without values or tokens.

A line names the request id, method, path (never the query string: GET carries variables there),
status, duration, the operations' names and types, and their error codes. Error messages are
logged cut before any value they quote: graphql-core and our input checks quote the rejected
value ("Variable '$email' got invalid value 'x@'", "Value 'x' does not exist in 'Order' enum."),
and a value may be a password. Quotes hold names and values alike, so a message is cut at its
first quote of either kind when no marker of a value cuts it first.
"""

from __future__ import annotations

import logging
import re

from gateway.errors import ErrorCode
from gateway.telemetry.exchange import Exchange

__all__ = ["log_exchange", "logging_exchanges", "safe_message"]

access_log = logging.getLogger("gateway.access")
error_log = logging.getLogger("gateway.graphql")

_SERVER_SIDE = frozenset({ErrorCode.INTERNAL, ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT})
# Our BadUserInput messages: "input.email: 'x' is not an email address".
_OUR_INPUT_ERROR = re.compile(r"([A-Za-z_][\w.\[\]]*): ")
# Where a message begins to quote a value: cut there (the marker itself kept when it reads well).
_VALUE_AFTER = (" got invalid value", " has invalid value")
_VALUE_AT = (" found ", "; ", '"', "'", " value: ")
_MAX_MESSAGE = 300
WITHHELD = "(value not logged)"


def safe_message(code: str, message: str) -> str:
    """`message` without any value it quotes, on one line: safe to log."""
    message = _escaped(message)  # a client's text (a documentId) may hold a newline and a forged line
    if code == ErrorCode.BAD_USER_INPUT and (ours := _OUR_INPUT_ERROR.match(message)):
        return f"{ours.group(1)}: {WITHHELD}"
    for marker in _VALUE_AFTER:
        at = message.find(marker)
        if at >= 0:
            return f"{message[: at + len(marker)]} {WITHHELD}"
    cut = len(message)
    for marker in _VALUE_AT:
        at = message.find(marker)
        if at >= 0:
            cut = min(cut, at)
    if cut < len(message):
        return f"{message[:cut].rstrip()} {WITHHELD}"
    return message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE] + "…"


def _escaped(text: str) -> str:
    """`text` with what is not printable written as Python escapes it (`\\n`, `\\x1b`)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def printable_path(path: str) -> str:
    """`path` with what is not printable percent-encoded: a decoded %0a or %0d would write a line
    of the client's choosing into a text log, and %1b drive the terminal showing it."""
    if path.isprintable():
        return path
    return "".join(c if c.isprintable() else "".join(f"%{b:02X}" for b in c.encode()) for c in path)


def logging_exchanges() -> bool:
    """Whether access lines are written (LOG_LEVEL is INFO or DEBUG)."""
    return access_log.isEnabledFor(logging.INFO)


def log_exchange(exchange: Exchange, method: str, path: str, status: int, seconds: float) -> None:
    """Write the access line of a finished request (INFO), and its error line if it answered errors
    (WARNING for a server-side one, which LOG_LEVEL=WARNING still shows, else INFO)."""
    access = logging_exchanges()
    if not access and not exchange.errors:
        return
    path = printable_path(path)
    names = ",".join(name or "anonymous" for name, _ in exchange.operations) or None
    kinds = ",".join(kind for _, kind in exchange.operations) or None
    codes = [code for code, _ in exchange.errors]
    operation = f" {kinds} {names}" if names else ""
    if access:
        ms = round(seconds * 1000, 2)
        fields = {
            "request_id": exchange.request_id,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": ms,
            "operation_name": names,
            "operation_type": kinds,
            "error_codes": codes,
        }
        errors = f" errors={','.join(codes)}" if codes else ""
        access_log.info(
            "%s %s %s %.2fms%s%s id=%s",
            method,
            path,
            status,
            ms,
            operation,
            errors,
            exchange.request_id,
            extra={"fields": fields},
        )
    level = logging.WARNING if _SERVER_SIDE.intersection(codes) else logging.INFO
    if exchange.errors and error_log.isEnabledFor(level):
        logged = [{"code": code, "message": safe_message(code, message)} for code, message in exchange.errors]
        error_log.log(
            level,
            "GraphQL errors%s: %s id=%s",
            operation,
            "; ".join(f"{e['code']} {e['message']}" for e in logged),
            exchange.request_id,
            extra={
                "fields": {
                    "request_id": exchange.request_id,
                    "operation_name": names,
                    "operation_type": kinds,
                    "errors": logged,
                }
            },
        )
