"""The CORS policy, one definition for both HTTP doors (aiohttp and ASGI)."""

from __future__ import annotations

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "ALLOW_CREDENTIALS", "MAX_AGE"]

ALLOWED_METHODS = ("GET", "POST")
ALLOWED_HEADERS = ("Content-Type", "Authorization")
ALLOW_CREDENTIALS = True
MAX_AGE = 600  # seconds a browser may cache a preflight answer
