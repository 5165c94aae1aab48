"""The identity provider's public signing keys (its JWK Set), fetched with aiohttp and cached by `kid`.

A token naming a key the cache lacks makes the cache fetch the set again: that is how a provider's key
rotation looks. Fetches are single-flight and at most one per `refetch_interval`, so a flood of tokens
with made-up `kid`s costs the provider one request per interval. The set is fetched again after
`max_age`, so a key the provider withdraws stops verifying; if that fetch fails, the keys already held
keep working until a later fetch succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "JwksCache",
    "JwksUnavailable",
    "KeyNotFound",
    "SigningKey",
    "read_jwk_set",
]

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
# RFC 7518 ties each ECDSA algorithm to one curve.
_EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
_MAX_DOCUMENT_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One public key of the set and the algorithms a token verified with it may name."""

    kid: str | None
    key: Any  # a `cryptography` public key
    algorithms: tuple[str, ...]


class JwksUnavailable(Exception):
    """The JWK Set could not be fetched or read; the message says why."""


class KeyNotFound(Exception):
    """The JWK Set has no key for the token's `kid`."""


def read_jwk_set(document: Any) -> dict[str | None, SigningKey]:
    """The signing keys of a JWK Set document by `kid`; keys no accepted algorithm can use are left out."""
    import jwt  # with cryptography ~45 ms at start-up, on a path only a key fetch takes

    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JwksUnavailable('the document is not a JWK Set (no "keys" list)')
    keys: dict[str | None, SigningKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if "d" in jwk:
            log.warning("JWKS key %r is a private key; a JWK Set must publish public keys only", kid)
            continue
        algorithms = _algorithms(jwk)
        if not algorithms:
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm=algorithms[0]).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            log.warning("JWKS key %r is unusable (%s)", kid, type(exc).__name__)
            continue
        keys[kid if isinstance(kid, str) else None] = SigningKey(kid, key, algorithms)
    return keys


def _algorithms(jwk: Mapping[str, Any]) -> tuple[str, ...]:
    """What a key may verify: its own `alg` if it names one, else every asymmetric one its type fits."""
    kty = jwk.get("kty")
    if kty == "RSA":
        fitting: tuple[str, ...] = _RSA_ALGORITHMS
    elif kty == "EC" and _curve(jwk) in _EC_ALGORITHMS:
        fitting = (_EC_ALGORITHMS[jwk["crv"]],)
    elif kty == "OKP" and _curve(jwk) in _OKP_CURVES:
        fitting = ("EdDSA",)
    else:  # "oct" (shared secrets) among them: never accepted from a JWKS
        return ()
    named = jwk.get("alg")
    if named is None:
        return fitting
    return (named,) if named in fitting else ()


def _curve(jwk: Mapping[str, Any]) -> str | None:
    """The key's `crv` if it is a name: a list or an object there is no curve, not a TypeError."""
    crv = jwk.get("crv")
    return crv if isinstance(crv, str) else None


def _without_credentials(url: str) -> str:
    """`url` fit for a log line: a `user:password@` in it (HTTP basic auth to the JWKS) left out."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class JwksCache:
    """The keys at one JWKS URL, cached for this process; use from one event loop."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        refetch_interval: float = 30.0,
        max_age: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if refetch_interval > max_age:
            raise ValueError("refetch_interval is greater than max_age")
        self._url = url
        self._shown_url = _without_credentials(url)
        self._timeout = timeout
        self._refetch_interval = refetch_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str | None, SigningKey] = {}
        self._attempted_at: float | None = None
        self._loaded_at: float | None = None
        self._failure: str | None = None  # why the last fetch failed; None after a success
        self._refreshing: asyncio.Task[None] | None = None  # the one fetch in flight
        self._session: aiohttp.ClientSession | None = None  # made on first use, inside the serving loop

    async def key(self, kid: str | None) -> SigningKey:
        """The key for `kid`, fetching the set first when it lacks `kid` or has grown old."""
        found = self._find(kid)
        if found is not None and self._fresh():
            return found
        if self._refreshing is None and self._may_fetch():
            self._refreshing = asyncio.create_task(self._refresh())
        if self._refreshing is not None:
            # Shielded: a request that goes away must not cancel the fetch other requests wait for.
            await asyncio.shield(self._refreshing)
        found = self._find(kid)
        if found is not None:
            # Fresh, or kept from before a failed fetch.
            return found
        if self._failure is not None:
            raise JwksUnavailable(self._failure)
        raise KeyNotFound(self._missing(kid))

    async def close(self) -> None:
        """Stop a fetch in flight and close the HTTP session, if one was opened."""
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refreshing
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _find(self, kid: str | None) -> SigningKey | None:
        if kid is None and len(self._keys) == 1:
            # A set of one key needs no `kid` to pick it.
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if kid is not None else None

    def _fresh(self) -> bool:
        return self._loaded_at is not None and self._clock() - self._loaded_at < self._max_age

    def _missing(self, kid: str | None) -> str:
        if kid is None:
            return f"the token names no kid and the JWKS holds {len(self._keys)} keys"
        since = self._clock() - (self._attempted_at or 0.0)
        wait = max(0.0, self._refetch_interval - since)
        return f"no key with kid {kid!r} in the JWKS (next fetch allowed in {wait:.0f} s)"

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._refetch_interval

    async def _refresh(self) -> None:
        self._attempted_at = self._clock()
        try:
            keys = read_jwk_set(await self._download())
            if not keys:
                raise JwksUnavailable("the JWK Set holds no RSA, EC or OKP signing key")
        except JwksUnavailable as exc:
            self._failure = f"JWKS at {self._shown_url}: {exc}"
            log.warning("%s; keeping the %d keys fetched before", self._failure, len(self._keys))
            return
        finally:
            self._refreshing = None
        self._keys, self._loaded_at, self._failure = keys, self._clock(), None
        log.info("JWKS at %s: %d signing keys", self._shown_url, len(keys))

    async def _download(self) -> Any:
        import aiohttp  # ~90 ms at start-up, which the ASGI door otherwise never needs

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        try:
            async with self._session.get(self._url, headers={"Accept": "application/json"}) as response:
                if response.status != 200:
                    raise JwksUnavailable(f"answered HTTP {response.status}")
                body = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > _MAX_DOCUMENT_BYTES:
                        raise JwksUnavailable(f"the document is larger than {_MAX_DOCUMENT_BYTES} bytes")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise JwksUnavailable(f"unreachable ({type(exc).__name__}: {exc})") from exc
        try:
            return json.loads(body)
        except (ValueError, RecursionError):  # nesting deeper than the parser's stack is not a JWK Set
            raise JwksUnavailable("the answer is not JSON") from None
