"""A data source opened on first use, once, for hosts without a start-up hook (serverless)."""

from __future__ import annotations

import asyncio
import logging

from gateway.datasources import create_data_source
from gateway.datasources.protocol import DataSource
from gateway.settings import Settings

__all__ = ["SERVERLESS_POOL", "LazyDataSource", "serverless_profile"]

log = logging.getLogger(__name__)

# Frozen serverless instances should hold few connections: N warm instances open N x DB_POOL_MAX.
SERVERLESS_POOL = {"db_pool_max": 2, "db_pool_min": 0, "db_idle_timeout": 10.0}


def serverless_profile(settings: Settings) -> Settings:
    """`settings` with serverless pool sizes for every pool setting the user did not set."""
    unset = {k: v for k, v in SERVERLESS_POOL.items() if k not in settings.model_fields_set}
    return settings.model_copy(update=unset)


class LazyDataSource:
    """Holds at most one open data source; concurrent first callers share one `open()`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._source: DataSource | None = None
        self._lock = asyncio.Lock()
        self.opens = 0

    async def get(self) -> DataSource:
        """The open data source, opening it if this is the first use."""
        if self._source is None:
            async with self._lock:
                if self._source is None:
                    source = create_data_source(self._settings)
                    await source.open()
                    self.opens += 1
                    self._source = source
                    log.info("data source %s open", self._settings.db_backend)
        return self._source

    async def close(self) -> None:
        async with self._lock:
            source, self._source = self._source, None
            if source is not None:
                await source.close()
                log.info("data source %s closed", self._settings.db_backend)
