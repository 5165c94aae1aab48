"""HS256 tokens signed with AUTH_JWT_SECRET, for trying the API locally (`gateway token`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import jwt

from gateway.auth.tokens import HMAC_ALGORITHM
from gateway.settings import Settings

__all__ = ["TokenIssueError", "issue_token", "parse_ttl"]

_TTL = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class TokenIssueError(Exception):
    """A token cannot be issued with these settings or arguments; the message says why."""


def parse_ttl(text: str) -> timedelta:
    """A lifetime written like 90s, 30m, 1h or 2d."""
    match = _TTL.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise TokenIssueError(f"lifetime {text!r} is not like 30m, 1h or 2d")
    try:
        return timedelta(**{_UNITS[match[2]]: int(match[1])})
    except OverflowError:
        raise TokenIssueError(_too_long(repr(text))) from None


def _too_long(ttl: object) -> str:
    return f"lifetime {ttl} is longer than a token's expiry can say"


def issue_token(
    settings: Settings,
    *,
    subject: str,
    email: str | None = None,
    name: str | None = None,
    roles: Iterable[str] = (),
    ttl: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> str:
    """A token for `subject` that this gateway accepts: iss and aud from the settings, roles under
    AUTH_ROLES_CLAIM."""
    if settings.auth_jwt_secret is None:
        raise TokenIssueError(
            "AUTH_JWT_SECRET is not set: tokens are signed with it (at least 32 bytes; make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if not subject:
        raise TokenIssueError("the subject (--sub) must not be empty")
    issued = now or datetime.now(UTC)
    try:
        expires = issued + ttl
    except OverflowError:  # past the year 9999
        raise TokenIssueError(_too_long(ttl)) from None
    claims: dict[str, object] = {"sub": subject, "iat": issued, "exp": expires}
    if settings.auth_issuer:
        claims["iss"] = settings.auth_issuer
    if settings.auth_audience:
        claims["aud"] = settings.auth_audience
    if email:
        claims["email"] = email
    if name:
        claims["name"] = name
    role_list = sorted(set(roles))
    if role_list:
        claims[settings.auth_roles_claim] = role_list
    secret = settings.auth_jwt_secret.get_secret_value().encode()
    return jwt.encode(claims, secret, algorithm=HMAC_ALGORITHM)
