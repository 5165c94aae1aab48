"""Global object identification (Relay): the `Node` interface and what a global ID names."""

from __future__ import annotations

import strawberry

from gateway.schema.ids import decode_global_id

__all__ = ["MAX_NODES", "NODE_TYPES", "Node", "node_key"]

NODE_TYPES = ("User", "Group", "ShootingSession", "Shot", "Activity")
MAX_NODES = 100  # IDs one `nodes` call may name, as many as a page holds


@strawberry.interface(description="An object with a global ID, which `node(id:)` fetches again.")
class Node:
    id: strawberry.ID


def node_key(value: str) -> tuple[str, int] | None:
    """The type and row key a global ID names, or None when it names no type of this API.

    A malformed ID raises nothing here; callers decide whether it is an error or null.
    """
    decoded = decode_global_id(value)
    return decoded if decoded is not None and decoded[0] in NODE_TYPES else None
