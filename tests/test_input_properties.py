"""Properties of IDs, cursors, variables and input checks over whatever Hypothesis generates.

The pure properties: what the API hands out decodes to what it encoded, and any other text is
refused (None or BAD_USER_INPUT), never an exception; variables of every input type coerce to
what graphql-core makes of them, value for value and error for error. The served ones: on every
backend, generated IDs, cursors, texts, numbers and instants are answered with data, null or a
coded refusal, never INTERNAL.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from aiohttp.test_utils import TestClient
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    OperationDefinitionNode,
    is_required_input_field,
    parse,
    type_from_ast,
)
from graphql.execution.values import VariableValues, get_variable_values
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.errors import BadUserInput
from gateway.execution.variables import coerce_variables, coercers_of
from gateway.schema import build_schema
from gateway.schema.ids import MAX_KEY, decode_cursor, decode_id, encode_cursor, encode_id
from gateway.schema.inputs import ShotInput, aware, email, optional_text, shots, text
from gateway.schema.instants import EARLIEST, LATEST
from tests.club import CREATE_SESSION, CREATE_USER, make_user
from tests.graphql_client import graphql

TYPE_NAMES = st.sampled_from(["User", "Group", "ShootingSession", "Shot", "Activity"])
LISTINGS = st.sampled_from(["users", "groups", "activities", "sessions:STARTED_AT_DESC"])
KEYS = st.integers(0, MAX_KEY)
ID_KEYS = st.integers(0, 10**18 - 1)
OFFSETS = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-(24 * 60 - 1), 24 * 60 - 1)
)
INSTANTS = st.datetimes(
    min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None), timezones=st.just(UTC)
)
ANY_INSTANT = st.datetimes(timezones=st.none() | st.just(UTC) | OFFSETS | st.timezones())
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Text that looks like an ID or a cursor: base64 of "Type:anything" and of any JSON.
ID_LIKE = st.builds(lambda kind, rest: f"{kind}:{rest}", TYPE_NAMES, st.text()).map(
    lambda raw: base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
)
CURSOR_LIKE = st.builds(lambda listing, values: [listing, *values], LISTINGS, st.lists(JSON, max_size=3)).map(
    lambda parts: base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")
)
QUICK = settings(max_examples=200, deadline=None, derandomize=True)


# -- IDs and cursors -------------------------------------------------------------------------


@QUICK
@given(TYPE_NAMES, ID_KEYS)
def test_an_id_decodes_to_the_key_it_encodes(type_name: str, pk: int) -> None:
    assert decode_id(encode_id(type_name, pk), type_name) == pk


@QUICK
@given(st.text() | ID_LIKE, TYPE_NAMES)
@example(encode_id("User", 7) + "==", "User")
@example(base64.urlsafe_b64encode(f"User:{chr(0x667)}".encode()).decode(), "User")  # an Arabic-Indic 7
def test_any_other_text_is_not_an_id(value: str, type_name: str) -> None:
    pk = decode_id(value, type_name)
    assert pk is None or encode_id(type_name, pk) == value


@QUICK
@given(st.sampled_from(["users", "groups", "activities"]), KEYS)
def test_a_cursor_by_key_decodes_to_its_key(listing: str, key: int) -> None:
    assert decode_cursor(encode_cursor(listing, (key,)), listing, (int,)) == (key,)


@QUICK
@given(INSTANTS, KEYS, OFFSETS)
def test_a_cursor_by_instant_decodes_to_the_same_instant(
    instant: datetime, key: int, offset: timezone
) -> None:
    listing = "sessions:STARTED_AT_DESC"
    for shown in (instant, instant.astimezone(offset)):
        decoded = decode_cursor(encode_cursor(listing, (shown, key)), listing, (datetime, int))
        assert decoded == (instant, key)
        assert decoded is not None and decoded[0].utcoffset() == timedelta(0)


@QUICK
@given(st.text() | CURSOR_LIKE, LISTINGS)
@example(base64.urlsafe_b64encode(b'["users",1180591620717411303424]').decode(), "users")
@example(base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode(), "users")
def test_any_other_text_is_a_cursor_only_with_values_a_row_can_hold(value: str, listing: str) -> None:
    types: tuple[type, ...] = (datetime, int) if listing.startswith("sessions") else (int,)
    decoded = decode_cursor(value, listing, types)
    if decoded is None:
        return
    for part, kind in zip(decoded, types, strict=True):
        if kind is int:
            assert type(part) is int and 0 <= part <= MAX_KEY
        else:
            assert part.utcoffset() == timedelta(0) and EARLIEST <= part <= LATEST


# -- input checks ----------------------------------------------------------------------------


@QUICK
@given(st.text(), st.integers(1, 300))
def test_a_text_is_trimmed_and_bounded_or_refused(value: str, max_length: int) -> None:
    for check in (text, optional_text):
        try:
            checked = check("f", value, max_length)
        except BadUserInput as exc:
            assert str(exc).startswith("f: ")
            continue
        if checked is not None:
            assert checked == checked.strip() and checked and len(checked) <= max_length
            assert "\x00" not in checked


@QUICK
@given(st.text())
@example("a\x00@example.com")
def test_an_email_is_lowercase_or_refused(value: str) -> None:
    try:
        checked = email("e", value)
    except BadUserInput:
        return
    assert checked == checked.lower() and "@" in checked and "\x00" not in checked


@QUICK
@given(st.floats(), st.none() | st.floats(), st.none() | st.floats())
@example(1e308, None, None)
@example(9.0, -0.0, None)
def test_a_shot_is_stored_in_tenths_or_refused(score: float, x: float | None, y: float | None) -> None:
    try:
        (shot,) = shots("s", [ShotInput(score=score, x=x, y=y)])
    except BadUserInput:
        return
    assert 0 <= shot.score_tenths <= 109 and abs(shot.score_tenths - score * 10) < 1e-6
    for value in (shot.x, shot.y):
        assert value is None or (abs(value) <= 1_000_000 and str(value) != "-0.0")


@QUICK
@given(ANY_INSTANT)
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))))
@example(datetime.max.replace(tzinfo=UTC))
def test_an_instant_is_in_utc_and_in_range_or_refused(value: datetime) -> None:
    try:
        checked = aware("t", value)
    except BadUserInput:
        return
    assert checked.utcoffset() == timedelta(0) and EARLIEST <= checked <= LATEST
    assert checked == value.astimezone(UTC)


# -- variables ------------------------------------------------------------------------------

SCHEMA = build_schema()._schema
# One variable of each input type and argument type the schema has, each nullable and not.
VARIABLE_TYPES = [
    "CreateShootingSessionInput!", "UpdateShootingSessionInput", "ShootingSessionFilter!",
    "CreateUserInput", "CreateGroupInput!", "[ShotInput!]!", "[ShotInput]", "ShootingSessionOrder",
    "[ID!]", "DateTime!", "Int", "Float!", "String", "Boolean!",
]  # fmt: skip
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "Int": st.integers(-(2**31), 2**31 - 1) | st.floats(-(2**31), 2**31 - 1).map(float.__floor__).map(float),
    "Float": st.floats(allow_nan=False, allow_infinity=False) | st.integers(),
    "String": st.text(max_size=5),
    "ID": st.text(max_size=5) | st.integers(),
    "Boolean": st.booleans(),
    "DateTime": ANY_INSTANT.map(datetime.isoformat),
}
# What fits no scalar, or only some: a null and any JSON (below), huge, fractional and non-finite numbers.
MISFITS = st.none() | JSON | st.integers(2**31) | st.floats(0.1, 0.9) | st.sampled_from([math.inf, math.nan])


def values_of(kind: GraphQLInputType) -> st.SearchStrategy[Any]:
    """Values that mostly fit `kind`, with a null, a wrong type or an unknown field now and then."""
    if isinstance(kind, GraphQLNonNull):
        return _mostly(values_of(kind.of_type))
    if isinstance(kind, GraphQLList):
        item = values_of(kind.of_type)
        return _mostly(st.lists(item, max_size=3) | item)  # a single value is a list of one
    if isinstance(kind, GraphQLInputObjectType):
        fields = {name: values_of(field.type) for name, field in kind.fields.items()}
        required = {name for name, field in kind.fields.items() if is_required_input_field(field)}
        fitting = st.fixed_dictionaries(
            {name: fields[name] for name in required},
            optional={name: value for name, value in fields.items() if name not in required},
        )
        unknown = st.builds(lambda value, key: {**value, key: 1}, fitting, st.text(max_size=3))
        return _mostly(fitting, MISFITS | unknown)
    if isinstance(kind, GraphQLEnumType):
        return _mostly(st.sampled_from(list(kind.values)), MISFITS | st.text(max_size=3))
    return _mostly(SCALARS[kind.name])


def _mostly(
    fitting: st.SearchStrategy[Any], misfit: st.SearchStrategy[Any] = MISFITS
) -> st.SearchStrategy[Any]:
    """A `fitting` value about 19 times in 20, else a `misfit`."""
    return st.sampled_from([fitting] * 19 + [misfit]).flatmap(lambda chosen: chosen)


@st.composite
def operations_and_variables(draw: st.DrawFn) -> tuple[OperationDefinitionNode, dict[str, Any]]:
    type_name = draw(st.sampled_from(VARIABLE_TYPES))
    # The variable's type is all that coercion reads: any field will do for the selection.
    operation = parse(f"query($v: {type_name}) {{ __typename }}").definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    kind = type_from_ast(SCHEMA, operation.variable_definitions[0].type)
    given = draw(st.fixed_dictionaries({}, optional={"v": values_of(kind)}))
    return operation, given


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(operations_and_variables())
def test_variables_coerce_as_graphql_core_coerces_them(
    case: tuple[OperationDefinitionNode, dict[str, Any]],
) -> None:
    operation, given = case
    ours = coerce_variables(SCHEMA, operation, coercers_of(SCHEMA, operation), given)
    theirs = get_variable_values(SCHEMA, operation.variable_definitions, given, max_errors=50)
    if isinstance(theirs, list):
        assert isinstance(ours, list)
        assert [error.message for error in ours] == [error.message for error in theirs]
    else:
        assert isinstance(ours, VariableValues)
        assert ours.coerced == theirs.coerced
        # Wrapping types are made afresh for each signature: compared by how they print.
        assert _sources(ours) == _sources(theirs)


def _sources(variables: VariableValues) -> dict[str, tuple[str, Any]]:
    return {name: (str(source.signature.type), source.value) for name, source in variables.sources.items()}


# -- served, on every backend ----------------------------------------------------------------

SERVED = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    # One gateway serves every example: each one only reads, or writes rows no other example reads.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
ALLOWED = {"BAD_USER_INPUT", "NOT_FOUND", "CONFLICT"}


def codes(body: dict[str, Any]) -> set[str]:
    return {error["extensions"]["code"] for error in body.get("errors", [])}


@SERVED
@given(id_=st.text() | ID_LIKE, after=st.text() | CURSOR_LIKE)
@example(id_="VXNlcjox", after=base64.urlsafe_b64encode(b'["users",1180591620717411303424]').decode())
async def test_generated_ids_and_cursors_are_null_or_refused(
    client: TestClient, id_: str, after: str
) -> None:
    lookups = "query($id: ID!) { user(id: $id) { id } shootingSession(id: $id) { id } }"
    by_id = await graphql(client, lookups, id=id_)
    assert by_id == {"data": {"user": None, "shootingSession": None}}
    page = await graphql(client, "query($a: String) { users(after: $a) { edges { cursor } } }", a=after)
    assert codes(page) <= {"BAD_USER_INPUT"}
    sessions = "query($a: String) { shootingSessions(after: $a) { edges { cursor } } }"
    assert codes(await graphql(client, sessions, a=after)) <= {"BAD_USER_INPUT"}
    join = "mutation($g: ID!, $u: ID) { joinGroup(groupId: $g, userId: $u) { id } }"
    joined = await graphql(client, join, g=id_, u=id_)
    assert codes(joined) <= ALLOWED and codes(joined)


@SERVED
@given(email_=st.text(max_size=40), name=st.text(max_size=120))
@example(email_="eve\x00@example.com", name="Eve")
async def test_generated_profiles_are_created_or_refused(client: TestClient, email_: str, name: str) -> None:
    body = await graphql(client, CREATE_USER, input={"email": email_, "displayName": name})
    assert codes(body) <= ALLOWED


@SERVED
@given(
    score=st.floats(allow_nan=False, allow_infinity=False),
    x=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    started=ANY_INSTANT.filter(lambda v: v.tzinfo is None or v.utcoffset() is not None),
    notes=st.none() | st.text(max_size=50),
)
@example(score=1e308, x=None, started=datetime(2026, 5, 1, tzinfo=UTC), notes=None)
@example(score=9.0, x=None, started=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), notes=None)
@example(score=9.0, x=None, started=datetime(2026, 5, 1, tzinfo=UTC), notes="\x00")
async def test_generated_sessions_are_recorded_or_refused(
    client: TestClient, score: float, x: float | None, started: datetime, notes: str | None
) -> None:
    user = await make_user(client, f"{abs(hash((score, x, started, notes)))}@example.com")
    session = {
        "userId": user["id"],
        "discipline": "air",
        "startedAt": started.isoformat(),
        "notes": notes,
        "shots": [{"score": score, "x": x}],
    }
    body = await graphql(client, CREATE_SESSION, input=session)
    assert codes(body) <= {"BAD_USER_INPUT"}
    if "errors" not in body:
        shot = body["data"]["createShootingSession"]["shots"][0]
        assert shot["score"] == round(score, 1)
