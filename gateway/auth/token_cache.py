"""Identities of tokens verified lately: a client sends the same token with every request, and verifying
it with PyJWT costs more than answering a simple query."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.auth.identity import Identity

__all__ = ["TokenCache"]


class TokenCache:
    """At most `size` verified tokens, each kept until it expires or for `ttl` seconds, whichever is first.

    Only tokens that verified are kept, so a flood of forged tokens cannot evict real ones. The `ttl`
    bounds how long a token outlives a key the provider withdrew.
    """

    def __init__(self, *, size: int = 4096, ttl: float = 60.0, clock: Callable[[], float] = time.time):
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[Identity, float]] = {}

    def get(self, token: str) -> Identity | None:
        """The identity of `token` if it was verified lately and has not expired since."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        identity, until = entry
        if self._clock() < until:
            return identity
        del self._entries[token]
        return None

    def put(self, token: str, identity: Identity, valid_until: float) -> None:
        """Keep `token`, verified just now and valid until the epoch second `valid_until`."""
        if token not in self._entries and len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]  # the oldest
        self._entries[token] = (identity, min(valid_until, self._clock() + self._ttl))
