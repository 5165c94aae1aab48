"""The data source for the rest of a request that has already found the database unavailable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, cast

from gateway.datasources.protocol import DataSource, DataSourceUnavailable, SourceStats

__all__ = ["UnavailableSource"]


class UnavailableSource:
    """Every call fails at once with the reason already found.

    When the fast path could not get a connection, Strawberry still answers the request, so
    the error reads exactly as on the interpreted path; it must not wait DB_ACQUIRE_TIMEOUT a
    second time to find the same thing.
    """

    statements = 0
    json_sql = None

    def __init__(self, found: DataSourceUnavailable) -> None:
        self._reason = str(found)

    @classmethod
    def found(cls, reason: DataSourceUnavailable) -> DataSource:
        """A source that fails every call with `reason`."""
        # It answers every member of the protocol, through __getattr__.
        return cast(DataSource, cls(reason))

    def stats(self) -> SourceStats:
        return SourceStats()

    def __getattr__(self, name: str) -> Callable[..., Awaitable[NoReturn]]:
        async def unavailable(*args: Any, **kwargs: Any) -> NoReturn:
            raise DataSourceUnavailable(self._reason)

        return unavailable
