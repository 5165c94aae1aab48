"""The one table of backends: name, label, default port, data source class and connection probe.

Imported by settings on every cold start, so it imports nothing heavy; the data source class is
named by path and imported only when a source is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BACKENDS", "Backend", "Probe", "backend_names"]

# How `gateway check-connection` examines a backend: a local file, or one of the wire protocols.
Probe = Literal["sqlite", "postgres", "mysql"]


@dataclass(frozen=True)
class Backend:
    """One supported database: what DB_BACKEND names it, how it is shown, reached and checked."""

    name: str
    label: str
    default_port: int | None
    source: str  # "module:Class", imported lazily
    probe: Probe


BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend(
            name="sqlite",
            label="SQLite",
            default_port=None,
            source="gateway.datasources.sqlite:SqliteDataSource",
            probe="sqlite",
        ),
        Backend(
            name="postgres",
            label="PostgreSQL",
            default_port=5432,
            source="gateway.datasources.postgres:PostgresDataSource",
            probe="postgres",
        ),
        Backend(
            name="mysql",
            label="MySQL / MariaDB",
            default_port=3306,
            source="gateway.datasources.mysql:MysqlDataSource",
            probe="mysql",
        ),
    )
}


def backend_names() -> tuple[str, ...]:
    """The valid values of DB_BACKEND, in the table's order."""
    return tuple(BACKENDS)
