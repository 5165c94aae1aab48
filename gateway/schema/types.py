"""The object types of the API: User, Group, ShootingSession, Shot, Activity (each a Relay `Node`)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from gateway.datasources.records import ActivityRecord, GroupRecord, SessionRecord, ShotRecord, UserRecord
from gateway.schema.context import RequestContext
from gateway.schema.ids import encode_id
from gateway.schema.node import Node
from gateway.schema.pagination import (
    AfterArg,
    BeforeArg,
    Connection,
    FirstArg,
    LastArg,
    Listing,
    by_id,
    by_start,
)

__all__ = [
    "MEMBERS",
    "SESSIONS_NEWEST_FIRST",
    "Activity",
    "ActivityKind",
    "Group",
    "ShootingSession",
    "Shot",
    "User",
]

Ctx = Info[RequestContext, None]

SESSIONS_NEWEST_FIRST: Listing[SessionRecord] = Listing("sessions:STARTED_AT_DESC", (datetime, int), by_start)
MEMBERS: Listing[UserRecord] = Listing("members", (int,), by_id)


@strawberry.enum(description="What happened in an activity-feed entry.")
class ActivityKind(Enum):
    SESSION_CREATED = "SESSION_CREATED"
    SHOTS_ADDED = "SHOTS_ADDED"
    SESSION_UPDATED = "SESSION_UPDATED"
    SESSION_DELETED = "SESSION_DELETED"
    GROUP_JOINED = "GROUP_JOINED"
    GROUP_LEFT = "GROUP_LEFT"


@strawberry.type(description="A club member.")
class User(Node):
    id: strawberry.ID
    pk: strawberry.Private[int]
    email: str | None = strawberry.field(description="Null unless the policy lets the viewer see it.")
    display_name: str
    created_at: datetime
    subject: strawberry.Private[str | None]

    @classmethod
    def from_record(cls, record: UserRecord) -> User:
        return cls(
            id=strawberry.ID(encode_id("User", record.id)),
            pk=record.id,
            email=record.email,
            display_name=record.display_name,
            created_at=record.created_at,
            subject=record.subject,
        )

    @strawberry.field(description="The groups this user belongs to.")
    async def groups(self, info: Ctx) -> list[Group]:
        records = await info.context.loaders.groups_of_user.load(self.pk)
        return [Group.from_record(r) for r in records]

    @strawberry.field(description="This user's sessions, newest first.")
    async def shooting_sessions(
        self,
        info: Ctx,
        first: FirstArg = None,
        after: AfterArg = None,
        last: LastArg = None,
        before: BeforeArg = None,
    ) -> Connection[ShootingSession]:
        page = SESSIONS_NEWEST_FIRST.page(first, after, last, before)
        loaders = info.context.loaders
        records = await loaders.sessions_of("user_id", page).load(self.pk)
        return SESSIONS_NEWEST_FIRST.connection(
            records,
            page,
            ShootingSession.from_record,
            lambda: loaders.session_counts("user_id").load(self.pk),
        )


@strawberry.type(description="A group of members who shoot together.")
class Group(Node):
    id: strawberry.ID
    pk: strawberry.Private[int]
    name: str
    description: str | None
    created_at: datetime

    @classmethod
    def from_record(cls, record: GroupRecord) -> Group:
        return cls(
            id=strawberry.ID(encode_id("Group", record.id)),
            pk=record.id,
            name=record.name,
            description=record.description,
            created_at=record.created_at,
        )

    @strawberry.field(description="The group's members, in the order they were created.")
    async def members(
        self,
        info: Ctx,
        first: FirstArg = None,
        after: AfterArg = None,
        last: LastArg = None,
        before: BeforeArg = None,
    ) -> Connection[User]:
        page = MEMBERS.page(first, after, last, before)
        loaders = info.context.loaders
        records = await loaders.members_of(page).load(self.pk)
        return MEMBERS.connection(
            records, page, User.from_record, lambda: loaders.member_counts.load(self.pk)
        )

    @strawberry.field(description="Sessions shot in this group, newest first.")
    async def shooting_sessions(
        self,
        info: Ctx,
        first: FirstArg = None,
        after: AfterArg = None,
        last: LastArg = None,
        before: BeforeArg = None,
    ) -> Connection[ShootingSession]:
        page = SESSIONS_NEWEST_FIRST.page(first, after, last, before)
        loaders = info.context.loaders
        records = await loaders.sessions_of("group_id", page).load(self.pk)
        return SESSIONS_NEWEST_FIRST.connection(
            records,
            page,
            ShootingSession.from_record,
            lambda: loaders.session_counts("group_id").load(self.pk),
        )


@strawberry.type(description="One shot: its place in the session, score and optional hit position.")
class Shot(Node):
    id: strawberry.ID
    pk: strawberry.Private[int]
    sequence: int
    score: float = strawberry.field(description="0.0 to 10.9, one decimal place.")
    x: float | None
    y: float | None

    @classmethod
    def from_record(cls, record: ShotRecord) -> Shot:
        return cls(
            id=strawberry.ID(encode_id("Shot", record.id)),
            pk=record.id,
            sequence=record.sequence,
            score=record.score_tenths / 10,
            x=record.x,
            y=record.y,
        )


@strawberry.type(description="A shooting session of one user, with its shots.")
class ShootingSession(Node):
    id: strawberry.ID
    pk: strawberry.Private[int]
    user_pk: strawberry.Private[int]
    group_pk: strawberry.Private[int | None]
    started_at: datetime
    location: str | None
    discipline: str
    distance_meters: int | None
    notes: str | None
    shot_count: int
    total_score: float = strawberry.field(description="Sum of the shots' scores.")
    total_tenths: strawberry.Private[int]

    @classmethod
    def from_record(cls, record: SessionRecord) -> ShootingSession:
        return cls(
            id=strawberry.ID(encode_id("ShootingSession", record.id)),
            pk=record.id,
            user_pk=record.user_id,
            group_pk=record.group_id,
            started_at=record.started_at,
            location=record.location,
            discipline=record.discipline,
            distance_meters=record.distance_meters,
            notes=record.notes,
            shot_count=record.shot_count,
            total_score=record.total_tenths / 10,
            total_tenths=record.total_tenths,
        )

    @strawberry.field(description="Mean score per shot, to two decimal places; null with no shots.")
    def average_score(self) -> float | None:
        if not self.shot_count:
            return None
        # Exact decimal rounding, half up, in integers: binary floats would round 2.675 down.
        return (self.total_tenths * 20 + self.shot_count) // (2 * self.shot_count) / 100

    @strawberry.field
    async def user(self, info: Ctx) -> User:
        record = await info.context.loaders.user.load(self.user_pk)
        if record is None:
            raise LookupError(f"session {self.pk} has no user {self.user_pk}")
        return User.from_record(record)

    @strawberry.field
    async def group(self, info: Ctx) -> Group | None:
        if self.group_pk is None:
            return None
        record = await info.context.loaders.group.load(self.group_pk)
        return Group.from_record(record) if record else None

    @strawberry.field(description="The shots in the order they were fired (sequence 1, 2, 3…).")
    async def shots(self, info: Ctx) -> list[Shot]:
        if not self.shot_count:
            return []
        # Read after the session: shots added since (by a concurrent addShots) are not this
        # session's as read. Shots are only appended, so those it counted are 1..shot_count.
        records = await info.context.loaders.shots.load(self.pk)
        return [Shot.from_record(r) for r in records if r.sequence <= self.shot_count]


@strawberry.type(description="An entry of the activity feed.")
class Activity(Node):
    id: strawberry.ID
    pk: strawberry.Private[int]
    kind: ActivityKind
    created_at: datetime
    user_pk: strawberry.Private[int]
    group_pk: strawberry.Private[int | None]
    session_pk: strawberry.Private[int | None]

    @classmethod
    def from_record(cls, record: ActivityRecord) -> Activity:
        return cls(
            id=strawberry.ID(encode_id("Activity", record.id)),
            pk=record.id,
            kind=ActivityKind(record.kind),
            created_at=record.created_at,
            user_pk=record.user_id,
            group_pk=record.group_id,
            session_pk=record.session_id,
        )

    @strawberry.field
    async def user(self, info: Ctx) -> User:
        record = await info.context.loaders.user.load(self.user_pk)
        if record is None:
            raise LookupError(f"activity {self.pk} has no user {self.user_pk}")
        return User.from_record(record)

    @strawberry.field
    async def group(self, info: Ctx) -> Group | None:
        if self.group_pk is None:
            return None
        record = await info.context.loaders.group.load(self.group_pk)
        return Group.from_record(record) if record else None

    @strawberry.field(description="The session, unless it has since been deleted.")
    async def shooting_session(self, info: Ctx) -> ShootingSession | None:
        if self.session_pk is None:
            return None
        record = await info.context.loaders.session.load(self.session_pk)
        return ShootingSession.from_record(record) if record else None
