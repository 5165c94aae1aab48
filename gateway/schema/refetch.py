"""`node(id:)` and `nodes(ids:)`: objects fetched again by global ID, one statement per type.

Each ID goes through its type's DataLoader, so however many IDs a request names, each type is
read once. A node is the same object its type's own field returns, so the policy's marks (the
e-mail mask) apply to it alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gateway.errors import BadUserInput
from gateway.schema.context import RequestContext
from gateway.schema.ids import decode_global_id
from gateway.schema.node import MAX_NODES, Node, node_key
from gateway.schema.types import Activity, Group, ShootingSession, Shot, User

__all__ = ["load_node", "load_nodes", "node_id", "node_ids"]


def _builders(
    context: RequestContext,
) -> dict[str, tuple[Callable[[int], Awaitable[Any]], Callable[[Any], Node]]]:
    loaders = context.loaders
    return {
        "User": (loaders.user.load, User.from_record),
        "Group": (loaders.group.load, Group.from_record),
        "ShootingSession": (loaders.session.load, ShootingSession.from_record),
        "Shot": (loaders.shot.load, Shot.from_record),
        "Activity": (loaders.activity.load, Activity.from_record),
    }


async def _load(context: RequestContext, key: tuple[str, int] | None) -> Node | None:
    if key is None:
        return None
    load, build = _builders(context)[key[0]]
    record = await load(key[1])
    return None if record is None else build(record)


def node_ids(ids: Sequence[str]) -> list[tuple[str, int] | None]:
    """What each ID of `nodes(ids:)` names (None for a malformed ID or an unknown type); at most MAX_NODES."""
    if len(ids) > MAX_NODES:
        raise BadUserInput("ids", f"at most {MAX_NODES} IDs (got {len(ids)})")
    return [node_key(value) for value in ids]


def node_id(value: str) -> tuple[str, int] | None:
    """What the ID of `node(id:)` names; None for an unknown type, BAD_USER_INPUT when malformed."""
    if decode_global_id(value) is None:
        raise BadUserInput("id", "not an ID this API issued")
    return node_key(value)


async def load_node(context: RequestContext, value: str) -> Node | None:
    return await _load(context, node_id(value))


async def load_nodes(context: RequestContext, ids: Sequence[str]) -> list[Node | None]:
    keys = node_ids(ids)
    return list(await asyncio.gather(*(_load(context, key) for key in keys)))
