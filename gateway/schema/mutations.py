"""The Mutation root: each write, with the activity it records, commits in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

import strawberry

from gateway.datasources.records import NewSession
from gateway.errors import BadUserInput, Conflict, NotFound
from gateway.schema.authorization import acting_user, check_session_owner, require_profile
from gateway.schema.inputs import (
    MAX_GROUPS_PER_USER,
    MAX_SHOTS_PER_CALL,
    MAX_SHOTS_PER_SESSION,
    CreateGroupInput,
    CreateShootingSessionInput,
    CreateUserInput,
    ShotInput,
    UpdateShootingSessionInput,
    aware,
    email,
    id_of,
    optional_text,
    positive,
    session_changes,
    text,
)
from gateway.schema.inputs import shots as checked_shots
from gateway.schema.types import Ctx, Group, ShootingSession, User

__all__ = ["Mutation"]

T = TypeVar("T")


async def _write(info: Ctx, ids: Mapping[str, str | None], write: Awaitable[T]) -> T:
    """Run a write; name the client's ID in a not-found error; reset the request's loaders."""
    try:
        result = await write
    except NotFound as exc:
        raise NotFound(exc.kind, ids.get(exc.kind) or "") from None
    info.context.after_write()
    return result


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Create the signed-in person's own profile (once); an admin may also create others'."
        " The email must be unused."
    )
    async def create_user(self, info: Ctx, input: CreateUserInput) -> User:
        context = info.context
        subject = None
        if context.sign_in:
            identity = context.signed_in()
            if await context.viewer() is None:
                subject = identity.subject
            elif not identity.admin:
                raise Conflict("you already have a profile")
        record = await _write(
            info,
            {},
            context.data_source.create_user(
                email("input.email", input.email),
                text("input.displayName", input.display_name, 100),
                subject,
            ),
        )
        return User.from_record(record)

    @strawberry.mutation(description="Create a group; any signed-in member with a profile may.")
    async def create_group(self, info: Ctx, input: CreateGroupInput) -> Group:
        if info.context.sign_in:
            await require_profile(info.context)
        record = await _write(
            info,
            {},
            info.context.data_source.create_group(
                text("input.name", input.name, 100),
                optional_text("input.description", input.description, 2000),
            ),
        )
        return Group.from_record(record)

    @strawberry.mutation(
        description="Add a member to a group (default yourself; others: admins only); twice changes nothing."
        f" A member belongs to at most {MAX_GROUPS_PER_USER} groups: past that nothing is added."
    )
    async def join_group(
        self, info: Ctx, group_id: strawberry.ID, user_id: strawberry.ID | None = None
    ) -> Group:
        group = id_of("groupId", group_id, "Group")
        user = await acting_user(info.context, "userId", user_id)
        record = await _write(
            info,
            {"group": group_id, "user": user_id},
            info.context.data_source.join_group(group, user, MAX_GROUPS_PER_USER),
        )
        return Group.from_record(record)

    @strawberry.mutation(
        description="Take a member out of a group (default yourself; others: admins only);"
        " twice changes nothing."
    )
    async def leave_group(
        self, info: Ctx, group_id: strawberry.ID, user_id: strawberry.ID | None = None
    ) -> Group:
        group = id_of("groupId", group_id, "Group")
        user = await acting_user(info.context, "userId", user_id)
        record = await _write(
            info,
            {"group": group_id, "user": user_id},
            info.context.data_source.leave_group(group, user),
        )
        return Group.from_record(record)

    @strawberry.mutation(
        description=f"Record a session, with its shots (at most {MAX_SHOTS_PER_CALL})"
        " numbered 1, 2, 3… in order."
    )
    async def create_shooting_session(self, info: Ctx, input: CreateShootingSessionInput) -> ShootingSession:
        started_at = (
            datetime.now(UTC) if input.started_at is None else aware("input.startedAt", input.started_at)
        )
        new = NewSession(
            user_id=await acting_user(info.context, "input.userId", input.user_id),
            group_id=None if input.group_id is None else id_of("input.groupId", input.group_id, "Group"),
            started_at=started_at,
            discipline=text("input.discipline", input.discipline, 50),
            location=optional_text("input.location", input.location, 200),
            distance_meters=positive("input.distanceMeters", input.distance_meters, 100_000),
            notes=optional_text("input.notes", input.notes, 2000),
            shots=checked_shots("input.shots", input.shots or []),
        )
        record = await _write(
            info,
            {"user": input.user_id, "group": input.group_id},
            info.context.data_source.create_session(new),
        )
        return ShootingSession.from_record(record)

    @strawberry.mutation(
        description=f"Append up to {MAX_SHOTS_PER_CALL} shots to a session; they continue its sequence."
        f" A session holds at most {MAX_SHOTS_PER_SESSION} shots: past that nothing is added."
    )
    async def add_shots(
        self, info: Ctx, session_id: strawberry.ID, shots: list[ShotInput]
    ) -> ShootingSession:
        if not shots:
            raise BadUserInput("shots", "must contain at least one shot")
        new_shots = checked_shots("shots", shots)
        pk = id_of("sessionId", session_id, "ShootingSession")
        await check_session_owner(info.context, pk, session_id)
        record = await _write(
            info,
            {"shooting session": session_id},
            info.context.data_source.add_shots(pk, new_shots, MAX_SHOTS_PER_SESSION),
        )
        return ShootingSession.from_record(record)

    @strawberry.mutation
    async def update_shooting_session(
        self, info: Ctx, id: strawberry.ID, input: UpdateShootingSessionInput
    ) -> ShootingSession:
        changes = session_changes(input)
        pk = id_of("id", id, "ShootingSession")
        await check_session_owner(info.context, pk, id)
        record = await _write(
            info,
            {"shooting session": id, "group": input.group_id or None},
            info.context.data_source.update_session(pk, changes),
        )
        return ShootingSession.from_record(record)

    @strawberry.mutation(description="Delete a session and its shots; returns its ID.")
    async def delete_shooting_session(self, info: Ctx, id: strawberry.ID) -> strawberry.ID:
        pk = id_of("id", id, "ShootingSession")
        await check_session_owner(info.context, pk, id)
        deleted = await _write(info, {}, info.context.data_source.delete_session(pk))
        if not deleted:
            raise NotFound("shooting session", id)
        return id
