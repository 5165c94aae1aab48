"""The DataSource behaviour shared by every SQL backend: its lifecycle and reads here, its writes
in `writes.py`; a backend supplies connections.

Queries are written once, with `?` placeholders, over tables every backend's migrations
create alike. A backend turns the placeholders into its own style, adapts parameters and
converts its driver's errors at its own boundary.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Literal

from gateway.datasources.changes import BoundedReader, ChangeWatch
from gateway.datasources.protocol import DataSource, SourceStats
from gateway.datasources.records import (
    ActivityRecord,
    GroupRecord,
    Page,
    SessionFilter,
    SessionOrder,
    SessionRecord,
    ShotRecord,
    UserRecord,
)
from gateway.datasources.sql.json_sql import JsonSql
from gateway.datasources.sql.keyset import (
    activity_conditions,
    page_keyset,
    session_conditions,
    where_clause,
)
from gateway.datasources.sql.polling import ActivityPoller
from gateway.datasources.sql.rows import (
    ACTIVITY_COLUMNS,
    GROUP_COLUMNS,
    SESSION_COLUMNS,
    SHOT_COLUMNS,
    USER_COLUMNS,
    Row,
    SqlConnection,
    activity_record,
    group_record,
    placeholders,
    session_record,
    shot_record,
    user_record,
)
from gateway.datasources.sql.writes import SqlWrites

if TYPE_CHECKING:
    from gateway.telemetry.tracing import Tracing

__all__ = ["SqlDataSource"]

_OWNERS = frozenset({"user_id", "group_id"})


class SqlDataSource(SqlWrites):
    """Implements the DataSource protocol over `connection()` and `transaction()`."""

    def __init__(self) -> None:
        self.statements = 0
        self.json_sql: JsonSql | None = None
        self.tracing: Tracing | None = None  # set by the executor when tracing is on
        self._on_commit = []

    def change_watch(self, poll_interval: float, answer_within: float) -> ChangeWatch:
        """How this instance learns of new activities: by default it reads the table every `poll_interval`
        seconds, and at once after its own writes; a read is given up after `answer_within` seconds."""
        watch = ActivityPoller(BoundedReader(self, answer_within), poll_interval)
        self._on_commit.append(watch.wake)
        return watch

    async def fetch_json(self, sql: str, args: Sequence[Any] = ()) -> tuple[bytes | None, bool]:
        """The `data` column of the one row a JSON-building statement returns, as UTF-8 (the
        response's bytes), and its `ok` flag."""
        row = (await self._fetch(sql, args))[0]
        value = row["data"]
        # MariaDB labels a JSON built only of computed ASCII text as binary: bytes already.
        if isinstance(value, str):
            value = value.encode()
        return value, bool(row.get("ok", True))

    async def open(self) -> None:
        """Connect and apply the migrations; a failed open closes whatever it had opened."""
        try:
            await self._open()
        except BaseException:
            # Or its connections outlive the failure, one pool more each time the ASGI door retries.
            await self.close()
            raise

    @abstractmethod
    async def _open(self) -> None:
        """Create the pool and apply the migrations; `close()` must undo any part of it."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def stats(self) -> SourceStats:
        """The pool's figures now, and the credential store's reads."""

    @abstractmethod
    def connection(self) -> AbstractAsyncContextManager[SqlConnection]:
        """A pooled connection in autocommit mode, for reads."""

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.fetch("SELECT 1 AS ok")

    def for_queries(self) -> DataSource:
        """What query operations read from: this source, unless a backend has a read replica."""
        return self

    def degraded(self) -> str | None:
        return None

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        async with self.connection() as conn:
            return await conn.fetch(sql, args)

    # -- reads -------------------------------------------------------------------------

    async def users_by_ids(self, ids: Sequence[int]) -> list[UserRecord]:
        if not ids:
            return []
        sql = f"SELECT {USER_COLUMNS} FROM users u WHERE u.id IN {placeholders(len(ids))}"
        return [user_record(r) for r in await self._fetch(sql, ids)]

    async def groups_by_ids(self, ids: Sequence[int]) -> list[GroupRecord]:
        if not ids:
            return []
        sql = f"SELECT {GROUP_COLUMNS} FROM club_groups g WHERE g.id IN {placeholders(len(ids))}"
        return [group_record(r) for r in await self._fetch(sql, ids)]

    async def sessions_by_ids(self, ids: Sequence[int]) -> list[SessionRecord]:
        if not ids:
            return []
        sql = f"SELECT {SESSION_COLUMNS} FROM shooting_sessions s WHERE s.id IN {placeholders(len(ids))}"
        return [session_record(r) for r in await self._fetch(sql, ids)]

    async def shots_by_ids(self, ids: Sequence[int]) -> list[ShotRecord]:
        if not ids:
            return []
        sql = f"SELECT {SHOT_COLUMNS} FROM shots t WHERE t.id IN {placeholders(len(ids))}"
        return [shot_record(r) for r in await self._fetch(sql, ids)]

    async def shots_of_sessions(self, session_ids: Sequence[int]) -> list[ShotRecord]:
        if not session_ids:
            return []
        sql = (
            f"SELECT {SHOT_COLUMNS} FROM shots t WHERE t.session_id IN"
            f" {placeholders(len(session_ids))} ORDER BY t.session_id, t.sequence"
        )
        return [shot_record(r) for r in await self._fetch(sql, session_ids)]

    async def groups_of_users(self, user_ids: Sequence[int]) -> list[tuple[int, GroupRecord]]:
        if not user_ids:
            return []
        sql = (
            f"SELECT m.user_id AS owner_id, {GROUP_COLUMNS} FROM memberships m"
            " JOIN club_groups g ON g.id = m.group_id"
            f" WHERE m.user_id IN {placeholders(len(user_ids))} ORDER BY m.user_id, g.id"
        )
        return [(r["owner_id"], group_record(r)) for r in await self._fetch(sql, user_ids)]

    async def members_of_groups(self, group_ids: Sequence[int], page: Page) -> list[tuple[int, UserRecord]]:
        if not group_ids:
            return []
        keyset, cursor_args, order = page_keyset(("u.id",), False, page)
        sql = (
            "SELECT * FROM ("
            f"SELECT m.group_id AS owner_id, {USER_COLUMNS},"
            f" ROW_NUMBER() OVER (PARTITION BY m.group_id ORDER BY {order}) AS rn"
            " FROM memberships m JOIN users u ON u.id = m.user_id"
            f" WHERE {' AND '.join([f'm.group_id IN {placeholders(len(group_ids))}', *keyset])}"
            f") ranked WHERE ranked.rn <= ? ORDER BY ranked.owner_id, {order.replace('u.', 'ranked.')}"
        )
        args = [*group_ids, *cursor_args, page.first]
        return [(r["owner_id"], user_record(r)) for r in await self._fetch(sql, args)]

    async def list_users(self, page: Page) -> list[UserRecord]:
        keyset, args, order = page_keyset(("u.id",), False, page)
        sql = f"SELECT {USER_COLUMNS} FROM users u{where_clause(keyset)} ORDER BY {order} LIMIT ?"
        return [user_record(r) for r in await self._fetch(sql, [*args, page.first])]

    async def list_groups(self, page: Page) -> list[GroupRecord]:
        keyset, args, order = page_keyset(("g.id",), False, page)
        sql = f"SELECT {GROUP_COLUMNS} FROM club_groups g{where_clause(keyset)} ORDER BY {order} LIMIT ?"
        return [group_record(r) for r in await self._fetch(sql, [*args, page.first])]

    async def list_sessions(
        self, where: SessionFilter, order: SessionOrder, page: Page
    ) -> list[SessionRecord]:
        conditions, args = session_conditions(where)
        keyset, cursor_args, sort = page_keyset(("s.started_at", "s.id"), order == "STARTED_AT_DESC", page)
        sql = (
            f"SELECT {SESSION_COLUMNS} FROM shooting_sessions s{where_clause(conditions + keyset)}"
            f" ORDER BY {sort} LIMIT ?"
        )
        return [session_record(r) for r in await self._fetch(sql, [*args, *cursor_args, page.first])]

    async def sessions_of(
        self, owner: Literal["user_id", "group_id"], ids: Sequence[int], page: Page
    ) -> list[SessionRecord]:
        if owner not in _OWNERS:
            raise ValueError(f"cannot list sessions by {owner!r}")
        if not ids:
            return []
        keyset, cursor_args, order = page_keyset(("s.started_at", "s.id"), True, page)
        sql = (
            f"SELECT * FROM (SELECT {SESSION_COLUMNS}, ROW_NUMBER() OVER ("
            f"PARTITION BY s.{owner} ORDER BY {order}) AS rn"
            f" FROM shooting_sessions s{where_clause([f's.{owner} IN {placeholders(len(ids))}', *keyset])}"
            f") ranked WHERE ranked.rn <= ? ORDER BY ranked.{owner}, {order.replace('s.', 'ranked.')}"
        )
        return [session_record(r) for r in await self._fetch(sql, [*ids, *cursor_args, page.first])]

    async def list_activities(
        self, user_id: int | None, group_id: int | None, page: Page
    ) -> list[ActivityRecord]:
        conditions, args = activity_conditions(user_id, group_id)
        keyset, cursor_args, order = page_keyset(("a.id",), True, page)
        sql = (
            f"SELECT {ACTIVITY_COLUMNS} FROM activities a{where_clause(conditions + keyset)}"
            f" ORDER BY {order} LIMIT ?"
        )
        return [activity_record(r) for r in await self._fetch(sql, [*args, *cursor_args, page.first])]

    # -- counts: a connection's totalCount, read only when a query selects it ------------

    async def count_users(self) -> int:
        return await self._count("SELECT COUNT(*) AS n FROM users u")

    async def count_groups(self) -> int:
        return await self._count("SELECT COUNT(*) AS n FROM club_groups g")

    async def count_sessions(self, where: SessionFilter) -> int:
        conditions, args = session_conditions(where)
        return await self._count(
            f"SELECT COUNT(*) AS n FROM shooting_sessions s{where_clause(conditions)}", args
        )

    async def count_sessions_of(
        self, owner: Literal["user_id", "group_id"], ids: Sequence[int]
    ) -> dict[int, int]:
        if owner not in _OWNERS:
            raise ValueError(f"cannot count sessions by {owner!r}")
        if not ids:
            return {}
        sql = (
            f"SELECT s.{owner} AS owner_id, COUNT(*) AS n FROM shooting_sessions s"
            f" WHERE s.{owner} IN {placeholders(len(ids))} GROUP BY s.{owner}"
        )
        return {r["owner_id"]: int(r["n"]) for r in await self._fetch(sql, ids)}

    async def count_members(self, group_ids: Sequence[int]) -> dict[int, int]:
        if not group_ids:
            return {}
        sql = (
            "SELECT m.group_id AS owner_id, COUNT(*) AS n FROM memberships m"
            f" WHERE m.group_id IN {placeholders(len(group_ids))} GROUP BY m.group_id"
        )
        return {r["owner_id"]: int(r["n"]) for r in await self._fetch(sql, group_ids)}

    async def count_activities(self, user_id: int | None, group_id: int | None) -> int:
        conditions, args = activity_conditions(user_id, group_id)
        return await self._count(f"SELECT COUNT(*) AS n FROM activities a{where_clause(conditions)}", args)

    async def _count(self, sql: str, args: Sequence[Any] = ()) -> int:
        return int((await self._fetch(sql, args))[0]["n"])

    async def activities_by_ids(self, ids: Sequence[int]) -> list[ActivityRecord]:
        if not ids:
            return []
        where = f"a.id IN {placeholders(len(ids))}"
        sql = f"SELECT {ACTIVITY_COLUMNS} FROM activities a WHERE {where} ORDER BY a.id"
        return [activity_record(r) for r in await self._fetch(sql, ids)]

    async def activities_after(self, after_id: int, limit: int) -> list[ActivityRecord]:
        sql = f"SELECT {ACTIVITY_COLUMNS} FROM activities a WHERE a.id > ? ORDER BY a.id LIMIT ?"
        return [activity_record(r) for r in await self._fetch(sql, (after_id, limit))]

    async def last_activity_id(self) -> int:
        rows = await self._fetch("SELECT MAX(a.id) AS last_id FROM activities a")
        return int(rows[0]["last_id"] or 0)

    async def user_by_subject(self, subject: str) -> UserRecord | None:
        sql = f"SELECT {USER_COLUMNS} FROM users u WHERE u.subject = ?"
        rows = await self._fetch(sql, (subject,))
        return user_record(rows[0]) if rows else None
