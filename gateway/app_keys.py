"""Typed keys of what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from gateway.datasources.base import DataSource
from gateway.settings import Settings

__all__ = ["DATA_SOURCE", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
DATA_SOURCE = web.AppKey("data_source", DataSource)
