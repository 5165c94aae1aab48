"""The DataSource behaviour shared by every SQL backend; a backend supplies connections.

Queries are written once, with `?` placeholders, over tables every backend's migrations
create alike. A backend turns the placeholders into its own style, adapts parameters and
converts its driver's errors at its own boundary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from gateway.datasources.changes import ChangeWatch
from gateway.datasources.protocol import DataSource, SourceStats, UniqueViolation
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
    SESSION_FIELDS,
    SHOT_COLUMNS,
    USER_COLUMNS,
    Row,
    SqlConnection,
    activity_record,
    as_utc,
    group_record,
    placeholders,
    session_record,
    shot_record,
    user_record,
)
from gateway.errors import Conflict, NotFound

if TYPE_CHECKING:
    from gateway.telemetry.tracing import Tracing

__all__ = ["SqlDataSource", "created_session"]

_OWNERS = frozenset({"user_id", "group_id"})


def created_session(session_id: int, new: NewSession) -> SessionRecord:
    """The record of the session `new` just inserted as `session_id`."""
    return SessionRecord(
        id=session_id,
        user_id=new.user_id,
        group_id=new.group_id,
        started_at=as_utc(new.started_at),
        location=new.location,
        discipline=new.discipline,
        distance_meters=new.distance_meters,
        notes=new.notes,
        shot_count=len(new.shots),
        total_tenths=sum(shot.score_tenths for shot in new.shots),
    )


class SqlDataSource(ABC):
    """Implements the DataSource protocol over `connection()` and `transaction()`."""

    # Locks the selected rows until the transaction ends; SQLite locks the whole file instead.
    for_update: str = " FOR UPDATE"

    def __init__(self) -> None:
        self.statements = 0
        self.json_sql: JsonSql | None = None
        self.tracing: Tracing | None = None  # set by the executor when tracing is on
        self._on_commit: list[Callable[[], None]] = []  # wakes the local change watches

    def change_watch(self, poll_interval: float) -> ChangeWatch:
        """How this instance learns of new activities: by default it reads the table every `poll_interval`
        seconds, and at once after its own writes."""
        watch = ActivityPoller(self, poll_interval)
        self._on_commit.append(watch.wake)
        return watch

    async def fetch_json(self, sql: str, args: Sequence[Any] = ()) -> tuple[str | None, bool]:
        """The `data` column of the one row a JSON-building statement returns, and its `ok` flag."""
        row = (await self._fetch(sql, args))[0]
        value = row["data"]
        # MariaDB labels a JSON built only of computed ASCII text as binary.
        if isinstance(value, bytes):
            value = value.decode()
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

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[SqlConnection]:
        """A pooled connection inside one transaction: committed on exit, rolled back on error."""

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

    # -- writes: each one and the activity it records commit together ----------------

    async def user_by_subject(self, subject: str) -> UserRecord | None:
        sql = f"SELECT {USER_COLUMNS} FROM users u WHERE u.subject = ?"
        rows = await self._fetch(sql, (subject,))
        return user_record(rows[0]) if rows else None

    async def create_user(self, email: str, display_name: str, subject: str | None = None) -> UserRecord:
        now = datetime.now(UTC)
        try:
            async with self.transaction() as conn:
                new_id = await conn.insert(
                    "INSERT INTO users (email, display_name, created_at, subject) VALUES (?, ?, ?, ?)",
                    (email, display_name, now, subject),
                )
        except UniqueViolation as exc:
            # PostgreSQL and MySQL name the index, SQLite the column (the message ends with either).
            if exc.constraint.rstrip("'").endswith(("users_subject_key", "users.subject")):
                raise Conflict("you already have a profile") from None
            raise Conflict(f"a user with email {email} already exists") from None
        return UserRecord(new_id, email, display_name, now, subject)

    async def create_group(self, name: str, description: str | None) -> GroupRecord:
        now = datetime.now(UTC)
        async with self.transaction() as conn:
            new_id = await conn.insert(
                "INSERT INTO club_groups (name, description, created_at) VALUES (?, ?, ?)",
                (name, description, now),
            )
        return GroupRecord(new_id, name, description, now)

    async def join_group(self, group_id: int, user_id: int) -> GroupRecord:
        try:
            async with self._writing() as conn:
                group = await self._require_group(conn, group_id)
                await self._require_user(conn, user_id)
                member = await conn.fetch(
                    "SELECT 1 AS one FROM memberships WHERE group_id = ? AND user_id = ?",
                    (group_id, user_id),
                )
                if not member:
                    now = datetime.now(UTC)
                    await conn.execute(
                        "INSERT INTO memberships (group_id, user_id, joined_at) VALUES (?, ?, ?)",
                        (group_id, user_id, now),
                    )
                    await self._record(conn, "GROUP_JOINED", user_id, group_id, None, now)
        except UniqueViolation:
            pass  # a concurrent join of the same pair won: the user is a member either way
        return group

    async def leave_group(self, group_id: int, user_id: int) -> GroupRecord:
        async with self._writing() as conn:
            group = await self._require_group(conn, group_id)
            await self._require_user(conn, user_id)
            removed = await conn.execute(
                "DELETE FROM memberships WHERE group_id = ? AND user_id = ?", (group_id, user_id)
            )
            if removed:
                await self._record(conn, "GROUP_LEFT", user_id, group_id, None, datetime.now(UTC))
        return group

    async def create_session(self, new: NewSession) -> SessionRecord:
        now = datetime.now(UTC)
        total = sum(shot.score_tenths for shot in new.shots)
        async with self._writing() as conn:
            # One round trip: the row is inserted only if its user (and group) exist.
            session_id = await conn.insert(
                "INSERT INTO shooting_sessions (user_id, group_id, started_at, location,"
                " discipline, distance_meters, notes, shot_count, total_tenths, created_at)"
                " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM users u WHERE u.id = ?"
                " AND (? IS NULL OR EXISTS (SELECT 1 FROM club_groups g WHERE g.id = ?))",
                (
                    new.user_id,
                    new.group_id,
                    new.started_at,
                    new.location,
                    new.discipline,
                    new.distance_meters,
                    new.notes,
                    len(new.shots),
                    total,
                    now,
                    new.user_id,
                    new.group_id,
                    new.group_id,
                ),
            )
            if not session_id:
                await self._require_user(conn, new.user_id)
                if new.group_id is not None:
                    await self._require_group(conn, new.group_id)
                raise NotFound("user")  # created since the INSERT looked: it did not exist then
            await self._insert_shots(conn, session_id, 1, new.shots)
            await self._record(conn, "SESSION_CREATED", new.user_id, new.group_id, session_id, now)
        return created_session(session_id, new)

    async def add_shots(self, session_id: int, shots: Sequence[NewShot]) -> SessionRecord:
        async with self._writing() as conn:
            # The UPDATE locks the session row, so concurrent calls number their shots in turn.
            changed = await conn.execute(
                "UPDATE shooting_sessions SET shot_count = shot_count + ?,"
                " total_tenths = total_tenths + ? WHERE id = ?",
                (len(shots), sum(shot.score_tenths for shot in shots), session_id),
            )
            if not changed:
                raise NotFound("shooting session")
            session = await self._require_session(conn, session_id)
            await self._insert_shots(conn, session_id, session.shot_count - len(shots) + 1, shots)
            await self._record(
                conn,
                "SHOTS_ADDED",
                session.user_id,
                session.group_id,
                session_id,
                datetime.now(UTC),
            )
        return session

    async def update_session(self, session_id: int, changes: Mapping[str, Any]) -> SessionRecord:
        unknown = set(changes) - SESSION_FIELDS
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        async with self._writing() as conn:
            await self._require_session(conn, session_id)
            if changes.get("group_id") is not None:
                await self._require_group(conn, changes["group_id"])
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                await conn.execute(
                    f"UPDATE shooting_sessions SET {assignments} WHERE id = ?",
                    (*changes.values(), session_id),
                )
            session = await self._require_session(conn, session_id)
            await self._record(
                conn,
                "SESSION_UPDATED",
                session.user_id,
                session.group_id,
                session_id,
                datetime.now(UTC),
            )
        return session

    async def delete_session(self, session_id: int) -> bool:
        async with self._writing() as conn:
            rows = await conn.fetch(
                f"SELECT {SESSION_COLUMNS} FROM shooting_sessions s WHERE s.id = ?{self.for_update}",
                (session_id,),
            )
            if not rows:
                return False
            session = session_record(rows[0])
            await conn.execute("DELETE FROM shots WHERE session_id = ?", (session_id,))
            await conn.execute("UPDATE activities SET session_id = NULL WHERE session_id = ?", (session_id,))
            await conn.execute("DELETE FROM shooting_sessions WHERE id = ?", (session_id,))
            await self._record(
                conn,
                "SESSION_DELETED",
                session.user_id,
                session.group_id,
                None,
                datetime.now(UTC),
                session_ref=session_id,
            )
        return True

    # -- pieces of the writes ----------------------------------------------------------

    async def _require_user(self, conn: SqlConnection, user_id: int) -> UserRecord:
        rows = await conn.fetch(f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?", (user_id,))
        if not rows:
            raise NotFound("user")
        return user_record(rows[0])

    async def _require_group(self, conn: SqlConnection, group_id: int) -> GroupRecord:
        rows = await conn.fetch(f"SELECT {GROUP_COLUMNS} FROM club_groups g WHERE g.id = ?", (group_id,))
        if not rows:
            raise NotFound("group")
        return group_record(rows[0])

    async def _require_session(self, conn: SqlConnection, session_id: int) -> SessionRecord:
        rows = await conn.fetch(
            f"SELECT {SESSION_COLUMNS} FROM shooting_sessions s WHERE s.id = ?", (session_id,)
        )
        if not rows:
            raise NotFound("shooting session")
        return session_record(rows[0])

    async def _insert_shots(
        self, conn: SqlConnection, session_id: int, first_sequence: int, shots: Sequence[NewShot]
    ) -> None:
        if not shots:
            return
        values = ", ".join(["(?, ?, ?, ?, ?)"] * len(shots))
        args: list[Any] = []
        for offset, shot in enumerate(shots):
            args += [session_id, first_sequence + offset, shot.score_tenths, shot.x, shot.y]
        await conn.execute(
            f"INSERT INTO shots (session_id, sequence, score_tenths, x, y) VALUES {values}", args
        )

    async def _record(
        self,
        conn: SqlConnection,
        kind: str,
        user_id: int,
        group_id: int | None,
        session_id: int | None,
        at: datetime,
        session_ref: int | None = None,
    ) -> None:
        """Insert an activity; `session_ref` is the session it is about (default `session_id`), kept after
        a deletion, for shootingSessionChanged."""
        await conn.execute(
            "INSERT INTO activities (kind, created_at, user_id, group_id, session_id, session_ref)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kind, at, user_id, group_id, session_id, session_id if session_ref is None else session_ref),
        )

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[SqlConnection]:
        """`transaction()`, then the local change watch is told at once that activities may have committed."""
        async with self.transaction() as conn:
            yield conn
        for wake in self._on_commit:
            wake()
