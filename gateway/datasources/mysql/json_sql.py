"""MariaDB's JSON-building SQL for the fast path (JSON_ARRAYAGG with ORDER BY and LIMIT: 10.5+)."""

from __future__ import annotations

import pymysql

from gateway.datasources.sql.json_sql import JsonSql

__all__ = ["MariadbJsonSql"]

# Thread stack overrun, and a nesting or size limit of the statement.
_REFUSALS = frozenset({1436, 1235, 3068})


class MariadbJsonSql(JsonSql):
    def refuses(self, exc: BaseException) -> bool:
        if isinstance(exc, pymysql.err.ProgrammingError | pymysql.err.NotSupportedError):
            return True
        return isinstance(exc, pymysql.err.MySQLError) and bool(exc.args) and exc.args[0] in _REFUSALS

    def object(self, pairs: list[tuple[str, str]]) -> str:
        return "JSON_OBJECT(" + ", ".join(f"'{key}', {value}" for key, value in pairs) + ")"

    def array(
        self, element: str, alias: str, source: str, order: str, limit: int | None, correlated: bool = True
    ) -> str:
        if limit == 0:
            return "JSON_ARRAY()"
        limit_clause = "" if limit is None else f" LIMIT {int(limit)}"
        if correlated:
            # A derived table cannot see the outer row in MariaDB, so the aggregate orders and
            # limits: it builds an element for each of the owner's rows, and keeps `limit`.
            aggregate = f"JSON_ARRAYAGG({element} ORDER BY {order}{limit_clause})"
            return f"COALESCE((SELECT {aggregate} {source}), JSON_ARRAY())"
        # Uncorrelated: the page's rows first (an index range), then elements for those only.
        rows = f"(SELECT {alias}.* {source} ORDER BY {order}{limit_clause}) {alias}"
        return f"COALESCE((SELECT JSON_ARRAYAGG({element} ORDER BY {order}) FROM {rows}), JSON_ARRAY())"

    def positions(self, param: str) -> str:
        # JSON_TABLE: MariaDB 10.6+. On 10.5 the statement is refused, and `nodes` runs interpreted.
        return (
            f"JSON_TABLE({param}, '$[*]' COLUMNS (pos FOR ORDINALITY,"
            " kind VARCHAR(32) PATH '$[0]', pk BIGINT PATH '$[1]'))"
        )

    def nested(self, subquery: str) -> str:
        return f"JSON_QUERY(({subquery}), '$')"

    def boolean(self, condition: str) -> str:
        return f"IF({condition}, JSON_EXTRACT('true', '$'), JSON_EXTRACT('false', '$'))"

    def base64url(self, text: str) -> str:
        # TO_BASE64 wraps lines at 76 characters.
        return (
            f"TRIM(TRAILING '=' FROM REPLACE(REPLACE(REPLACE(TO_BASE64({text}), '+', '-'), '/', '_'),"
            " CHAR(10), ''))"
        )

    def timestamp(self, column: str) -> str:
        return (
            f"CONCAT(DATE_FORMAT({column}, '%Y-%m-%dT%H:%i:%s'), IF(MICROSECOND({column}) = 0, '',"
            f" CONCAT('.', LPAD(MICROSECOND({column}), 6, '0'))), '+00:00')"
        )

    def text(self, value: str) -> str:
        return f"CAST({value} AS CHAR)"

    def concat(self, parts: list[str]) -> str:
        return "CONCAT(" + ", ".join(parts) + ")"

    def tenths(self, column: str) -> str:
        return f"({column}) / 10e0"

    def hundredths(self, numerator: str, denominator: str) -> str:
        return f"((({numerator}) * 20 + ({denominator})) DIV (2 * ({denominator}))) / 100e0"

    def real(self, column: str) -> str:
        return column
