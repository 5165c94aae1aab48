"""The records data sources return and the inputs they take, shared by every backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "ActivityRecord",
    "GroupRecord",
    "NewSession",
    "NewShot",
    "Page",
    "SessionFilter",
    "SessionOrder",
    "SessionRecord",
    "ShotRecord",
    "UserRecord",
]

SessionOrder = Literal["STARTED_AT_DESC", "STARTED_AT_ASC"]


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    email: str
    display_name: str
    created_at: datetime
    subject: str | None = None  # the `sub` of the signed-in person whose profile this is


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
    session_id: int | None  # null once the session is deleted
    session_ref: int | None = None  # the session it is about, kept after a deletion


@dataclass(frozen=True, slots=True)
class Page:
    """`first` rows between the keyset positions `after` and `before` (a row's sort values), exclusive.

    `backward`: the `first` rows nearest `before` (the end of the list), returned nearest first,
    that is in the list's reverse order.
    """

    first: int
    after: tuple[Any, ...] | None = None
    before: tuple[Any, ...] | None = None
    backward: bool = False


@dataclass(frozen=True, slots=True)
class SessionFilter:
    user_id: int | None = None
    group_id: int | None = None
    discipline: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None


@dataclass(slots=True)  # not frozen: ten to a session, each built through object.__setattr__ per field
class NewShot:
    score_tenths: int
    x: float | None = None
    y: float | None = None


@dataclass(slots=True)  # not frozen, as NewShot: a write's input, built once per request
class NewSession:
    user_id: int
    group_id: int | None
    started_at: datetime
    discipline: str
    location: str | None = None
    distance_meters: int | None = None
    notes: str | None = None
    shots: Sequence[NewShot] = field(default_factory=tuple)

    def total_tenths(self) -> int:
        """The shots' total score, in tenths."""
        return sum([shot.score_tenths for shot in self.shots])  # a list: no generator resumed per shot
