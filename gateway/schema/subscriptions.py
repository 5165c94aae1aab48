"""The Subscription root: live updates from the activity feed, resolved like queries.

Each update is the record the instance's feed read once through the data source; its fields resolve
through this subscription's DataLoaders, emptied before every update so nothing stale is sent, and
the policy's marks (e-mail privacy) apply as to a query.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from gateway.schema.context import RequestContext
from gateway.schema.inputs import id_of
from gateway.schema.types import Activity, Ctx, ShootingSession

__all__ = ["Subscription"]


@strawberry.type
class Subscription:
    # Each resolver checks its arguments, then returns the stream: a bad argument fails the stream's
    # creation, which the protocols answer as a refusal (`error`), never as an update.

    @strawberry.subscription(description="Each new activity-feed entry, of a user, a group or all.")
    async def activity_added(
        self, info: Ctx, user_id: strawberry.ID | None = None, group_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Activity, None]:
        user = None if user_id is None else id_of("userId", user_id, "User")
        group = None if group_id is None else id_of("groupId", group_id, "Group")
        return _activities(info.context, user, group)

    @strawberry.subscription(
        description="The session after each change (new shots, an update); null once it is deleted."
    )
    async def shooting_session_changed(
        self, info: Ctx, id: strawberry.ID
    ) -> AsyncGenerator[ShootingSession | None, None]:
        return _session_changes(info.context, id_of("id", id, "ShootingSession"))


async def _activities(
    context: RequestContext, user: int | None, group: int | None
) -> AsyncGenerator[Activity, None]:
    async with context.follow() as follower:
        async for record in follower.records():
            if (user is None or record.user_id == user) and (group is None or record.group_id == group):
                context.after_write()
                yield Activity.from_record(record)


async def _session_changes(context: RequestContext, pk: int) -> AsyncGenerator[ShootingSession | None, None]:
    async with context.follow() as follower:
        async for record in follower.records():
            if record.session_ref == pk:
                context.after_write()
                found = await context.data_source.sessions_by_ids([pk])
                if not found:
                    yield None  # deleted: ids are never reused, so nothing more can come
                    return
                yield ShootingSession.from_record(found[0])
