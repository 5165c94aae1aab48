"""The CORS policy, one definition for every door (aiohttp, ASGI, and WebSocket upgrades): which
origins may call (CORS_ORIGINS), with which request headers (CORS_ALLOW_HEADERS), and whether
credentials are allowed (CORS_ALLOW_CREDENTIALS). Each door only adapts it to its framework."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.doors.responses import Answer
from gateway.origins import AllowedOrigins
from gateway.settings import Settings

__all__ = ["ALLOWED_METHODS", "MAX_AGE", "CorsPolicy", "is_preflight", "quoted"]

ALLOWED_METHODS = ("GET", "POST")
MAX_AGE = 600  # seconds a browser may cache a preflight answer
# Response headers a page may read beyond the safelisted ones: when to retry a 503, which request to quote.
_EXPOSED_HEADERS = "Retry-After, X-Request-Id"
_PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


def quoted(value: str) -> str:
    """A request header's `value` as a refusal may quote it: anything but printable ASCII escaped.
    aiohttp hands a header's undecodable bytes over as surrogates, which no encoder accepts."""
    if value.isascii() and value.isprintable():
        return value
    return value.encode("ascii", "backslashreplace").decode("ascii")


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    """Whether a request is a browser's CORS preflight (`headers` looked up case-insensitively)."""
    return method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Who may call the gateway from a browser, and the CORS headers that say so."""

    origins: AllowedOrigins
    allow_headers: frozenset[str]  # lower-case
    allow_credentials: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> CorsPolicy:
        return cls(
            AllowedOrigins.parse(settings.allowed_origins),
            frozenset(settings.cors_allow_headers),
            settings.cors_allow_credentials,
        )

    def origin_allowed(self, origin: str) -> bool:
        """Whether a browser page of `origin` (an `Origin` header's value) may call the gateway, over
        HTTP or by a WebSocket upgrade or event stream."""
        return self.origins.allows(origin)

    def preflight(self, origin: str, method: str, request_headers: str) -> Answer:
        """The answer to a preflight: 200 with the permissions, or 403 naming what is not allowed."""
        refusal = None
        if not self.origin_allowed(origin):
            refusal = f"origin {quoted(origin)} is not in CORS_ORIGINS"
        elif method not in ALLOWED_METHODS:
            refusal = f"method {quoted(method)} is not allowed (GET and POST are)"
        else:
            asked = [name.strip().lower() for name in request_headers.split(",") if name.strip()]
            extra = [name for name in asked if name not in self.allow_headers]
            if extra:
                refusal = f"header {quoted(', '.join(extra))} is not in CORS_ALLOW_HEADERS"
        vary = {"Vary": _PREFLIGHT_VARY}
        if refusal is not None:
            # A browser shows "Failed to fetch"; the network panel shows this line.
            return Answer(403, f"CORS preflight refused: {refusal}".encode(), "text/plain", vary)
        headers = {
            **vary,
            **self.allowed_headers(origin),
            "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
            "Access-Control-Allow-Headers": ", ".join(sorted(self.allow_headers)),
            "Access-Control-Max-Age": str(MAX_AGE),
        }
        return Answer(200, b"", "text/plain", headers)

    def allowed_headers(self, origin: str | None) -> dict[str, str]:
        """The CORS headers of an answer to a request from `origin`: none if it is absent or not allowed."""
        if origin is None or not self.origin_allowed(origin):
            return {}
        if self.origins.any and not self.allow_credentials:
            headers = {"Access-Control-Allow-Origin": "*"}
        else:
            headers = {"Access-Control-Allow-Origin": origin}
        if self.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
        return headers
