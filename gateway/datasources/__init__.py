"""Data sources: one protocol, one module per backend, chosen from one table."""

from __future__ import annotations

from importlib import import_module

from gateway.datasources.protocol import DataSource
from gateway.settings import Settings

__all__ = ["BACKENDS", "create_data_source"]

# Imported lazily, so a SQLite user never loads a server driver.
BACKENDS = {
    "sqlite": "gateway.datasources.sqlite:SqliteDataSource",
    "postgres": "gateway.datasources.postgres:PostgresDataSource",
    "mysql": "gateway.datasources.mysql:MysqlDataSource",
}


def create_data_source(settings: Settings) -> DataSource:
    """A closed data source for `settings.db_backend`; call `open()` before use."""
    module_name, _, class_name = BACKENDS[settings.db_backend].partition(":")
    factory = getattr(import_module(module_name), class_name)
    source: DataSource = factory(settings)
    return source
