"""The writes every SQL backend shares: each one and the activity it records commit together, in
one `transaction()`, and the local change watch learns of them at once."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn

from gateway.datasources.protocol import UniqueViolation
from gateway.datasources.records import GroupRecord, NewSession, NewShot, SessionRecord, UserRecord
from gateway.datasources.sql.rows import (
    GROUP_COLUMNS,
    SESSION_COLUMNS,
    SESSION_FIELDS,
    USER_COLUMNS,
    SqlConnection,
    as_utc,
    group_record,
    session_record,
    user_record,
)
from gateway.errors import Conflict, NotFound, SessionFull, TooManyGroups

__all__ = ["SqlWrites", "created_session"]

_SHOT_COLUMNS = ("session_id", "sequence", "score_tenths", "x", "y")


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
        total_tenths=new.total_tenths(),
    )


class SqlWrites(ABC):
    """The DataSource protocol's writes over `transaction()`."""

    # Locks the selected rows until the transaction ends; SQLite locks the whole file instead.
    for_update: str = " FOR UPDATE"
    _on_commit: list[Callable[[], None]]  # wakes the local change watches

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[SqlConnection]:
        """A pooled connection inside one transaction: committed on exit, rolled back on error."""

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
            # Not quoted: the client knows what it sent, and errors are logged (as are their messages).
            raise Conflict("a user with this email already exists") from None
        return UserRecord(new_id, email, display_name, now, subject)

    async def create_group(self, name: str, description: str | None) -> GroupRecord:
        now = datetime.now(UTC)
        async with self.transaction() as conn:
            new_id = await conn.insert(
                "INSERT INTO club_groups (name, description, created_at) VALUES (?, ?, ?)",
                (name, description, now),
            )
        return GroupRecord(new_id, name, description, now)

    async def join_group(self, group_id: int, user_id: int, limit: int) -> GroupRecord:
        try:
            async with self._writing() as conn:
                # First: concurrent joins by one user queue on its row, and each counts what the one
                # before it committed (MariaDB takes its snapshot at the first plain read, after this).
                user = await conn.fetch(f"SELECT id FROM users WHERE id = ?{self.for_update}", (user_id,))
                group = await self._require_group(conn, group_id)
                if not user:
                    raise NotFound("user")
                member = await conn.fetch(
                    "SELECT 1 AS one FROM memberships WHERE group_id = ? AND user_id = ?",
                    (group_id, user_id),
                )
                if not member:
                    await self._check_room(conn, user_id, limit)
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
        total = new.total_tenths()
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
                await self._not_created(conn, new)
            await self._insert_shots(conn, session_id, 1, new.shots)
            await self._record(conn, "SESSION_CREATED", new.user_id, new.group_id, session_id, now)
        return created_session(session_id, new)

    async def add_shots(self, session_id: int, shots: Sequence[NewShot], limit: int) -> SessionRecord:
        async with self._writing() as conn:
            # The UPDATE locks the session row, so concurrent calls number their shots in turn, and
            # each checks the limit against the count the one before it left.
            changed = await conn.execute(
                "UPDATE shooting_sessions SET shot_count = shot_count + ?,"
                " total_tenths = total_tenths + ? WHERE id = ? AND shot_count + ? <= ?",
                (len(shots), sum(shot.score_tenths for shot in shots), session_id, len(shots), limit),
            )
            if not changed:
                await self._not_added(conn, session_id, len(shots), limit)
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

    async def _not_created(self, conn: SqlConnection, new: NewSession) -> NoReturn:
        """`new` was not inserted because its user, or else its group, does not exist: raise which."""
        await self._require_user(conn, new.user_id)
        if new.group_id is not None:
            await self._require_group(conn, new.group_id)
        raise NotFound("user")  # created since the INSERT looked: it did not exist then

    async def _not_added(self, conn: SqlConnection, session_id: int, adding: int, limit: int) -> NoReturn:
        """Shots were not added: the session does not exist (NotFound), or is full (SessionFull)."""
        session = await self._require_session(conn, session_id)
        raise SessionFull(session.shot_count, adding, limit)

    async def _check_room(self, conn: SqlConnection, user_id: int, limit: int) -> None:
        """TooManyGroups when the user already belongs to `limit` groups."""
        rows = await conn.fetch("SELECT COUNT(*) AS n FROM memberships WHERE user_id = ?", (user_id,))
        if (held := int(rows[0]["n"])) >= limit:
            raise TooManyGroups(held, limit)

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
        # Most shots have no position: then x and y are left to be NULL, not sent as 2 of 5 values.
        width = 5 if any(shot.x is not None or shot.y is not None for shot in shots) else 3
        args: list[Any] = []
        for offset, shot in enumerate(shots):
            args += (session_id, first_sequence + offset, shot.score_tenths, shot.x, shot.y)[:width]
        columns = ", ".join(_SHOT_COLUMNS[:width])
        values = ", ".join([f"({', '.join('?' * width)})"] * len(shots))
        await conn.execute(f"INSERT INTO shots ({columns}) VALUES {values}", args)

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
        self._committed()

    def _committed(self) -> None:
        """Tell the local change watches that activities may have committed."""
        for wake in self._on_commit:
            wake()
