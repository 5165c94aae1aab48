"""Typed keys of what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from gateway.doors.cors import CorsPolicy
from gateway.execution.executor import Executor
from gateway.settings import Settings

__all__ = ["CORS", "EXECUTOR", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
EXECUTOR = web.AppKey("executor", Executor)
CORS = web.AppKey("cors", CorsPolicy)
