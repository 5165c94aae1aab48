"""Relay-style connections: `edges {cursor node}`, `pageInfo`, and the `first`/`after` arguments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import strawberry

from gateway.datasources.records import Page
from gateway.errors import BadUserInput
from gateway.schema.ids import decode_cursor, encode_cursor

__all__ = [
    "DEFAULT_FIRST",
    "MAX_FIRST",
    "Connection",
    "Edge",
    "Listing",
    "PageInfo",
]

DEFAULT_FIRST = 20
MAX_FIRST = 100

N = TypeVar("N")
R = TypeVar("R")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo


class Listing(Generic[R]):
    """One paginated list: its cursor name, and the sort key a cursor records for a row."""

    def __init__(self, name: str, key_types: tuple[type, ...], key: Callable[[R], tuple[Any, ...]]):
        self.name = name
        self.key_types = key_types
        self.key = key

    def page(self, first: int | None, after: str | None) -> Page:
        """The data-source page for the arguments, one row more than asked to see if more follow."""
        if first is None:
            first = DEFAULT_FIRST
        if not 0 <= first <= MAX_FIRST:
            raise BadUserInput("first", f"must be between 0 and {MAX_FIRST} (got {first})")
        if after is None:
            return Page(first + 1)
        values = decode_cursor(after, self.name, self.key_types)
        if values is None:
            raise BadUserInput("after", "not a cursor of this list")
        return Page(first + 1, values)

    def connection(self, records: Sequence[R], page: Page, node: Callable[[R], N]) -> Connection[N]:
        shown = records[: page.first - 1]
        edges = [Edge(cursor=encode_cursor(self.name, self.key(r)), node=node(r)) for r in shown]
        return Connection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(records) > len(shown),
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


def by_id(record: Any) -> tuple[int]:
    return (record.id,)


def by_start(record: Any) -> tuple[datetime, int]:
    return (record.started_at, record.id)
