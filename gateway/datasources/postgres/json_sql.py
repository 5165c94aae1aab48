"""PostgreSQL's JSON-building SQL for the fast path."""

from __future__ import annotations

from gateway.datasources.json_sql import JsonSql

__all__ = ["PostgresJsonSql"]


class PostgresJsonSql(JsonSql):
    def object(self, pairs: list[tuple[str, str]]) -> str:
        return "json_build_object(" + ", ".join(f"'{key}', {value}" for key, value in pairs) + ")"

    def array(
        self, element: str, alias: str, source: str, order: str, limit: int | None, correlated: bool = True
    ) -> str:
        # row_number fixes the order json_agg sees; a subquery's ORDER BY alone is not a promise.
        limit_clause = "" if limit is None else f" LIMIT {int(limit)}"
        return (
            f"COALESCE((SELECT json_agg(q.j ORDER BY q.n) FROM (SELECT {element} AS j,"
            f" row_number() OVER (ORDER BY {order}) AS n {source} ORDER BY {order}{limit_clause}) q),"
            " '[]'::json)"
        )

    def nested(self, subquery: str) -> str:
        return f"({subquery})"

    def boolean(self, condition: str) -> str:
        return f"({condition})"

    def base64url(self, text: str) -> str:
        # encode() wraps lines at 76 characters: translate() drops the newlines with + and /.
        return f"rtrim(translate(encode(convert_to({text}, 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')"

    def timestamp(self, column: str) -> str:
        micros = f"to_char({column}, 'US')"
        return (
            f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
            f" || CASE WHEN {micros} = '000000' THEN '' ELSE '.' || {micros} END || '+00:00'"
        )

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
