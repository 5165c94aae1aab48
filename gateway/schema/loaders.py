"""Per-request DataLoaders: every nested field loads in one batched statement per level."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

from strawberry.dataloader import DataLoader

from gateway.datasources.protocol import DataSource
from gateway.datasources.records import (
    ActivityRecord,
    GroupRecord,
    Page,
    SessionRecord,
    ShotRecord,
    UserRecord,
)

__all__ = ["Loaders"]

K = TypeVar("K")
V = TypeVar("V")


def _by_key(
    fetch: Callable[[Sequence[int]], Awaitable[Sequence[Any]]],
) -> Callable[[list[int]], Awaitable[list[Any]]]:
    """A batch function returning, for each key, the record whose id it is (or None)."""

    async def load(keys: list[int]) -> list[Any]:
        found = {record.id: record for record in await fetch(keys)}
        return [found.get(key) for key in keys]

    return load


def _grouped(
    fetch: Callable[[Sequence[int]], Awaitable[Sequence[tuple[int, V]]]],
) -> Callable[[list[int]], Awaitable[list[list[V]]]]:
    """A batch function returning, for each key, the list of records owned by it."""

    async def load(keys: list[int]) -> list[list[V]]:
        owned: dict[int, list[V]] = defaultdict(list)
        for owner, record in await fetch(keys):
            owned[owner].append(record)
        return [owned.get(key, []) for key in keys]

    return load


def _counted(
    fetch: Callable[[Sequence[int]], Awaitable[dict[int, int]]],
) -> Callable[[list[int]], Awaitable[list[int]]]:
    """A batch function returning, for each key, how many records it owns (0 when none)."""

    async def load(keys: list[int]) -> list[int]:
        counts = await fetch(keys)
        return [counts.get(key, 0) for key in keys]

    return load


class Loaders:
    """Fresh for each request, so nothing cached outlives it."""

    def __init__(self, source: DataSource) -> None:
        self._source = source
        self.user: DataLoader[int, UserRecord | None] = DataLoader(_by_key(source.users_by_ids))
        self.group: DataLoader[int, GroupRecord | None] = DataLoader(_by_key(source.groups_by_ids))
        self.session: DataLoader[int, SessionRecord | None] = DataLoader(_by_key(source.sessions_by_ids))
        self.shot: DataLoader[int, ShotRecord | None] = DataLoader(_by_key(source.shots_by_ids))
        self.activity: DataLoader[int, ActivityRecord | None] = DataLoader(_by_key(source.activities_by_ids))
        self.member_counts: DataLoader[int, int] = DataLoader(_counted(source.count_members))
        self.shots: DataLoader[int, list[ShotRecord]] = DataLoader(_grouped(self._shots_of_sessions))
        self.groups_of_user: DataLoader[int, list[GroupRecord]] = DataLoader(_grouped(source.groups_of_users))
        self._paged: dict[tuple[Any, ...], DataLoader[int, Any]] = {}

    async def _shots_of_sessions(self, ids: Sequence[int]) -> list[tuple[int, ShotRecord]]:
        return [(shot.session_id, shot) for shot in await self._source.shots_of_sessions(ids)]

    def sessions_of(
        self, owner: Literal["user_id", "group_id"], page: Page
    ) -> DataLoader[int, list[SessionRecord]]:
        """Sessions of many users (or groups) with the same page arguments, in one statement."""
        key = ("sessions", owner, page)
        if key not in self._paged:

            async def fetch(ids: Sequence[int]) -> list[tuple[int, SessionRecord]]:
                sessions = await self._source.sessions_of(owner, ids, page)
                return [(getattr(s, owner), s) for s in sessions]

            self._paged[key] = DataLoader(_grouped(fetch))
        return self._paged[key]

    def session_counts(self, owner: Literal["user_id", "group_id"]) -> DataLoader[int, int]:
        """How many sessions each of many users (or groups) has, in one statement."""
        key = ("session counts", owner)
        if key not in self._paged:

            async def fetch(ids: Sequence[int]) -> dict[int, int]:
                return await self._source.count_sessions_of(owner, ids)

            self._paged[key] = DataLoader(_counted(fetch))
        return self._paged[key]

    def members_of(self, page: Page) -> DataLoader[int, list[UserRecord]]:
        """Members of many groups with the same page arguments, in one statement."""
        key = ("members", page)
        if key not in self._paged:

            async def fetch(ids: Sequence[int]) -> list[tuple[int, UserRecord]]:
                return await self._source.members_of_groups(ids, page)

            self._paged[key] = DataLoader(_grouped(fetch))
        return self._paged[key]
