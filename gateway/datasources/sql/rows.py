"""Rows as the shared SQL returns them: column lists, the connection protocol, record builders."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.datasources.records import ActivityRecord, GroupRecord, SessionRecord, ShotRecord, UserRecord

__all__ = [
    "ACTIVITY_COLUMNS",
    "GROUP_COLUMNS",
    "SESSION_COLUMNS",
    "SESSION_FIELDS",
    "SHOT_COLUMNS",
    "USER_COLUMNS",
    "Row",
    "SqlConnection",
    "activity_record",
    "as_utc",
    "group_record",
    "placeholders",
    "session_record",
    "shot_record",
    "user_record",
]

Row = dict[str, Any]

USER_COLUMNS = "u.id, u.email, u.display_name, u.created_at, u.subject"
GROUP_COLUMNS = "g.id, g.name, g.description, g.created_at"
SESSION_COLUMNS = (
    "s.id, s.user_id, s.group_id, s.started_at, s.location, s.discipline,"
    " s.distance_meters, s.notes, s.shot_count, s.total_tenths"
)
SHOT_COLUMNS = "t.id, t.session_id, t.sequence, t.score_tenths, t.x, t.y"
ACTIVITY_COLUMNS = "a.id, a.kind, a.created_at, a.user_id, a.group_id, a.session_id, a.session_ref"

# Columns updateShootingSession may change; keys of `changes` are checked against it.
SESSION_FIELDS = frozenset({"group_id", "started_at", "location", "discipline", "distance_meters", "notes"})


class SqlConnection(Protocol):
    """One database connection as the shared queries use it."""

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...
    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int: ...
    async def insert(self, sql: str, args: Sequence[Any] = ()) -> int:
        """The new row's id; 0 when the statement inserted no row (an INSERT … SELECT)."""
        ...


def as_utc(value: datetime | str) -> datetime:
    """A timestamp as the drivers return it (aware, naive UTC, or ISO text) made aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def placeholders(count: int) -> str:
    return "(" + ", ".join("?" * count) + ")"


def user_record(row: Row) -> UserRecord:
    return UserRecord(row["id"], row["email"], row["display_name"], as_utc(row["created_at"]), row["subject"])


def group_record(row: Row) -> GroupRecord:
    return GroupRecord(row["id"], row["name"], row["description"], as_utc(row["created_at"]))


def session_record(row: Row) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        user_id=row["user_id"],
        group_id=row["group_id"],
        started_at=as_utc(row["started_at"]),
        location=row["location"],
        discipline=row["discipline"],
        distance_meters=row["distance_meters"],
        notes=row["notes"],
        shot_count=int(row["shot_count"]),
        total_tenths=int(row["total_tenths"]),
    )


def shot_record(row: Row) -> ShotRecord:
    return ShotRecord(row["id"], row["session_id"], row["sequence"], row["score_tenths"], row["x"], row["y"])


def activity_record(row: Row) -> ActivityRecord:
    return ActivityRecord(
        row["id"],
        row["kind"],
        as_utc(row["created_at"]),
        row["user_id"],
        row["group_id"],
        row["session_id"],
        row["session_ref"],
    )
