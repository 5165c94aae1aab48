"""The per-request context every resolver receives as `info.context`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gateway.auth.identity import Identity
from gateway.datasources.feed import ActivityFeed, Follower
from gateway.datasources.protocol import DataSource
from gateway.datasources.records import UserRecord
from gateway.errors import SubscriptionsUnsupported, Unauthenticated
from gateway.schema.loaders import Loaders
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.execution.documents import Prepared
    from gateway.execution.policy import Mark

__all__ = ["RequestContext"]


class RequestContext:
    """Built by the executor for each operation, with fresh DataLoaders.

    A plain class: its constructor sets what every request gives, and what only some requests
    set (a subscription's feed, say) starts as a class-level default. A dataclass set all fifteen
    attributes for each request, ~2% of a one-row lookup.
    """

    prepared: Prepared | None = None  # the document the executor parsed and validated
    marks: Mapping[tuple[str, str], Mark] = MappingProxyType({})  # the policy's, by (type, field)
    cost: int | None = None  # the operation's estimated rows, once the limits have measured it
    feed: ActivityFeed | None = None  # this instance's live feed; None where subscriptions cannot run
    on_slow: Callable[[], None] | None = None  # a subscription's: called when it falls too far behind
    following: bool = False  # a subscription's: it receives every activity committed from now on
    feed_buffer: int | None = None  # a subscription's: activities it may have waiting (else the feed's)
    _loaders: Loaders | None = None
    _viewer: UserRecord | None = None
    _viewer_read: bool = False

    def __init__(
        self,
        data_source: DataSource,
        settings: Settings,
        request: Any = None,
        identity: Identity | None = None,
        sign_in: bool = False,
    ) -> None:
        """`request`: the framework's (aiohttp or Starlette); `identity`: who is asking, None when
        anonymous or sign-in is off; `sign_in`: whether it is on (AUTH_* configured), and rules apply."""
        self.data_source = data_source
        self.settings = settings
        self.request = request
        self.identity = identity
        self.sign_in = sign_in

    @property
    def loaders(self) -> Loaders:
        """This request's DataLoaders, made on first use: a compiled query never needs them."""
        if self._loaders is None:
            self._loaders = Loaders(self.data_source)
        return self._loaders

    async def viewer(self) -> UserRecord | None:
        """The signed-in person's profile, read once per request; None when anonymous or without one."""
        if self.identity is None:
            return None
        if not self._viewer_read:
            self._viewer = await self.data_source.user_by_subject(self.identity.subject)
            self._viewer_read = True
        return self._viewer

    def signed_in(self) -> Identity:
        """The identity of the person asking; raises Unauthenticated for an anonymous request."""
        if self.identity is None:
            raise Unauthenticated("sign in first: send a bearer token in the Authorization header")
        return self.identity

    @asynccontextmanager
    async def follow(self) -> AsyncIterator[Follower]:
        """Follow the live activity feed (a subscription); SubscriptionsUnsupported where there is none."""
        if self.feed is None:
            raise SubscriptionsUnsupported()
        async with self.feed.follow(self.on_slow, self.feed_buffer) as follower:
            self.following = True
            try:
                yield follower
            finally:
                self.following = False

    def after_write(self) -> None:
        """Forget what this request loaded, so fields read after a mutation see its effect."""
        self._loaders = None
        self._viewer_read = False
