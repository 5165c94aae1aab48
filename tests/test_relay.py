"""Relay's conventions, alike on the compiled and the interpreted path, on every backend.

`node`/`nodes` refetch any object by global ID in one statement per type (one in all, compiled);
every connection pages backward with `last`/`before`, has a full `PageInfo`, and a `totalCount`
that is counted only when asked for. The `paths` fixture of test_fast_path runs each query on a
gateway with the fast path and on one without, over one database, and compares the answers.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.datasources.sql.source import SqlDataSource
from gateway.doors.app_keys import EXECUTOR
from gateway.schema.ids import MAX_KEY, decode_cursor, encode_cursor, encode_id
from gateway.schema.instants import EARLIEST, LATEST
from gateway.schema.node import MAX_NODES
from tests import test_fast_path
from tests.test_fast_path import Paths

both_paths = test_fast_path.paths  # its fixture, under a name of its own here


@pytest.fixture
def paths(both_paths: Paths) -> Paths:
    """test_fast_path's two gateways over one club."""
    return both_paths


NODE = """query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on User { displayName email groups { name } }
    ... on Group { name members(last: 2) { totalCount edges { node { id } } } }
    ... on ShootingSession { startedAt totalScore user { id } shots { id score } }
    ... on Shot { sequence score x y }
    ...activity
  }
}
fragment activity on Activity { kind createdAt user { displayName } shootingSession { id } }
"""
NODES = """query($ids: [ID!]!) {
  nodes(ids: $ids) { __typename ... on Node { id } ... on User { displayName } ... on Activity { kind } }
}"""


def pick(answer: Any, *path: str) -> Any:
    """The value at `path` of an answer parsed with key order kept (pairs lists)."""
    for key in path:
        answer = dict(answer)[key]
    return answer


async def every_id(paths: Paths) -> dict[str, list[str]]:
    """The ID of each object of each type in the club."""
    query = """{
      users(first: 100) { edges { node { id } } }
      groups(first: 100) { edges { node { id } } }
      shootingSessions(first: 100) { edges { node { id shots { id } } } }
      activities(first: 100) { edges { node { id } } }
    }"""
    response = await paths.interpreted.post("/graphql", json={"query": query})
    data = (await response.json())["data"]

    def nodes(listing: str) -> list[dict[str, Any]]:
        return [edge["node"] for edge in data[listing]["edges"]]

    return {
        "User": [n["id"] for n in nodes("users")],
        "Group": [n["id"] for n in nodes("groups")],
        "ShootingSession": [n["id"] for n in nodes("shootingSessions")],
        "Shot": [shot["id"] for n in nodes("shootingSessions") for shot in n["shots"]],
        "Activity": [n["id"] for n in nodes("activities")],
    }


