"""SQLite's JSON-building SQL for the fast path, with the functions SQLite lacks registered from Python."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable

from gateway.datasources.sql.json_sql import JsonSql

__all__ = ["FUNCTIONS", "SqliteJsonSql"]

_REFUSALS = ("syntax error", "stack overflow", "too many", "too large", "too big", "no such")


def _base64url(text: str | None) -> str | None:
    if text is None:
        return None
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _real(value: float | None) -> str | None:
    # SQLite prints reals with 15 significant digits; Python's repr is the shortest exact text.
    return None if value is None else repr(float(value))


def _isoformat(stored: str | None) -> str | None:
    # Stored as isoformat(timespec="microseconds"); isoformat() omits a zero fraction.
    if stored is None or stored[19:26] != ".000000":
        return stored
    return stored[:19] + stored[26:]


# name → (arity, function), registered on every connection as deterministic.
FUNCTIONS: dict[str, tuple[int, Callable[..., str | None]]] = {
    "gw_base64url": (1, _base64url),
    "gw_real": (1, _real),
    "gw_isoformat": (1, _isoformat),
}


class SqliteJsonSql(JsonSql):
    def refuses(self, exc: BaseException) -> bool:
        # SQLite names a refused statement in the message; "locked" and "busy" pass.
        return isinstance(exc, sqlite3.OperationalError) and any(s in str(exc) for s in _REFUSALS)

    def object(self, pairs: list[tuple[str, str]]) -> str:
        return "json_object(" + ", ".join(f"'{key}', {value}" for key, value in pairs) + ")"

    def array(
        self, element: str, alias: str, source: str, order: str, limit: int | None, correlated: bool = True
    ) -> str:
        # The element is built over the ordered rows, not inside them: one level less of nesting
        # for SQLite's parser, whose stack is small. A subquery's value is text again: json().
        limit_clause = "" if limit is None else f" LIMIT {int(limit)}"
        return (
            f"json((SELECT json_group_array({element}) FROM (SELECT {alias}.* {source}"
            f" ORDER BY {order}{limit_clause}) {alias}))"
        )

    def positions(self, param: str) -> str:
        return (
            "(SELECT e.key AS pos, json_extract(e.value, '$[0]') AS kind,"
            f" json_extract(e.value, '$[1]') AS pk FROM json_each({param}) e)"
        )

    def nested(self, subquery: str) -> str:
        return f"json(({subquery}))"

    def boolean(self, condition: str) -> str:
        return f"CASE WHEN {condition} THEN json('true') ELSE json('false') END"

    def base64url(self, text: str) -> str:
        return f"gw_base64url({text})"

    def timestamp(self, column: str) -> str:
        return f"gw_isoformat({column})"

    def text(self, value: str) -> str:
        return f"CAST({value} AS TEXT)"

    def concat(self, parts: list[str]) -> str:
        return "(" + " || ".join(parts) + ")"

    def tenths(self, column: str) -> str:
        return f"({column}) / 10.0"

    def hundredths(self, numerator: str, denominator: str) -> str:
        return f"((({numerator}) * 20 + ({denominator})) / (2 * ({denominator}))) / 100.0"

    def real(self, column: str) -> str:
        return f"json(gw_real({column}))"
