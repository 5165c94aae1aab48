"""The Query root: lookups by ID (null when unknown) and paginated lists."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.datasources.records import ActivityRecord, GroupRecord, SessionFilter, UserRecord
from gateway.schema.ids import decode_id
from gateway.schema.inputs import (
    ShootingSessionFilter,
    ShootingSessionOrder,
    aware,
    id_of,
)
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
from gateway.schema.refetch import load_node, load_nodes
from gateway.schema.types import Activity, Ctx, Group, ShootingSession, User

__all__ = ["ACTIVITIES", "GROUPS", "SESSIONS", "USERS", "Query", "session_filter"]

USERS: Listing[UserRecord] = Listing("users", (int,), by_id)
GROUPS: Listing[GroupRecord] = Listing("groups", (int,), by_id)
ACTIVITIES: Listing[ActivityRecord] = Listing("activities", (int,), by_id)
SESSIONS = {
    order: Listing(f"sessions:{order.value}", (datetime, int), by_start) for order in ShootingSessionOrder
}


def session_filter(given: ShootingSessionFilter | None) -> SessionFilter:
    """The data-source filter for the GraphQL one, its IDs and instants checked."""
    if given is None:
        return SessionFilter()
    return SessionFilter(
        user_id=None if given.user_id is None else id_of("filter.userId", given.user_id, "User"),
        group_id=(None if given.group_id is None else id_of("filter.groupId", given.group_id, "Group")),
        discipline=given.discipline,
        started_after=(
            None if given.started_after is None else aware("filter.startedAfter", given.started_after)
        ),
        started_before=(
            None if given.started_before is None else aware("filter.startedBefore", given.started_before)
        ),
    )


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in person's profile; null when anonymous or without one yet.")
    async def viewer(self, info: Ctx) -> User | None:
        record = await info.context.viewer()
        return User.from_record(record) if record else None

    @strawberry.field(description="Any object by its global ID; null when there is none.")
    async def node(self, info: Ctx, id: strawberry.ID) -> Node | None:
        return await load_node(info.context, id)

    @strawberry.field(
        description="Objects by global ID, in order (at most 100); null for each there is none of."
    )
    async def nodes(self, info: Ctx, ids: list[strawberry.ID]) -> list[Node | None]:
        return await load_nodes(info.context, ids)

    @strawberry.field(description="A user by ID; null when there is none.")
    async def user(self, info: Ctx, id: strawberry.ID) -> User | None:
        pk = decode_id(id, "User")
        record = None if pk is None else await info.context.loaders.user.load(pk)
        return User.from_record(record) if record else None

    @strawberry.field(description="All users, oldest first.")
    async def users(
        self,
        info: Ctx,
        first: FirstArg = None,
        after: AfterArg = None,
        last: LastArg = None,
        before: BeforeArg = None,
    ) -> Connection[User]:
        page = USERS.page(first, after, last, before)
        source = info.context.data_source
        return USERS.connection(await source.list_users(page), page, User.from_record, source.count_users)

    @strawberry.field(description="A group by ID; null when there is none.")
    async def group(self, info: Ctx, id: strawberry.ID) -> Group | None:
        pk = decode_id(id, "Group")
        record = None if pk is None else await info.context.loaders.group.load(pk)
        return Group.from_record(record) if record else None

    @strawberry.field(description="All groups, oldest first.")
    async def groups(
        self,
        info: Ctx,
        first: FirstArg = None,
        after: AfterArg = None,
        last: LastArg = None,
        before: BeforeArg = None,
    ) -> Connection[Group]:
        page = GROUPS.page(first, after, last, before)
        source = info.context.data_source
        return GROUPS.connection(await source.list_groups(page), page, Group.from_record, source.count_groups)

    @strawberry.field(description="A shooting session by ID; null when there is none.")
    async def shooting_session(self, info: Ctx, id: strawberry.ID) -> ShootingSession | None:
        pk = decode_id(id, "ShootingSession")
        record = None if pk is None else await info.context.loaders.session.load(pk)
        return ShootingSession.from_record(record) if record else None

    @strawberry.field(description="Shooting sessions, filtered; newest first unless ordered.")
    async def shooting_sessions(
        self,
        info: Ctx,
        filter: ShootingSessionFilter | None = None,
        order_by: ShootingSessionOrder = ShootingSessionOrder.STARTED_AT_DESC,
        first: FirstArg = None,
        after: AfterArg = None,
        last: LastArg = None,
        before: BeforeArg = None,
    ) -> Connection[ShootingSession]:
        listing = SESSIONS[order_by]
        page = listing.page(first, after, last, before)
        where, source = session_filter(filter), info.context.data_source
        records = await source.list_sessions(where, order_by.value, page)
        return listing.connection(
            records, page, ShootingSession.from_record, lambda: source.count_sessions(where)
        )

    @strawberry.field(description="The activity feed, newest first, of a user, a group or all.")
    async def activities(
        self,
        info: Ctx,
        user_id: strawberry.ID | None = None,
        group_id: strawberry.ID | None = None,
        first: FirstArg = None,
        after: AfterArg = None,
        last: LastArg = None,
        before: BeforeArg = None,
    ) -> Connection[Activity]:
        page = ACTIVITIES.page(first, after, last, before)
        user = None if user_id is None else id_of("userId", user_id, "User")
        group = None if group_id is None else id_of("groupId", group_id, "Group")
        source = info.context.data_source
        records = await source.list_activities(user, group, page)
        return ACTIVITIES.connection(
            records, page, Activity.from_record, lambda: source.count_activities(user, group)
        )
