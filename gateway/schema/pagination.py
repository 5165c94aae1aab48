"""Relay-style connections: `edges {cursor node}`, `pageInfo`, `totalCount`, and the arguments
`first`/`after` (forward) and `last`/`before` (backward).

`hasNextPage` says whether rows follow a forward page within `before`, `hasPreviousPage` whether
rows precede a backward page within `after`; the other one is false, as in graphql-relay-js and
as the Relay specification allows. `totalCount` counts the whole list (its filters apply, its
cursors do not) and is read only when selected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import strawberry

from gateway.datasources.records import Page
from gateway.errors import BadUserInput
from gateway.schema.ids import decode_cursor, encode_cursor

__all__ = [
    "DEFAULT_FIRST",
    "MAX_FIRST",
    "AfterArg",
    "BeforeArg",
    "Connection",
    "Edge",
    "FirstArg",
    "LastArg",
    "Listing",
    "PageInfo",
]

DEFAULT_FIRST = 20
MAX_FIRST = 100

FirstArg = Annotated[
    int | None,
    strawberry.argument(
        description="How many items to return from the start, at most 100 (20 without `last`)."
    ),
]
AfterArg = Annotated[str | None, strawberry.argument(description="The `endCursor` of the previous page.")]
LastArg = Annotated[
    int | None, strawberry.argument(description="How many items to return from the end, at most 100.")
]
BeforeArg = Annotated[str | None, strawberry.argument(description="The `startCursor` of the next page.")]

N = TypeVar("N")
R = TypeVar("R")


@strawberry.type
class PageInfo:
    has_next_page: bool = strawberry.field(description="Paging forward: whether more items follow.")
    has_previous_page: bool = strawberry.field(description="Paging backward: whether more items precede.")
    start_cursor: str | None = strawberry.field(description="The first edge's cursor; null without edges.")
    end_cursor: str | None = strawberry.field(description="The last edge's cursor; null without edges.")


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo
    counter: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list holds: its filters apply, cursors do not.")
    async def total_count(self) -> int:
        return await self.counter()


class Listing(Generic[R]):
    """One paginated list: its cursor name, and the sort key a cursor records for a row."""

    def __init__(self, name: str, key_types: tuple[type, ...], key: Callable[[R], tuple[Any, ...]]):
        self.name = name
        self.key_types = key_types
        self.key = key

    def page(
        self, first: int | None, after: str | None, last: int | None = None, before: str | None = None
    ) -> Page:
        """The data-source page for the arguments, one row more than asked to see if more follow."""
        if first is not None and last is not None:
            raise BadUserInput("last", "cannot be combined with first: page forward or backward")
        backward = last is not None
        size, name = (
            (last, "last") if last is not None else (DEFAULT_FIRST if first is None else first, "first")
        )
        if not 0 <= size <= MAX_FIRST:
            raise BadUserInput(name, f"must be between 0 and {MAX_FIRST} (got {size})")
        return Page(size + 1, self._cursor("after", after), self._cursor("before", before), backward)

    def _cursor(self, argument: str, value: str | None) -> tuple[Any, ...] | None:
        if value is None:
            return None
        values = decode_cursor(value, self.name, self.key_types)
        if values is None:
            raise BadUserInput(argument, "not a cursor of this list")
        return values

    def connection(
        self,
        records: Sequence[R],
        page: Page,
        node: Callable[[R], N],
        counter: Callable[[], Awaitable[int]],
    ) -> Connection[N]:
        """The connection of the `records` a data source returned for `page`; `counter` counts the list."""
        shown = list(records[: page.first - 1])
        more = len(records) > len(shown)
        if page.backward:
            shown.reverse()
        edges = [Edge(cursor=encode_cursor(self.name, self.key(r)), node=node(r)) for r in shown]
        return Connection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=more and not page.backward,
                has_previous_page=more and page.backward,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            counter=counter,
        )


def by_id(record: Any) -> tuple[int]:
    return (record.id,)


def by_start(record: Any) -> tuple[datetime, int]:
    return (record.started_at, record.id)
