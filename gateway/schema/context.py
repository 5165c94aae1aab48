"""The per-request context every resolver receives as `info.context`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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


@dataclass
class RequestContext:
    """Built by the executor for each operation, with fresh DataLoaders."""

    data_source: DataSource
    settings: Settings
    request: Any = None  # the framework's request (aiohttp or Starlette)
    identity: Identity | None = None  # who is asking; None when anonymous or sign-in is off
    sign_in: bool = False  # whether sign-in is on (AUTH_* configured): then rules apply
    prepared: Prepared | None = None  # the document the executor parsed and validated
    marks: Mapping[tuple[str, str], Mark] = field(default_factory=dict)  # the policy's, by (type, field)
    cost: int | None = None  # the operation's estimated rows, once the limits have measured it
    feed: ActivityFeed | None = None  # this instance's live feed; None where subscriptions cannot run
    on_slow: Callable[[], None] | None = None  # a subscription's: called when it falls too far behind
    following: bool = False  # a subscription's: it receives every activity committed from now on
    feed_buffer: int | None = None  # a subscription's: activities it may have waiting (else the feed's)
    _loaders: Loaders | None = field(default=None, init=False, repr=False)

    _viewer: UserRecord | None = field(default=None, init=False, repr=False)
    _viewer_read: bool = field(default=False, init=False, repr=False)

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
