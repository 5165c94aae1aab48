"""Bearer tokens: who an `Authorization` header names, verified with PyJWT.

Which key verifies a token is decided by the family of the `alg` in its header, never by the token alone:
HS256 is verified with AUTH_JWT_SECRET, an asymmetric algorithm (RS*, PS*, ES*, EdDSA) with the key of
AUTH_JWKS_URL that its `kid` names, and only when that key's type fits the algorithm. Any other `alg`
(`none` among them), or a family whose key is not configured, is refused. A token must carry `sub` and
`exp`; `iss` and `aud` are checked when AUTH_ISSUER and AUTH_AUDIENCE are set.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gateway.auth.identity import ClaimsError, Identity, identity_from_claims
from gateway.auth.jwks import ASYMMETRIC_ALGORITHMS, JwksCache, JwksUnavailable, KeyNotFound
from gateway.auth.token_cache import TokenCache
from gateway.settings import Settings

if TYPE_CHECKING:
    from jwt.types import Options

__all__ = [
    "HMAC_ALGORITHM",
    "MAX_TOKEN",
    "Authenticator",
    "KeysUnavailable",
    "TokenRejected",
    "authenticator_for",
    "sole_authorization",
    "warn_if_open",
]

log = logging.getLogger(__name__)

HMAC_ALGORITHM = "HS256"
# Bounds on what a log line quotes from a header, which is the sender's to fill.
_SHOWN_ALG = 32
_MAX_KID = 256
# Characters of a bearer token: twice what aiohttp reads of a header line, and far past any provider's
# tokens. A socket's connection_init could carry 4 MB, which PyJWT takes ~0.5 s of the loop to refuse.
MAX_TOKEN = 16384


class TokenRejected(Exception):
    """The bearer token is invalid; str(exc) is a reason fit for the server log (never the token itself)."""


class KeysUnavailable(TokenRejected):
    """The token could not be checked: the JWKS could not be fetched and holds no key for it."""


class Authenticator:
    """Verifies bearer tokens against the configured secret and JWKS; one per process (it caches keys)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        secret = settings.auth_jwt_secret
        self._secret = secret.get_secret_value().encode() if secret is not None else None
        self._jwks = JwksCache(settings.auth_jwks_url, clock=clock) if settings.auth_jwks_url else None
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._leeway = settings.auth_leeway
        self._roles_claim = settings.auth_roles_claim
        self._verified = TokenCache()
        required = ["exp", "sub"]
        required += ["iss"] if self._issuer is not None else []
        required += ["aud"] if self._audience is not None else []
        # Without AUTH_AUDIENCE a token's `aud` is not ours to judge; PyJWT would refuse any.
        self._options: Options = {
            "require": required,
            "verify_aud": self._audience is not None,
            "enforce_minimum_key_length": True,
        }

    async def identify(self, authorization: str | None) -> Identity | None:
        """None when there is no Authorization header, or an empty one (anonymous: Apollo Client's
        documented link sends `authorization: ""` without a token); an Identity for a valid bearer
        token; raises TokenRejected for anything else."""
        if not authorization:
            return None
        token = _bearer_token(authorization)
        known = self._verified.get(token)
        if known is not None:
            return known
        # PyJWT brings cryptography (~45 ms): a cold instance whose first requests are anonymous
        # does not pay for it.
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"malformed token ({exc})") from None
        key, algorithms = await self._key_for(header)
        claims = self._verify(token, key, algorithms)
        try:
            identity = identity_from_claims(claims, self._roles_claim)
        except ClaimsError as exc:
            raise TokenRejected(str(exc)) from None
        expires_at = _expiry(claims["exp"]) + self._leeway
        identity = replace(identity, expires_at=expires_at)
        self._verified.put(token, identity, expires_at)
        return identity

    async def close(self) -> None:
        """Close the JWKS client's HTTP session, if one was opened."""
        if self._jwks is not None:
            await self._jwks.close()

    async def _key_for(self, header: dict[str, Any]) -> tuple[Any, Sequence[str]]:
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise TokenRejected("header 'alg' is missing or not a string")
        if alg == HMAC_ALGORITHM and self._secret is not None:
            return self._secret, (HMAC_ALGORITHM,)
        if alg in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            kid = header.get("kid")
            if kid is not None and (not isinstance(kid, str) or len(kid) > _MAX_KID):
                raise TokenRejected(f"header 'kid' is not a string of at most {_MAX_KID} characters")
            try:
                signing = await self._jwks.key(kid)
            except KeyNotFound as exc:
                raise TokenRejected(str(exc)) from None
            except JwksUnavailable as exc:
                raise KeysUnavailable(f"cannot check the token: {exc}") from None
            if alg not in signing.algorithms:
                raise TokenRejected(f"alg {alg!r} does not fit JWKS key {signing.kid!r}")
            return signing.key, signing.algorithms
        raise TokenRejected(f"alg {alg[:_SHOWN_ALG]!r} is not accepted ({self._accepted()})")

    def _accepted(self) -> str:
        families = []
        if self._secret is not None:
            families.append(f"{HMAC_ALGORITHM} with AUTH_JWT_SECRET")
        if self._jwks is not None:
            families.append("RS*, PS*, ES* or EdDSA with AUTH_JWKS_URL")
        return "accepted: " + " or ".join(families)

    def _verify(self, token: str, key: Any, algorithms: Sequence[str]) -> dict[str, Any]:
        import jwt  # imported by identify() already; see there

        try:
            return jwt.decode(
                token,
                key,
                algorithms=list(algorithms),
                options=self._options,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            reason = "expired"
        except jwt.ImmatureSignatureError:
            reason = "not yet valid (nbf or iat in the future)"
        except jwt.InvalidIssuerError:
            reason = f"issuer is not AUTH_ISSUER={self._issuer}"
        except jwt.InvalidAudienceError:
            reason = f"audience is not AUTH_AUDIENCE={self._audience}"
        except jwt.InvalidSignatureError:
            reason = "bad signature"
        except jwt.MissingRequiredClaimError as exc:
            reason = f"claim {exc.claim!r} is missing"
        except jwt.PyJWTError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        raise TokenRejected(reason)


def sole_authorization(values: Sequence[str]) -> str | None:
    """The request's Authorization header, None without one; TokenRejected for two or more (RFC 9110
    allows one): each names its own credential, and which one a proxy in front judged is unknown."""
    if len(values) > 1:
        raise TokenRejected(f"{len(values)} Authorization headers: send one")
    return values[0] if values else None


def _expiry(exp: Any) -> float:
    """A verified `exp` as a Unix time: PyJWT reads it with int(), which takes integers no float holds."""
    try:
        expiry = float(exp)
    except OverflowError:
        expiry = math.inf
    if not math.isfinite(expiry):
        raise TokenRejected("claim 'exp' is not a time (too far in the future)")
    return expiry


def _bearer_token(authorization: str) -> str:
    scheme, space, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        # Never quoted: a header without a scheme is the credential itself.
        what = "the Authorization scheme is not Bearer" if space else "the Authorization header has no scheme"
        raise TokenRejected(f"{what}: send 'Bearer <token>'")
    token = token.strip()
    if not token:
        raise TokenRejected("empty bearer token")
    if len(token) > MAX_TOKEN:
        raise TokenRejected(f"the bearer token is longer than {MAX_TOKEN} characters")
    if not token.isascii():
        # A header's undecodable bytes reach us as surrogates, which no encoder takes.
        raise TokenRejected("the bearer token is not ASCII (a JWT is base64url text)")
    return token


def authenticator_for(settings: Settings) -> Authenticator | None:
    """None when AUTH_DISABLED=true or no AUTH_JWKS_URL / AUTH_JWT_SECRET is configured (everything open)."""
    if settings.auth_disabled or not (settings.auth_jwks_url or settings.auth_jwt_secret):
        return None
    return Authenticator(settings)


def warn_if_open(settings: Settings) -> None:
    """Log a warning when a production server starts with sign-in switched off (AUTH_DISABLED=true)."""
    if settings.production and settings.auth_disabled:
        log.warning(
            "AUTH_DISABLED=true with APP_ENV=production: anyone may read and change everything; "
            "set AUTH_JWKS_URL or AUTH_JWT_SECRET and remove AUTH_DISABLED to require sign-in"
        )
