"""Serverless instances (Vercel) hold few connections: N warm instances open N x DB_POOL_MAX."""

from __future__ import annotations

from gateway.settings import Settings

__all__ = ["SERVERLESS_POOL", "serverless_profile"]

SERVERLESS_POOL = {"db_pool_max": 2, "db_pool_min": 0, "db_idle_timeout": 10.0}


def serverless_profile(settings: Settings) -> Settings:
    """`settings` with serverless pool sizes for every pool setting the user did not set."""
    unset = {k: v for k, v in SERVERLESS_POOL.items() if k not in settings.model_fields_set}
    return settings.model_copy(update=unset)
