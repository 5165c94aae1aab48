"""What a driver's exceptions mean to a data source: one conversion, each backend's classification."""

from __future__ import annotations

from gateway.datasources.protocol import DataSourceUnavailable, UniqueViolation

__all__ = ["DriverErrors"]


class DriverErrors:
    """Converts one driver's exceptions into ours; a backend overrides only the classification."""

    backend = "the database"
    # What a statement may raise that can mean a broken unique constraint or a lost database.
    statement_errors: tuple[type[BaseException], ...] = ()

    def unique_constraint(self, exc: BaseException) -> str | None:
        """The constraint `exc` says a write broke, or None."""
        return None

    def is_unavailable(self, exc: BaseException) -> bool:
        """Whether `exc` means the database cannot be reached or the connection was lost."""
        return False

    def unavailable(self, exc: BaseException) -> DataSourceUnavailable:
        return DataSourceUnavailable(f"{self.backend} unavailable ({type(exc).__name__})")

    def converted(self, exc: BaseException) -> Exception | None:
        """`exc` as the error of ours it means, or None when it means neither."""
        constraint = self.unique_constraint(exc)
        if constraint is not None:
            return UniqueViolation(constraint)
        if self.is_unavailable(exc):
            return self.unavailable(exc)
        return None
