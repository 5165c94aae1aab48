"""The DataSource protocol the schema depends on, the records it returns, and its errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from gateway.datasources.json_sql import JsonSql
from gateway.errors import Unavailable

__all__ = [
    "ActivityRecord",
    "DataSource",
    "DataSourceUnavailable",
    "GroupRecord",
    "NewSession",
    "NewShot",
    "Page",
    "SessionFilter",
    "SessionOrder",
    "SessionRecord",
    "ShotRecord",
    "UniqueViolation",
    "UserRecord",
]

SessionOrder = Literal["STARTED_AT_DESC", "STARTED_AT_ASC"]


class DataSourceUnavailable(Unavailable):
    """The database cannot be reached, or the pool is closed or exhausted."""


class UniqueViolation(Exception):
    """A write broke a unique constraint; `constraint` names it."""

    def __init__(self, constraint: str) -> None:
        self.constraint = constraint
        super().__init__(f"unique constraint {constraint} violated")


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    email: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: int
    name: str
    description: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: int
    user_id: int
    group_id: int | None
    started_at: datetime
    location: str | None
    discipline: str
    distance_meters: int | None
    notes: str | None
    shot_count: int
    total_tenths: int


@dataclass(frozen=True, slots=True)
class ShotRecord:
    id: int
    session_id: int
    sequence: int
    score_tenths: int
    x: float | None
    y: float | None


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    id: int
    kind: str
    created_at: datetime
    user_id: int
    group_id: int | None
    session_id: int | None


@dataclass(frozen=True, slots=True)
class Page:
    """`first` rows after the keyset position `after` (the sort values of the last row seen)."""

    first: int
    after: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True)
class SessionFilter:
    user_id: int | None = None
    group_id: int | None = None
    discipline: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewShot:
    score_tenths: int
    x: float | None = None
    y: float | None = None


@dataclass(frozen=True, slots=True)
class NewSession:
    user_id: int
    group_id: int | None
    started_at: datetime
    discipline: str
    location: str | None = None
    distance_meters: int | None = None
    notes: str | None = None
    shots: Sequence[NewShot] = field(default_factory=tuple)


class DataSource(Protocol):
    """What the schema needs from a database. Lists return at most `page.first` records."""

    statements: int  # SQL statements executed so far, for tests and benchmarks
    json_sql: JsonSql | None  # how this backend builds JSON in SQL, when the fast path may use it

    async def fetch_json(self, sql: str, args: Sequence[Any] = ()) -> tuple[str | None, bool]: ...

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    async def users_by_ids(self, ids: Sequence[int]) -> list[UserRecord]: ...
    async def groups_by_ids(self, ids: Sequence[int]) -> list[GroupRecord]: ...
    async def sessions_by_ids(self, ids: Sequence[int]) -> list[SessionRecord]: ...
    async def shots_of_sessions(self, session_ids: Sequence[int]) -> list[ShotRecord]: ...
    async def groups_of_users(self, user_ids: Sequence[int]) -> list[tuple[int, GroupRecord]]: ...
    async def members_of_groups(
        self, group_ids: Sequence[int], page: Page
    ) -> list[tuple[int, UserRecord]]: ...
    async def list_users(self, page: Page) -> list[UserRecord]: ...
    async def list_groups(self, page: Page) -> list[GroupRecord]: ...
    async def list_sessions(
        self, where: SessionFilter, order: SessionOrder, page: Page
    ) -> list[SessionRecord]: ...
    async def sessions_of(
        self, owner: Literal["user_id", "group_id"], ids: Sequence[int], page: Page
    ) -> list[SessionRecord]: ...
    async def list_activities(
        self, user_id: int | None, group_id: int | None, page: Page
    ) -> list[ActivityRecord]: ...

    async def create_user(self, email: str, display_name: str) -> UserRecord: ...
    async def create_group(self, name: str, description: str | None) -> GroupRecord: ...
    async def join_group(self, group_id: int, user_id: int) -> GroupRecord: ...
    async def leave_group(self, group_id: int, user_id: int) -> GroupRecord: ...
    async def create_session(self, new: NewSession) -> SessionRecord: ...
    async def add_shots(self, session_id: int, shots: Sequence[NewShot]) -> SessionRecord: ...
    async def update_session(self, session_id: int, changes: Mapping[str, Any]) -> SessionRecord: ...
    async def delete_session(self, session_id: int) -> bool: ...
