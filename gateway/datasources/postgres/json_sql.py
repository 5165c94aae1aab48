"""PostgreSQL's JSON-building SQL for the fast path."""

from __future__ import annotations

import asyncpg

from gateway.datasources.sql.json_sql import JsonSql

__all__ = ["PostgresJsonSql"]

_REFUSALS = frozenset({"42", "54", "0A"})


class PostgresJsonSql(JsonSql):
    def refuses(self, exc: BaseException) -> bool:
        # Classes 42 (syntax, undefined objects), 54 (program limits) and 0A (not supported).
        return isinstance(exc, asyncpg.PostgresError) and (exc.sqlstate or "")[:2] in _REFUSALS

    def object(self, pairs: list[tuple[str, str]]) -> str:
        return "json_build_object(" + ", ".join(f"'{key}', {value}" for key, value in pairs) + ")"

    def array(
        self, element: str, alias: str, source: str, order: str, limit: int | None, correlated: bool = True
    ) -> str:
        if limit is None:
            return f"COALESCE((SELECT json_agg({element} ORDER BY {order}) {source}), '[]'::json)"
        # With a LIMIT the rows come from a subquery, whose ORDER BY alone is not a promise about
        # the order json_agg sees: row_number carries it out.
        return (
            f"COALESCE((SELECT json_agg(q.j ORDER BY q.n) FROM (SELECT {element} AS j,"
            f" row_number() OVER (ORDER BY {order}) AS n {source} ORDER BY {order} LIMIT {int(limit)}) q),"
            " '[]'::json)"
        )

    def positions(self, param: str) -> str:
        return (
            f"(SELECT o.n AS pos, o.e->>0 AS kind, (o.e->>1)::bigint AS pk"
            f" FROM json_array_elements(({param})::json) WITH ORDINALITY AS o(e, n))"
        )

    def nested(self, subquery: str) -> str:
        return f"({subquery})"

    def boolean(self, condition: str) -> str:
        return f"({condition})"

    def base64url(self, text: str) -> str:
        # encode() wraps lines at 76 characters. replace(), not translate(): half the cost, and
        # a page of 50 sessions with their users has 100 IDs.
        encoded = f"encode(convert_to({text}, 'UTF8'), 'base64')"
        return f"rtrim(replace(replace(replace({encoded}, E'\\n', ''), '+', '-'), '/', '_'), '=')"

    def timestamp(self, column: str) -> str:
        # Python's isoformat: microseconds only when there are some. One to_char, not three.
        formatted = f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
        return f"replace({formatted}, '.000000+', '+')"

    def text(self, value: str) -> str:
        return f"({value})::text"

    def concat(self, parts: list[str]) -> str:
        return "(" + " || ".join(parts) + ")"

    def tenths(self, column: str) -> str:
        return f"({column})::float8 / 10"

    def hundredths(self, numerator: str, denominator: str) -> str:
        return f"((({numerator})::bigint * 20 + ({denominator})) / (2 * ({denominator})))::float8 / 100"

    def real(self, column: str) -> str:
        return column