def spell(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def test_node_refetches_every_object_of_every_type_alike(paths: Paths) -> None:
    ids = await every_id(paths)
    for type_name, values in ids.items():
        assert values, type_name
        for value in values:
            answer = pick(await paths.same(NODE, id=value), "data", "node")
            assert (pick(answer, "__typename"), pick(answer, "id")) == (type_name, value)
    # The same object as its own field returns.
    user = ids["User"][0]
    own = await paths.same("query($id: ID!) { user(id: $id) { id displayName email } }", id=user)
    same = await paths.same(
        "query($id: ID!) { node(id: $id) { ... on User { id displayName email } } }", id=user
    )
    assert pick(own, "data", "user") == pick(same, "data", "node")


async def test_nodes_answer_in_order_with_null_for_what_names_nothing_alike(paths: Paths) -> None:
    ids = await every_id(paths)
    asked = [
        ids["Activity"][0],
        ids["User"][1],
        spell("Nope:1"),  # a type this API does not have
        encode_id("User", MAX_KEY),  # no such row
        "not an id",
        ids["Shot"][2],
        ids["User"][1],  # twice
        str(paths.ids["doomed"]["id"]),  # deleted
        ids["Group"][0],
        ids["ShootingSession"][0],
    ]
    answer = pick(await paths.same(NODES, ids=asked), "data", "nodes")
    kinds = [None if node is None else pick(node, "__typename") for node in answer]
    assert kinds == ["Activity", "User", None, None, None, "Shot", "User", None, "Group", "ShootingSession"]
    assert [pick(node, "id") for node in answer if node is not None] == [
        v for v, k in zip(asked, kinds, strict=True) if k
    ]
    await paths.same(NODES, ids=[])
    await paths.same(NODES, ids=[spell("Nope:1")])


async def test_node_of_a_malformed_id_is_bad_user_input_and_of_an_unknown_type_null_alike(
    paths: Paths,
) -> None:
    for value in ("not base64!", "", spell("User:-1"), spell("User:01"), spell("User:1") + "=="):
        answer = await paths.same("query($id: ID!) { node(id: $id) { id } }", compiled=False, id=value)
        assert pick(answer, "data") == [("node", None)]
        error = dict(pick(answer, "errors")[0])
        assert pick(error, "extensions", "code") == "BAD_USER_INPUT"
        assert error["message"].startswith("id: not an ID this API issued")
    for value in (spell("Nope:1"), encode_id("Group", 999_999)):
        answer = await paths.same("query($id: ID!) { node(id: $id) { id } }", id=value)
        assert pick(answer, "data", "node") is None


async def test_nodes_past_the_bound_are_refused_alike(paths: Paths) -> None:
    user = paths.ids["users"][0]["id"]
    await paths.same(NODES, ids=[user] * MAX_NODES)
    answer = await paths.same(NODES, compiled=False, ids=[user] * (MAX_NODES + 1))
    error = dict(pick(answer, "errors")[0])
    assert pick(error, "extensions", "code") == "BAD_USER_INPUT"
    assert error["message"] == f"ids: at most {MAX_NODES} IDs (got {MAX_NODES + 1})"


async def test_nodes_cost_one_statement_per_type_interpreted_and_one_compiled(paths: Paths) -> None:
    ids = await every_id(paths)
    mixed = [value for values in ids.values() for value in values][:MAX_NODES]
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    for client, expected in ((paths.interpreted, len(ids)), (paths.fast, 1)):
        source = client.app[EXECUTOR].data_source
        for asked in (mixed, mixed[:2], [ids["User"][0]] * 50):
            before = source.statements
            response = await client.post("/graphql", json={"query": query, "variables": {"ids": asked}})
            assert len((await response.json())["data"]["nodes"]) == len(asked)
            types = len({base64.urlsafe_b64decode(v + "==").split(b":")[0] for v in asked})
            assert source.statements - before == (expected if client is paths.fast else types), asked
    assert len(mixed) > 2 * len(ids)


# -- connections ----------------------------------------------------------------------------

LISTS = {
    "users": "users({args})",
    "groups": "groups({args})",
    "activities": "activities({args})",
    "newest": "shootingSessions({args})",
    "oldest": "shootingSessions(orderBy: STARTED_AT_ASC, {args})",
    "filtered": 'shootingSessions(filter: {{startedAfter: "2025-03-02T00:00:00+00:00"}}, {args})',
}
PAGE = "{ edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } }"


def connection_query(field: str, arguments: str) -> str:
    declared = [d for v, d in (("$n", "$n: Int"), ("$c", "$c: String")) if v in arguments]
    variables = f"({', '.join(declared)})" if declared else ""
    return f"query{variables} {{ list: {field.format(args=arguments)} {PAGE} }}"


async def walk(paths: Paths, field: str, size: int, backward: bool) -> list[list[str]]:
    """Every page of `size` items of a list, forward from its start or backward from its end."""
    arguments = "last: $n, before: $c" if backward else "first: $n, after: $c"
    pages: list[list[str]] = []
    cursor = None
    for _ in range(20):
        page = pick(await paths.same(connection_query(field, arguments), n=size, c=cursor), "data", "list")
        edges = [pick(edge, "node", "id") for edge in pick(page, "edges")]
        cursors = [pick(edge, "cursor") for edge in pick(page, "edges")]
        info = dict(pick(page, "pageInfo"))
        assert (info["startCursor"], info["endCursor"]) == (
            (cursors[0], cursors[-1]) if cursors else (None, None)
        )
        # Each flag answers for its own direction; the other is false.
        assert not info["hasNextPage" if backward else "hasPreviousPage"]
        pages.append(edges)
        if not info["hasPreviousPage" if backward else "hasNextPage"]:
            return pages
        cursor = info["startCursor" if backward else "endCursor"]
    raise AssertionError("more than 20 pages")


async def test_paging_backward_meets_paging_forward_on_every_list_alike(paths: Paths) -> None:
    for name, field in LISTS.items():
        everything = await walk(paths, field, 100, backward=False)
        assert len(everything) == 1, name
        assert await walk(paths, field, 100, backward=True) == everything, name
        for size in (1, 2, 3):
            forward = await walk(paths, field, size, backward=False)
            backward = await walk(paths, field, size, backward=True)
            forward_items = [item for page in forward for item in page]
            backward_items = [item for page in reversed(backward) for item in page]
            assert forward_items == backward_items == everything[0], (name, size)
            assert all(0 < len(page) <= size for page in forward + backward), (name, size)


async def test_windows_between_two_cursors_alike(paths: Paths) -> None:
    """`after` and `before` together bound the page at both ends, with `first` or with `last`."""
    for field in LISTS.values():
        whole = pick(await paths.same(connection_query(field, "first: 100")), "data", "list")
        cursors = [pick(edge, "cursor") for edge in pick(whole, "edges")]
        if len(cursors) < 2:
            continue
        query = f"query($n: Int, $a: String, $b: String) {{ list: {field.format(args='{}')} {PAGE} }}"
        for start, end in ((0, len(cursors) - 1), (0, 1), (1, len(cursors) - 1)):
            for args in ("first: $n, after: $a, before: $b", "last: $n, after: $a, before: $b"):
                for size in (0, 1, 2, 100):
                    await paths.same(query.replace("{}", args), n=size, a=cursors[start], b=cursors[end])
        await paths.same(connection_query(field, "last: 0"))
        await paths.same(connection_query(field, "last: 2, before: $c"), c=cursors[0])


async def test_nested_connections_page_backward_and_count_alike(paths: Paths) -> None:
    query = """query($n: Int, $c: String) {
      groups { totalCount edges { node {
        members(last: $n, before: $c) { totalCount edges { cursor node { id } } pageInfo {
          hasNextPage hasPreviousPage startCursor endCursor } }
        shootingSessions(last: $n) {
          totalCount edges { node { id } } pageInfo { hasPreviousPage startCursor } }
      } } }
      users(last: 3) { totalCount edges { node {
        shootingSessions(last: $n, before: $c) {
          totalCount edges { node { id } } pageInfo { hasPreviousPage } }
      } } }
    }"""
    for size in (0, 1, 2, None):
        await paths.same(query, n=size, c=None)
    answer = await paths.same(query, n=2, c=None)
    members = pick(pick(pick(answer, "data", "groups", "edges")[0], "node"), "members")
    assert pick(members, "totalCount") == 2
    cursor = pick(members, "pageInfo", "endCursor")
    # A members cursor bounds the members; a user's sessions refuse it, on both paths alike.
    sessions = (
        "query($c: String) { users { edges { node {"
        " shootingSessions(last: 1, before: $c) { totalCount } } } } }"
    )
    await paths.same(sessions, compiled=False, c=cursor)


async def test_total_count_counts_the_whole_filtered_list_alike(paths: Paths) -> None:
    ada, juniors = paths.ids["users"][0]["id"], paths.ids["groups"][0]["id"]
    query = f"""{{
      users(first: 1) {{ totalCount }}
      groups(last: 1) {{ totalCount }}
      activities(first: 0, userId: "{ada}") {{ totalCount }}
      all: activities {{ totalCount }}
      shootingSessions(first: 1, filter: {{groupId: "{juniors}"}}) {{ totalCount edges {{ cursor }} }}
      group(id: "{juniors}") {{ members(first: 1) {{ totalCount }} shootingSessions {{ totalCount }} }}
      user(id: "{ada}") {{ shootingSessions(last: 1) {{ totalCount }} }}
    }}"""
    data = pick(await paths.same(query), "data")
    assert pick(data, "users", "totalCount") == 4
    assert pick(data, "groups", "totalCount") == 2
    assert pick(data, "activities", "totalCount") == 5  # a join, 2 sessions, shots added, an update
    assert pick(data, "shootingSessions", "totalCount") == 2
    assert pick(data, "group", "members", "totalCount") == 2  # bob left
    assert pick(data, "user", "shootingSessions", "totalCount") == 2


def recording(real: Callable[..., Any], seen: list[str]) -> Callable[..., Any]:
    """`real`, a data source's read, noting each statement's text in `seen`."""

    async def record(sql: str, args: Any = ()) -> Any:
        seen.append(sql)
        return await real(sql, args)

    return record


async def test_a_count_is_read_only_when_total_count_is_selected(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    juniors = paths.ids["groups"][0]["id"]
    without = f"""{{ users {{ edges {{ node {{ shootingSessions(last: 2) {{ edges {{ cursor }} }} }} }} }}
      group(id: "{juniors}") {{ members {{ pageInfo {{ hasNextPage }} }} }}
      activities(last: 3) {{ pageInfo {{ hasPreviousPage }} }} }}"""
    counted = without.replace("edges { cursor }", "totalCount").replace("pageInfo", "totalCount pageInfo")
    for client in (paths.fast, paths.interpreted):
        source = client.app[EXECUTOR].data_source
        assert isinstance(source, SqlDataSource)
        seen: list[str] = []
        # Every read passes one of these two: the resolvers' statements and the compiled ones.
        for name in ("_fetch", "fetch_json"):
            monkeypatch.setattr(source, name, recording(getattr(source, name), seen))
        for query, counts in ((without, False), (counted, True)):
            seen.clear()
            response = await client.post("/graphql", json={"query": query})
            assert "errors" not in await response.json()
            assert seen
            assert any("COUNT(" in sql.upper() for sql in seen) == counts, (client is paths.fast, seen)


async def test_paging_arguments_are_checked_alike(paths: Paths) -> None:
    user = paths.ids["users"][0]["id"]
    cases = [
        ("{ users(first: 1, last: 1) { edges { cursor } } }", "last: cannot be combined with first"),
        ("{ users(last: 101) { edges { cursor } } }", "last: must be between 0 and 100 (got 101)"),
        ("{ groups(last: -1) { totalCount } }", "last: must be between 0 and 100 (got -1)"),
        ('{ users(before: "bm9wZQ") { edges { cursor } } }', "before: not a cursor of this list"),
        (
            f'{{ user(id: "{user}") {{ shootingSessions(last: 1, before: "x") {{ totalCount }} }} }}',
            "before: not a cursor of this list",
        ),
    ]
    for query, message in cases:
        answer = await paths.same(query, compiled=False)
        error = dict(pick(answer, "errors")[0])
        assert error["message"].startswith(message), error
        assert pick(error, "extensions", "code") == "BAD_USER_INPUT"


async def test_date_time_is_specified_by_rfc_3339(paths: Paths) -> None:
    query = '{ __type(name: "DateTime") { name specifiedByURL } }'
    answer = await paths.same(query, compiled=False)
    assert pick(answer, "data", "__type", "specifiedByURL") == "https://datatracker.ietf.org/doc/html/rfc3339"


# -- cursors, as properties ---------------------------------------------------------------------

instants = st.datetimes(
    min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None), timezones=st.just(UTC)
)


@given(st.integers(0, MAX_KEY), instants, st.sampled_from(["users", "sessions:STARTED_AT_DESC"]))
def test_a_cursor_reads_back_as_the_values_it_was_made_of(key: int, instant: datetime, listing: str) -> None:
    types: tuple[type, ...] = (datetime, int) if listing.startswith("sessions") else (int,)
    values = (instant, key) if listing.startswith("sessions") else (key,)
    cursor = encode_cursor(listing, values)
    assert decode_cursor(cursor, listing, types) == values
    assert decode_cursor(cursor, "groups", types) is None  # another list's cursor is not one
    assert cursor.isascii() and "=" not in cursor


async def test_an_activitys_kind_after_a_nested_list_compiles_alike(paths: Paths) -> None:
    """The check of an activity's kind reads the activity's rows, even after a list inside it."""
    nested = "user { shootingSessions(first: 1) { edges { cursor } } } kind"
    await paths.same(f"{{ activities(first: 5) {{ edges {{ node {{ {nested} }} }} }} }}")
    activity = (await every_id(paths))["Activity"][0]
    await paths.same(f"query($id: ID!) {{ node(id: $id) {{ ... on Activity {{ {nested} }} }} }}", id=activity)
