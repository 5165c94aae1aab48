"""Sign-in: the Identity a bearer token names, verified against a JWKS or a shared secret."""

from __future__ import annotations

from gateway.auth.identity import Identity
from gateway.auth.tokens import (
    Authenticator,
    KeysUnavailable,
    TokenRejected,
    authenticator_for,
    sole_authorization,
    warn_if_open,
)

__all__ = [
    "Authenticator",
    "Identity",
    "KeysUnavailable",
    "TokenRejected",
    "authenticator_for",
    "sole_authorization",
    "warn_if_open",
]
