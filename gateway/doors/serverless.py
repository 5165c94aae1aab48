"""Serverless instances (Vercel) hold few connections: N warm instances open N x DB_POOL_MAX."""

from __future__ import annotations

from typing import Any

from gateway.settings import Settings

__all__ = ["SERVERLESS_POOL", "serverless_profile"]

SERVERLESS_POOL = {"db_pool_max": 2, "db_pool_min": 0, "db_idle_timeout": 10.0}


def serverless_profile(settings: Settings) -> Settings:
    """`settings` with serverless pool sizes for every pool setting the user did not set; a
    DB_POOL_MIN set alone raises the pool's size to it."""
    unset: dict[str, Any] = {k: v for k, v in SERVERLESS_POOL.items() if k not in settings.model_fields_set}
    if "db_pool_max" in unset and "db_pool_min" not in unset:
        # model_copy validates nothing: a minimum over the serverless maximum failed every request.
        unset["db_pool_max"] = max(unset["db_pool_max"], settings.db_pool_min)
    return settings.model_copy(update=unset)
