"""Input types of the mutations and filters, and the checks that turn them into data-source values."""

from __future__ import annotations

import math
import re
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from gateway.datasources.records import NewShot
from gateway.errors import BadUserInput
from gateway.schema.ids import decode_id
from gateway.schema.input_building import build_directly
from gateway.schema.instants import EARLIEST, LATEST, utc_instant

__all__ = [
    "MAX_GROUPS_PER_USER",
    "MAX_SHOTS_PER_CALL",
    "MAX_SHOTS_PER_SESSION",
    "CreateGroupInput",
    "CreateShootingSessionInput",
    "CreateUserInput",
    "ShootingSessionFilter",
    "ShootingSessionOrder",
    "ShotInput",
    "UpdateShootingSessionInput",
    "aware",
    "email",
    "id_of",
    "optional_text",
    "positive",
    "shots",
    "text",
]

MAX_SHOTS_PER_CALL = 500
# A session's `shots` is read whole, not paged: this bounds what one read of it returns. An ISSF
# match is 60-120 shots, a long training session a few hundred. addShots checks it in the UPDATE
# that counts the shots; createShootingSession stays under it by MAX_SHOTS_PER_CALL.
MAX_SHOTS_PER_SESSION = 1000
# A user's `groups` is read whole, not paged: this bounds what one read of it returns. joinGroup
# counts the memberships with the user's row locked; createGroup does not make its creator a member.
MAX_GROUPS_PER_USER = 100
MAX_COORDINATE = 1_000_000.0  # x and y: a shot lands on a target, not a million units from its centre
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


@strawberry.input
class CreateUserInput:
    email: str
    display_name: str


@strawberry.input
class CreateGroupInput:
    name: str
    description: str | None = None


@strawberry.input(description="A shot to record; the server assigns its sequence number.")
class ShotInput:
    score: float = strawberry.field(description="0.0 to 10.9, one decimal place.")
    x: float | None = None
    y: float | None = None


@strawberry.input
class CreateShootingSessionInput:
    discipline: str
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="Whose session; default the signed-in member (another member: admins only)."
    )
    group_id: strawberry.ID | None = None
    started_at: datetime | None = strawberry.field(
        default=None, description="When the session began, with a UTC offset; default now."
    )
    location: str | None = None
    distance_meters: int | None = None
    notes: str | None = None
    shots: list[ShotInput] | None = None


@strawberry.input(description="Only the fields given change; null clears an optional field.")
class UpdateShootingSessionInput:
    group_id: strawberry.ID | None = strawberry.UNSET
    started_at: datetime | None = strawberry.UNSET
    location: str | None = strawberry.UNSET
    discipline: str | None = strawberry.UNSET
    distance_meters: int | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET


@strawberry.input
class ShootingSessionFilter:
    user_id: strawberry.ID | None = None
    group_id: strawberry.ID | None = None
    discipline: str | None = None
    started_after: datetime | None = strawberry.field(
        default=None, description="Sessions that started at or after this instant."
    )
    started_before: datetime | None = strawberry.field(
        default=None, description="Sessions that started before this instant."
    )

    def __post_init__(self) -> None:
        # Both paths build the filter (the compiled one too), so the check holds wherever it is read.
        if self.discipline is not None:
            _printable("filter.discipline", self.discipline)


@strawberry.enum
class ShootingSessionOrder(Enum):
    STARTED_AT_DESC = "STARTED_AT_DESC"
    STARTED_AT_ASC = "STARTED_AT_ASC"


def id_of(field: str, value: str, type_name: str) -> int:
    """The row key of an ID argument, or BAD_USER_INPUT naming the argument."""
    pk = decode_id(value, type_name)
    if pk is None:
        raise BadUserInput(field, f"{value!r} is not a {type_name} id")
    return pk


def _printable(field: str, value: str) -> str:
    # PostgreSQL cannot store NUL in text; SQLite and MySQL can: refused everywhere, so all answer alike.
    if "\x00" in value:
        raise BadUserInput(field, "must not contain NUL characters (\\u0000)")
    return value


def text(field: str, value: str, max_length: int) -> str:
    """A required text: trimmed, not empty, not longer than `max_length`, without NUL characters."""
    value = _printable(field, value).strip()
    if not value:
        raise BadUserInput(field, "must not be empty")
    if len(value) > max_length:
        raise BadUserInput(field, f"must be at most {max_length} characters (got {len(value)})")
    return value


