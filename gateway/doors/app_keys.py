"""Typed keys of what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from gateway.doors.cors import CorsPolicy
from gateway.doors.live import LiveConnections
from gateway.execution.executor import Executor
from gateway.settings import Settings

__all__ = ["CORS", "EXECUTOR", "LIVE", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
EXECUTOR = web.AppKey("executor", Executor)
CORS = web.AppKey("cors", CorsPolicy)
LIVE = web.AppKey("live", LiveConnections)  # open sockets and event streams
