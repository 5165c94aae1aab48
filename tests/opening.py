"""A data source opened as the gateway opens it, for tests: who the server says is connected, or
the TLS refusal that stopped it opening."""

from __future__ import annotations

import pytest

from gateway.connect.tls import TlsError
from gateway.datasources import create_data_source
from gateway.settings import Settings
from tests.conftest import sql_source

__all__ = ["connected_user", "tls_refusal"]


async def connected_user(settings: Settings) -> str:
    """Open the data source and ask the server who is connected (the user, without MySQL's @host)."""
    source = sql_source(create_data_source(settings))
    await source.open()
    try:
        async with source.connection() as conn:
            rows = await conn.fetch("SELECT CURRENT_USER AS who")
    finally:
        await source.close()
    return str(rows[0]["who"]).split("@")[0]


async def tls_refusal(settings: Settings) -> TlsError:
    """The TlsError opening the data source raises (the test fails if it opens)."""
    source = create_data_source(settings)
    with pytest.raises(TlsError) as caught:
        await source.open()
    await source.close()
    return caught.value
