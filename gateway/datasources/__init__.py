"""Data sources: one protocol, one module per backend, chosen from one table."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from gateway.datasources.registry import BACKENDS

if TYPE_CHECKING:
    # Settings imports the registry from this package: importing settings here would be circular.
    from gateway.datasources.protocol import DataSource
    from gateway.settings import Settings

__all__ = ["BACKENDS", "create_data_source"]


def create_data_source(settings: Settings) -> DataSource:
    """A closed data source for `settings.db_backend`; call `open()` before use."""
    # Imported lazily, so a SQLite user never loads a server driver.
    module_name, _, class_name = BACKENDS[settings.db_backend].source.partition(":")
    factory = getattr(import_module(module_name), class_name)
    source: DataSource = factory(settings)
    return source
