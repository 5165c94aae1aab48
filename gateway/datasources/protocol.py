"""The DataSource protocol the schema depends on, and the errors its implementations raise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.datasources.changes import ChangeWatch
from gateway.datasources.records import (
    ActivityRecord,
    GroupRecord,
    NewSession,
    NewShot,
    Page,
    SessionFilter,
    SessionOrder,
    SessionRecord,
    ShotRecord,
    UserRecord,
)
from gateway.errors import ErrorCode, GatewayError, Unavailable

__all__ = ["DataSource", "DataSourceUnavailable", "SourceStats", "StatementTimeout", "UniqueViolation"]


class DataSourceUnavailable(Unavailable):
    """The database cannot be reached, or the pool is closed or exhausted."""


class StatementTimeout(GatewayError):
    """The database stopped a statement that ran longer than DB_STATEMENT_TIMEOUT."""

    code = ErrorCode.TIMEOUT

    def __init__(self) -> None:
        super().__init__("the database stopped a statement that ran longer than DB_STATEMENT_TIMEOUT")


class UniqueViolation(Exception):
    """A write broke a unique constraint; `constraint` names it."""

    def __init__(self, constraint: str) -> None:
        self.constraint = constraint
        super().__init__(f"unique constraint {constraint} violated")


@dataclass(frozen=True, slots=True)
class SourceStats:
    """A data source's figures at one moment, for /metrics."""

    pool_size: int = 0  # open connections
    pool_in_use: int = 0  # connections lent to a request
    pool_waiting: int = 0  # requests waiting for a free connection
    pool_max: int = 0  # DB_POOL_MAX
    # AWS Secrets Manager reads since the source opened, by (version stage, "ok" or "error").
    secret_reads: Mapping[tuple[str, str], int] = field(default_factory=dict)


class DataSource(Protocol):
    """What the schema needs from a database. Lists return at most `page.first` records, in the
    list's order (its reverse for a backward page); counts ignore pages."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    def stats(self) -> SourceStats: ...
    def for_queries(self) -> DataSource:
        """What query operations read from: a read replica's source, or this one."""
        ...

    def degraded(self) -> str | None:
        """Why the source runs on less than it was configured with (a read replica down), or None."""
        ...

    async def users_by_ids(self, ids: Sequence[int]) -> list[UserRecord]: ...
    async def groups_by_ids(self, ids: Sequence[int]) -> list[GroupRecord]: ...
    async def sessions_by_ids(self, ids: Sequence[int]) -> list[SessionRecord]: ...
    async def shots_by_ids(self, ids: Sequence[int]) -> list[ShotRecord]: ...
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
    async def activities_by_ids(self, ids: Sequence[int]) -> list[ActivityRecord]: ...
    async def activities_after(self, after_id: int, limit: int) -> list[ActivityRecord]: ...
    async def last_activity_id(self) -> int: ...
    def change_watch(self, poll_interval: float, answer_within: float) -> ChangeWatch:
        """This instance's one watch on committed activities (live updates); each of its reads is given
        up after `answer_within` seconds."""
        ...

    async def count_users(self) -> int: ...
    async def count_groups(self) -> int: ...
    async def count_sessions(self, where: SessionFilter) -> int: ...
    async def count_sessions_of(
        self, owner: Literal["user_id", "group_id"], ids: Sequence[int]
    ) -> dict[int, int]: ...
    async def count_members(self, group_ids: Sequence[int]) -> dict[int, int]: ...
    async def count_activities(self, user_id: int | None, group_id: int | None) -> int: ...

    async def user_by_subject(self, subject: str) -> UserRecord | None: ...
    async def create_user(self, email: str, display_name: str, subject: str | None = None) -> UserRecord: ...
    async def create_group(self, name: str, description: str | None) -> GroupRecord: ...
    async def join_group(self, group_id: int, user_id: int, limit: int) -> GroupRecord:
        """Make the user a member (a member already: nothing changes); TooManyGroups (nothing written)
        when they would belong to more than `limit` groups."""
        ...

    async def leave_group(self, group_id: int, user_id: int) -> GroupRecord: ...
    async def create_session(self, new: NewSession) -> SessionRecord: ...
    async def add_shots(self, session_id: int, shots: Sequence[NewShot], limit: int) -> SessionRecord:
        """Append `shots`; SessionFull (nothing written) when the session would hold more than `limit`."""
        ...

    async def update_session(self, session_id: int, changes: Mapping[str, Any]) -> SessionRecord: ...
    async def delete_session(self, session_id: int) -> bool: ...
