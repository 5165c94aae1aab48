"""What a driver's exceptions mean to a data source: one conversion, each backend's classification."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from gateway.datasources.protocol import DataSourceUnavailable, StatementTimeout, UniqueViolation

__all__ = ["DriverErrors"]


class DriverErrors:
    """Converts one driver's exceptions into ours; a backend overrides only the classification."""

    backend = "the database"
    # What a statement may raise that can mean a broken unique constraint or a lost database.
    statement_errors: tuple[type[BaseException], ...] = ()
    # Everything the driver raises about the database, for failures while starting.
    driver_errors: tuple[type[BaseException], ...] = ()
    # What to do when the user lacks a privilege the migrations need.
    permission_hint = ""

    def unique_constraint(self, exc: BaseException) -> str | None:
        """The constraint `exc` says a write broke, or None."""
        return None

    def is_unavailable(self, exc: BaseException) -> bool:
        """Whether `exc` means the database cannot be reached or the connection was lost."""
        return False

    def is_permission_denied(self, exc: BaseException) -> bool:
        """Whether `exc` is the server refusing the user a privilege."""
        return False

    def is_timeout(self, exc: BaseException) -> bool:
        """Whether `exc` is the database stopping a statement at DB_STATEMENT_TIMEOUT."""
        return False

    def cause(self, exc: BaseException) -> str:
        """The server's own words for `exc`, and its class, for a message."""
        return f"{exc} ({type(exc).__name__})"

    def unavailable(self, exc: BaseException) -> DataSourceUnavailable:
        return DataSourceUnavailable(f"{self.backend} unavailable ({type(exc).__name__})")

    def converted(self, exc: BaseException) -> Exception | None:
        """`exc` as the error of ours it means, or None when it means neither."""
        constraint = self.unique_constraint(exc)
        if constraint is not None:
            return UniqueViolation(constraint)
        if self.is_unavailable(exc):
            return self.unavailable(exc)
        if self.is_timeout(exc):
            return StatementTimeout()
        return None

    def reraise(self, exc: BaseException) -> NoReturn:
        """Raise a statement's `exc` as the error of ours it means, or as it is (called in its `except`)."""
        ours = self.converted(exc)
        if ours is None:
            raise exc
        raise ours from exc

    @contextmanager
    def refusing_start(self, doing: str) -> Iterator[None]:
        """A driver error raised while `doing` part of `open()` becomes DataSourceUnavailable naming it.

        `doing` completes "cannot …": e.g. "apply migrations to PostgreSQL database club as user app".
        """
        try:
            yield
        except self.driver_errors as exc:
            hint = f"; {self.permission_hint}" if self.is_permission_denied(exc) else ""
            raise DataSourceUnavailable(f"cannot {doing}: {self.cause(exc)}{hint}") from exc
