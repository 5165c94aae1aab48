"""One pooled driver connection as the shared queries use it: counted, its errors converted."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from gateway.datasources.sql.errors import DriverErrors
from gateway.datasources.sql.rows import Row

if TYPE_CHECKING:
    from gateway.telemetry.tracing import Tracing

__all__ = ["DriverConnection", "StatementCounter"]

Driver = TypeVar("Driver")


class StatementCounter(Protocol):
    statements: int
    tracing: Tracing | None  # a span per statement when tracing is on


def _verb(sql: str) -> str:
    """The statement's first word (SELECT, INSERT, WITH...): what a span may say of it."""
    return sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"


class DriverConnection(ABC, Generic[Driver]):
    """Implements SqlConnection; a backend supplies its `errors` and the three driver calls."""

    __slots__ = ("_owner", "driver")

    errors: ClassVar[DriverErrors]

    def __init__(self, driver: Driver, owner: StatementCounter) -> None:
        self.driver = driver
        self._owner = owner

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        self._owner.statements += 1
        try:
            if (tracing := self._owner.tracing) is not None:
                with tracing.sql(_verb(sql)):
                    return await self._fetch(sql, args)
            return await self._fetch(sql, args)
        except self.errors.statement_errors as exc:
            self.errors.reraise(exc)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """How many rows the statement changed."""
        self._owner.statements += 1
        try:
            if (tracing := self._owner.tracing) is not None:
                with tracing.sql(_verb(sql)):
                    return await self._execute(sql, args)
            return await self._execute(sql, args)
        except self.errors.statement_errors as exc:
            self.errors.reraise(exc)

    async def insert(self, sql: str, args: Sequence[Any] = ()) -> int:
        """The new row's id; 0 when the statement inserted no row (an INSERT … SELECT)."""
        self._owner.statements += 1
        try:
            if (tracing := self._owner.tracing) is not None:
                with tracing.sql(_verb(sql)):
                    return await self._insert(sql, args)
            return await self._insert(sql, args)
        except self.errors.statement_errors as exc:
            self.errors.reraise(exc)

    @abstractmethod
    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        """Rows as dicts, for SQL with `?` placeholders."""

    @abstractmethod
    async def _execute(self, sql: str, args: Sequence[Any]) -> int: ...

    @abstractmethod
    async def _insert(self, sql: str, args: Sequence[Any]) -> int: ...
