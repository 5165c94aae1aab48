"""The CORS policy, one definition for both HTTP doors (aiohttp and ASGI); the origins and whether
credentials are allowed are settings (CORS_ORIGINS, CORS_ALLOW_CREDENTIALS)."""

from __future__ import annotations

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "MAX_AGE", "vary_origin"]

ALLOWED_METHODS = ("GET", "POST")
ALLOWED_HEADERS = ("Content-Type", "Authorization")
MAX_AGE = 600  # seconds a browser may cache a preflight answer


def vary_origin(vary: str | None) -> str:
    """A `Vary` value that includes Origin: CORS headers differ by it, so caches must key on it."""
    if not vary:
        return "Origin"
    if any(part.strip().lower() in ("origin", "*") for part in vary.split(",")):
        return vary
    return f"{vary}, Origin"
