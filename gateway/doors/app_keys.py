"""Typed keys of what the aiohttp application holds."""

from __future__ import annotations

import strawberry
from aiohttp import web

from gateway.datasources.protocol import DataSource
from gateway.execution.fastpath import FastPath
from gateway.settings import Settings

__all__ = ["DATA_SOURCE", "FAST_PATH", "SCHEMA", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
SCHEMA = web.AppKey("schema", strawberry.Schema)
DATA_SOURCE = web.AppKey("data_source", DataSource)
# Absent when the data source has no JSON SQL or FAST_PATH=false.
FAST_PATH = web.AppKey("fast_path", FastPath)
