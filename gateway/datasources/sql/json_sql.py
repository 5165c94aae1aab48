"""How a backend's SQL builds JSON: the expressions the fast path composes into one statement.

Every method takes and returns SQL text. Each expression must print exactly what the
interpreted path prints for the same value (see `gateway.execution.fastpath`), so each backend's
implementation lives beside it and is proven by the differential tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["JsonSql"]


class JsonSql(ABC):
    """JSON-building SQL of one backend."""

    @abstractmethod
    def object(self, pairs: list[tuple[str, str]]) -> str:
        """A JSON object of `(key, expression)` pairs, in that order; keys are GraphQL names."""

    @abstractmethod
    def array(
        self, element: str, alias: str, source: str, order: str, limit: int | None, correlated: bool = True
    ) -> str:
        """The JSON array of `element` for each row `alias` of `source` (FROM … WHERE …) in `order`.

        Never NULL: no rows make `[]`. `correlated`: `source` refers to an outer query's row.
        """

    @abstractmethod
    def nested(self, subquery: str) -> str:
        """A scalar subquery returning one JSON value (or NULL), usable inside `object`."""

    @abstractmethod
    def boolean(self, condition: str) -> str:
        """JSON true or false for an SQL condition."""

    @abstractmethod
    def base64url(self, text: str) -> str:
        """URL-safe base64 of a text expression, without padding (opaque IDs and cursors)."""

    @abstractmethod
    def timestamp(self, column: str) -> str:
        """A stored UTC timestamp as Python's `isoformat()` text: `2025-01-02T03:04:05[.ffffff]+00:00`."""

    @abstractmethod
    def text(self, value: str) -> str:
        """A number or text expression as text, for concatenation."""

    @abstractmethod
    def concat(self, parts: list[str]) -> str:
        """Text expressions concatenated."""

    @abstractmethod
    def tenths(self, column: str) -> str:
        """An integer count of tenths as a JSON float (95 → 9.5)."""

    @abstractmethod
    def hundredths(self, numerator: str, denominator: str) -> str:
        """numerator / denominator (non-negative integers, tenths per item) to two decimals, half up."""

    @abstractmethod
    def real(self, column: str) -> str:
        """A float column as JSON, printed as the shortest text that reads back as the same float."""

    @abstractmethod
    def positions(self, param: str) -> str:
        """A derived table of the JSON array `param` holds, `[["User", 1], …]` (a type name and a
        key): one row per element with columns `pos` (ascending in the array's order), `kind`, `pk`."""

    def refuses(self, exc: BaseException) -> bool:
        """Whether `exc` is the database refusing a statement's text or size, as it will every time.

        A deadlock, a timeout or a lost connection is not: the same statement may run next time.
        """
        return False

    def literal(self, value: str) -> str:
        """A string constant from the schema (type names, listing names); never user input."""
        if any(c in value for c in "'?\\\x00"):
            raise ValueError(f"not a schema constant: {value!r}")
        return f"'{value}'"
