"""Who may write what: the checks mutations make before they write, while sign-in is on.

A member acts for themselves; an admin may act for anyone. Every check runs before the write,
so a refused mutation writes nothing. With sign-in off (no AUTH_* configured) everything is open.
"""

from __future__ import annotations

from gateway.errors import BadUserInput, Forbidden, NotFound
from gateway.schema.context import RequestContext
from gateway.schema.inputs import id_of

__all__ = ["acting_user", "check_session_owner", "require_profile"]

_NO_PROFILE = "you have no profile yet: create it with createUser"


async def require_profile(context: RequestContext) -> int:
    """The signed-in person's user id; Unauthenticated when anonymous, NOT_FOUND without a profile."""
    context.signed_in()
    viewer = await context.viewer()
    if viewer is None:
        raise NotFound(_NO_PROFILE)
    return viewer.id


async def acting_user(context: RequestContext, field: str, given: str | None) -> int:
    """The user a write acts for: `given`, or the viewer when omitted; another user only for an admin."""
    if not context.sign_in:
        if given is None:
            raise BadUserInput(field, "is required while sign-in is off")
        return id_of(field, given, "User")
    identity = context.signed_in()
    if given is None:
        return await require_profile(context)
    pk = id_of(field, given, "User")
    if identity.admin:
        return pk
    viewer = await context.viewer()
    if viewer is None or viewer.id != pk:
        raise Forbidden(f"{field}: you may act only for yourself")
    return pk


async def check_session_owner(context: RequestContext, session_id: int, given: str) -> None:
    """Forbidden unless the session is the viewer's (or the viewer is an admin); NOT_FOUND when there
    is none. A session's owner never changes and its id is never reused, so what this finds holds
    when the write runs."""
    if not context.sign_in:
        return
    identity = context.signed_in()
    if identity.admin:
        return
    found = await context.data_source.sessions_by_ids([session_id])
    if not found:
        # Not let through for the write to report: a session created between this check and the
        # write (ids are sequential, so guessable) would be written by someone else.
        raise NotFound("shooting session", given)
    viewer = await context.viewer()
    if viewer is None or found[0].user_id != viewer.id:
        raise Forbidden("this shooting session belongs to another member")