def optional_text(field: str, value: str | None, max_length: int) -> str | None:
    """An optional text: trimmed; empty becomes null."""
    if value is None or not value.strip():
        return None
    return text(field, value, max_length)


def email(field: str, value: str) -> str:
    value = _printable(field, value).strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise BadUserInput(field, f"{value!r} is not an email address")
    return value


def positive(field: str, value: int | None, maximum: int) -> int | None:
    if value is not None and not 0 < value <= maximum:
        raise BadUserInput(field, f"must be between 1 and {maximum} (got {value})")
    return value


def aware(field: str, value: datetime) -> datetime:
    """An instant with a UTC offset, within what every backend stores; returned in UTC."""
    if value.tzinfo is None:
        raise BadUserInput(field, "must include a UTC offset, e.g. 2026-05-01T09:30:00Z")
    instant = utc_instant(value)
    if instant is None:
        span = f"from {EARLIEST:%Y-%m-%dT%H:%MZ} to {LATEST:%Y-%m-%dT%H:%MZ}"
        raise BadUserInput(field, f"must be {span} (got {value.isoformat()})")
    return instant


def _score_tenths(field: str, index: int, score: float) -> int:
    # Checked before scaling: 1e308 * 10 is infinity, which round() cannot convert.
    tenths = round(score * 10) if math.isfinite(score) and abs(score) < 1000 else -1
    if not 0 <= tenths <= 109 or abs(score * 10 - tenths) > 1e-6:
        message = f"must be 0.0 to 10.9 with one decimal place (got {score})"
        raise BadUserInput(f"{field}[{index}].score", message)
    return tenths


def _coordinate(field: str, index: int, axis: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not (math.isfinite(value) and abs(value) <= MAX_COORDINATE):
        message = f"must be a number from -{MAX_COORDINATE:,.0f} to {MAX_COORDINATE:,.0f}"
        raise BadUserInput(f"{field}[{index}].{axis}", message)
    # -0.0 is stored as 0 by MySQL and as -0 by PostgreSQL: every backend answers 0.
    return value + 0.0


def shots(field: str, given: list[ShotInput]) -> list[NewShot]:
    """The shots checked; each refusal names its shot's field, `field[i].score` say (the name is
    made only then: three per shot took ~2% of a 10-shot mutation)."""
    if len(given) > MAX_SHOTS_PER_CALL:
        raise BadUserInput(field, f"at most {MAX_SHOTS_PER_CALL} shots per call (got {len(given)})")
    return [
        NewShot(
            _score_tenths(field, i, shot.score),
            _coordinate(field, i, "x", shot.x),
            _coordinate(field, i, "y", shot.y),
        )
        for i, shot in enumerate(given)
    ]


def session_changes(given: UpdateShootingSessionInput) -> dict[str, Any]:
    """The columns updateShootingSession sets, checked, from the fields the client sent."""
    changes: dict[str, Any] = {}
    if given.group_id is not strawberry.UNSET:
        changes["group_id"] = (
            None if given.group_id is None else id_of("input.groupId", given.group_id, "Group")
        )
    if given.started_at is not strawberry.UNSET:
        if given.started_at is None:
            raise BadUserInput("input.startedAt", "cannot be null")
        changes["started_at"] = aware("input.startedAt", given.started_at)
    if given.discipline is not strawberry.UNSET:
        if given.discipline is None:
            raise BadUserInput("input.discipline", "cannot be null")
        changes["discipline"] = text("input.discipline", given.discipline, 50)
    if given.location is not strawberry.UNSET:
        changes["location"] = optional_text("input.location", given.location, 200)
    if given.notes is not strawberry.UNSET:
        changes["notes"] = optional_text("input.notes", given.notes, 2000)
    if given.distance_meters is not strawberry.UNSET:
        changes["distance_meters"] = positive("input.distanceMeters", given.distance_meters, 100_000)
    return changes


# Nested classes first: a class's builder calls its fields' builders.
build_directly(
    ShotInput,
    CreateShootingSessionInput,
    CreateUserInput,
    CreateGroupInput,
    UpdateShootingSessionInput,
    ShootingSessionFilter,
)
