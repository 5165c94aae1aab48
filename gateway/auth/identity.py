"""Who is asking: the person a verified token names, and the roles it grants them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ADMIN_ROLE", "ClaimsError", "Identity", "identity_from_claims"]

ADMIN_ROLE = "admin"
MAX_SUBJECT = 255  # characters of a token's `sub`: OpenID Connect's bound, and the subject column's


class ClaimsError(Exception):
    """A verified token's claims do not describe a person; the message says which claim is wrong."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A signed-in person: `subject` is the token's `sub`, stable across their sessions."""

    subject: str
    roles: frozenset[str]
    email: str | None = None
    name: str | None = None
    # When the token stops being valid (Unix time, leeway included): a socket signed in with it closes then.
    expires_at: float | None = field(default=None, compare=False)

    @property
    def admin(self) -> bool:
        """Whether this person is a club administrator (role `admin`)."""
        return ADMIN_ROLE in self.roles


def identity_from_claims(claims: Mapping[str, Any], roles_claim: str) -> Identity:
    """The Identity in a verified token's claims; roles are read from `roles_claim`."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise ClaimsError("claim 'sub' must be a non-empty string")
    # What every backend stores alike (PostgreSQL keeps no NUL, no driver encodes a lone surrogate,
    # which JSON's \ud800 escape gives), as OpenID Connect bounds it.
    if len(subject) > MAX_SUBJECT or any(_unstorable(c) for c in subject):
        raise ClaimsError(
            f"claim 'sub' must be at most {MAX_SUBJECT} characters, none of them control characters"
            " or lone surrogates"
        )
    return Identity(
        subject=subject,
        roles=_roles(claims, roles_claim),
        email=_text(claims.get("email")),
        name=_text(claims.get("name")),
    )


def _unstorable(c: str) -> bool:
    code = ord(c)
    return code < 32 or 127 <= code < 160 or 0xD800 <= code < 0xE000


def _roles(claims: Mapping[str, Any], roles_claim: str) -> frozenset[str]:
    value = _claim(claims, roles_claim)
    if value is None:
        return frozenset()
    # Supabase's `role` is one string; most providers send a list.
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list) and all(isinstance(role, str) for role in value):
        return frozenset(value)
    raise ClaimsError(f"claim {roles_claim!r} must be a list of role names")


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim `name`; a dotted name not present as such is a path (Keycloak's `realm_access.roles`)."""
    if name in claims or "." not in name:
        return claims.get(name)
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
