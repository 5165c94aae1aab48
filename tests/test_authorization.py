"""Who may do what once sign-in is on, tried as members, an admin, anonymous clients and forgers would.

Every refusal is checked for what it leaves behind: the tables are compared before and after,
and another member's e-mail must appear in no response, on the compiled and interpreted paths
(a mutation selecting only scalars runs without graphql-core's executor unless FAST_PATH=false).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer

from gateway.auth.issuing import issue_token
from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.doors.asgi_app import create_asgi_app
from gateway.schema.ids import decode_global_id, encode_id
from gateway.settings import Settings
from tests.conftest import count_rows, empty_tables
from tests.graphql_client import error_codes
from tests.live_client import TRANSPORT_WS, open_socket
from tests.served_doors import DOORS, served_door
from tests.test_policy import serve_asgi

SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123456789"
TABLES = ("users", "club_groups", "memberships", "shooting_sessions", "shots", "activities")

CREATE_USER = "mutation($i: CreateUserInput!) { createUser(input: $i) { id email displayName } }"
CREATE_GROUP = 'mutation { createGroup(input: {name: "Juniors"}) { id } }'
CREATE_SESSION = """mutation($i: CreateShootingSessionInput!) {
  createShootingSession(input: $i) { id user { id } } }"""
ADD_SHOTS = "mutation($id: ID!) { addShots(sessionId: $id, shots: [{score: 9.1}]) { shotCount } }"
UPDATE = 'mutation($id: ID!) { updateShootingSession(id: $id, input: {notes: "changed"}) { notes } }'
DELETE = "mutation($id: ID!) { deleteShootingSession(id: $id) }"
JOIN = "mutation($g: ID!, $u: ID) { joinGroup(groupId: $g, userId: $u) { id } }"
LEAVE = "mutation($g: ID!, $u: ID) { leaveGroup(groupId: $g, userId: $u) { id } }"


@dataclass
class Caller:
    name: str
    token: str | None


@dataclass
class Club:
    url: str
    asgi_url: str
    interpreted_url: str  # the same gateway with FAST_PATH=false
    http: aiohttp.ClientSession
    settings: Settings
    source: Any
    ada: Caller
    bob: Caller
    admin: Caller
    anonymous: Caller
    ids: dict[str, str]
    fast_path_answers: Callable[[], int]

    async def ask(
        self, caller: Caller, query: str, url: str | None = None, **variables: Any
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
        payload = {"query": query, "variables": variables}
        async with self.http.post(url or self.url, json=payload, headers=headers) as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            return body

    async def snapshot(self) -> dict[str, Any]:
        counts = {table: await count_rows(self.source, table) for table in TABLES}
        sessions = await self.source.list_sessions(_no_filter(), "STARTED_AT_ASC", _page())
        return {**counts, "sessions": [(s.id, s.notes, s.shot_count) for s in sessions]}


def _no_filter() -> Any:
    from gateway.datasources.records import SessionFilter

    return SessionFilter()


def _page() -> Any:
    from gateway.datasources.records import Page

    return Page(first=100)


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


@pytest.fixture
async def club(backend: str, make_settings: Callable[..., Settings]) -> AsyncIterator[Club]:
    settings = make_settings(backend, auth_jwt_secret=SECRET)
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    interpreted = TestServer(create_app(settings.model_copy(update={"fast_path": False})), host="127.0.0.1")
    await interpreted.start_server()
    asgi_url, asgi_server, asgi_task = await serve_asgi(create_asgi_app(settings))
    try:
        source = app[EXECUTOR].data_source
        await empty_tables(source)

        def token(subject: str, *roles: str) -> str:
            return issue_token(settings, subject=subject, roles=roles)

        async with aiohttp.ClientSession() as http:
            made = Club(
                str(server.make_url("/graphql")),
                asgi_url,
                str(interpreted.make_url("/graphql")),
                http,
                settings,
                source,
                Caller("ada", token("sub-ada")),
                Caller("bob", token("sub-bob")),
                Caller("admin", token("sub-root", "admin")),
                Caller("anonymous", None),
                {},
                lambda: app[EXECUTOR].fast.answered if app[EXECUTOR].fast else 0,
            )
            for caller, email, name in (
                (made.ada, "ada@example.com", "Ada"),
                (made.bob, "bob@example.com", "Bob"),
            ):
                body = await made.ask(caller, CREATE_USER, i={"email": email, "displayName": name})
                made.ids[caller.name] = body["data"]["createUser"]["id"]
            body = await made.ask(made.ada, CREATE_GROUP)
            made.ids["group"] = body["data"]["createGroup"]["id"]
            body = await made.ask(made.ada, CREATE_SESSION, i={"discipline": "Air Rifle"})
            made.ids["session"] = body["data"]["createShootingSession"]["id"]
            yield made
    finally:
        asgi_server.should_exit = True
        await asgi_task
        await interpreted.close()
        await server.close()


async def refused(club: Club, caller: Caller, code: str, query: str, **variables: Any) -> None:
    """`caller` is refused with `code` on both doors and both paths alike, and nothing is written."""
    before = await club.snapshot()
    bodies = [await club.ask(caller, query, url, **variables) for url in (club.url, club.asgi_url)]
    assert codes(bodies[0]) == [code], (caller.name, query, bodies[0])
    assert all(body == bodies[0] for body in bodies), (caller.name, query, bodies)
    assert await club.ask(caller, query, club.interpreted_url, **variables) == bodies[0], (caller.name, query)
    assert await club.snapshot() == before, (caller.name, query)


async def test_a_profile_is_created_once_by_its_owner(club: Club) -> None:
    again = {"i": {"email": "ada2@example.com", "displayName": "Ada"}}
    await refused(club, club.ada, "CONFLICT", CREATE_USER, **again)
    await refused(club, club.anonymous, "UNAUTHENTICATED", CREATE_USER, **again)
    viewer = await club.ask(club.ada, "{ viewer { id email displayName } }")
    assert viewer["data"]["viewer"] == {
        "id": club.ids["ada"],
        "email": "ada@example.com",
        "displayName": "Ada",
    }
    nobody = await club.ask(
        Caller("carol", issue_token(club.settings, subject="sub-carol")), "{ viewer { id } }"
    )
    assert nobody == {"data": {"viewer": None}}
    assert await club.ask(club.anonymous, "{ viewer { id } }") == {"data": {"viewer": None}}
    # An admin makes their own profile first, then profiles for others.
    for email in ("root@example.com", "guest@example.com"):
        made = await club.ask(club.admin, CREATE_USER, i={"email": email, "displayName": "X"})
        assert made["data"]["createUser"]["email"] == email
    assert (await club.ask(club.admin, "{ viewer { email } }"))["data"]["viewer"][
        "email"
    ] == "root@example.com"


async def test_sessions_are_written_by_their_owner_or_an_admin(club: Club) -> None:
    session, ada, bob = club.ids["session"], club.ids["ada"], club.ids["bob"]
    for caller, code in ((club.bob, "FORBIDDEN"), (club.anonymous, "UNAUTHENTICATED")):
        await refused(club, caller, code, ADD_SHOTS, id=session)
        await refused(club, caller, code, UPDATE, id=session)
        await refused(club, caller, code, DELETE, id=session)
    await refused(club, club.bob, "FORBIDDEN", CREATE_SESSION, i={"discipline": "x", "userId": ada})
    await refused(club, club.anonymous, "UNAUTHENTICATED", CREATE_SESSION, i={"discipline": "x"})

    assert (await club.ask(club.ada, ADD_SHOTS, id=session))["data"]["addShots"]["shotCount"] == 1
    assert (await club.ask(club.admin, ADD_SHOTS, id=session))["data"]["addShots"]["shotCount"] == 2
    assert (await club.ask(club.ada, UPDATE, id=session))["data"]["updateShootingSession"][
        "notes"
    ] == "changed"
    assert "errors" not in await club.ask(club.admin, UPDATE, id=session)
    own = await club.ask(club.bob, CREATE_SESSION, i={"discipline": "Pistol"})
    assert own["data"]["createShootingSession"]["user"]["id"] == bob
    for_bob = await club.ask(club.admin, CREATE_SESSION, i={"discipline": "Pistol", "userId": bob})
    assert for_bob["data"]["createShootingSession"]["user"]["id"] == bob
    assert (await club.ask(club.ada, DELETE, id=session))["data"]["deleteShootingSession"] == session
    bobs = for_bob["data"]["createShootingSession"]["id"]
    assert (await club.ask(club.admin, DELETE, id=bobs))["data"]["deleteShootingSession"] == bobs


async def test_a_write_aimed_at_the_next_session_never_lands_on_its_owners(club: Club) -> None:
    """Session ids are sequential: a member who keeps writing to the next one while another member
    creates it must get NOT_FOUND or FORBIDDEN every time, never write the other's session."""

    async def attack(query: str, target: str, created: asyncio.Event) -> list[dict[str, Any]]:
        answers = []
        while not created.is_set():
            answers.append(await club.ask(club.ada, query, id=target))
        return [*answers, await club.ask(club.ada, query, id=target)]  # and once after

    for _ in range(5):
        probe = await club.ask(club.ada, CREATE_SESSION, i={"discipline": "probe"})
        kind, pk = decode_global_id(probe["data"]["createShootingSession"]["id"]) or ("", 0)
        target, created = encode_id(kind, pk + 1), asyncio.Event()
        attackers = [asyncio.create_task(attack(q, target, created)) for q in (UPDATE, ADD_SHOTS, DELETE) * 3]
        await asyncio.sleep(0.05)
        made = await club.ask(club.bob, CREATE_SESSION, i={"discipline": "Pistol", "notes": "mine"})
        created.set()
        answers = [answer for attacker in attackers for answer in await attacker]
        assert made["data"]["createShootingSession"]["id"] == target
        found = await club.source.sessions_by_ids([pk + 1])
        assert [(s.notes, s.shot_count) for s in found] == [("mine", 0)], "bob's session was written"
        assert {code for answer in answers for code in codes(answer)} <= {"NOT_FOUND", "FORBIDDEN"}
        assert all(answer["data"] is None for answer in answers), answers


async def test_members_join_and_leave_for_themselves_and_admins_for_anyone(club: Club) -> None:
    group, ada = club.ids["group"], club.ids["ada"]
    await refused(club, club.bob, "FORBIDDEN", JOIN, g=group, u=ada)
    await refused(club, club.anonymous, "UNAUTHENTICATED", JOIN, g=group)
    assert "errors" not in await club.ask(club.ada, JOIN, g=group)
    assert "errors" not in await club.ask(club.bob, JOIN, g=group)
    await refused(club, club.bob, "FORBIDDEN", LEAVE, g=group, u=ada)
    await refused(club, club.anonymous, "UNAUTHENTICATED", LEAVE, g=group, u=ada)
    assert "errors" not in await club.ask(club.admin, LEAVE, g=group, u=ada)
    assert "errors" not in await club.ask(club.bob, LEAVE, g=group)
    assert await count_rows(club.source, "memberships") == 0
    await refused(club, club.anonymous, "UNAUTHENTICATED", CREATE_GROUP)
    no_profile = Caller("carol", issue_token(club.settings, subject="sub-carol"))
    await refused(club, no_profile, "NOT_FOUND", CREATE_GROUP)


# -- e-mail privacy -----------------------------------------------------------------------------

USER_PLACES = [
    "users {{ edges {{ node {{ {f} }} }} }}",
    'user(id: "{ada}") {{ {f} }}',
    'user(id: "{bob}") {{ {f} }}',
    "viewer {{ {f} }}",
    "groups {{ edges {{ node {{ members {{ edges {{ node {{ {f} }} }} }} }} }} }}",
    "shootingSessions {{ edges {{ node {{ user {{ {f} }} }} }} }}",
    "activities {{ edges {{ node {{ user {{ {f} }} }} }} }}",
    'node(id: "{ada}") {{ ... on User {{ {f} }} }}',
    'nodes(ids: ["{bob}", "{ada}"]) {{ ... on User {{ {f} }} }}',
    "groups(last: 1) {{ edges {{ node {{ members(last: 5) {{ edges {{ node {{ {f} }} }} }} }} }} }}",
]
SELECTIONS = ["email", "id email", "mail: email displayName", "...U", "... on User { email }"]


def selections(ids: dict[str, str]) -> list[str]:
    """Every place a User appears, with e-mail asked for in several spellings, alone and in pairs."""
    single = [place.format(f=f, **ids) for place, f in itertools.product(USER_PLACES, SELECTIONS)]
    pairs = [f"first: {a} second: {b}" for a, b in itertools.combinations(USER_PLACES, 2)]
    paired = [pair.format(f="email", **ids) for pair in pairs]
    return single + paired


@pytest.mark.parametrize("caller_name", ["ada", "bob", "anonymous", "admin"])
async def test_nobody_reads_another_members_email_on_either_path(club: Club, caller_name: str) -> None:
    caller = getattr(club, caller_name)
    assert "errors" not in await club.ask(club.ada, JOIN, g=club.ids["group"])
    assert "errors" not in await club.ask(club.bob, JOIN, g=club.ids["group"])
    own = {"ada": "ada@example.com", "bob": "bob@example.com"}
    seen: set[str] = set()
    before = club.fast_path_answers()
    headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
    for selection in selections({"ada": club.ids["ada"], "bob": club.ids["bob"]}):
        query = f"query {{ {selection} }} fragment U on User {{ email }}"
        if "...U" not in selection:
            query = f"query {{ {selection} }}"
        async with club.http.post(club.url, json={"query": query}, headers=headers) as response:
            compiled = await response.text()
        async with club.http.post(club.interpreted_url, json={"query": query}, headers=headers) as response:
            slow = await response.text()
        assert json.loads(compiled) == json.loads(slow), query
        assert "errors" not in json.loads(compiled), (query, compiled)
        for name, email in own.items():
            if email in compiled:
                assert caller_name in (name, "admin"), (caller_name, query)
                seen.add(name)
    assert club.fast_path_answers() - before > len(USER_PLACES)  # most compiled: both paths compared
    # The masks hide what they must and no more: owners see their own, admins everyone's.
    assert seen == {"ada": {"ada"}, "bob": {"bob"}, "admin": {"ada", "bob"}, "anonymous": set()}[caller_name]


# -- tokens at the door -------------------------------------------------------------------------


def forged_tokens(settings: Settings) -> dict[str, str]:
    good = issue_token(settings, subject="sub-ada")
    claims = jwt.decode(good, options={"verify_signature": False})
    expired = issue_token(settings, subject="sub-ada", ttl=timedelta(seconds=1), now=_long_ago())
    return {
        "expired": expired,
        "bad signature": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "other secret": jwt.encode(claims, "x" * 40, algorithm="HS256"),
        "lone surrogate in sub": jwt.encode({**claims, "sub": "ada\ud800"}, SECRET, algorithm="HS256"),
        "garbage": "not-a-token",
    }


def _long_ago() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC) - timedelta(days=2)


@pytest.mark.parametrize("door", ["aiohttp", "asgi"])
async def test_an_invalid_token_is_a_401_that_writes_and_logs_nothing_of_it(
    club: Club, door: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = club.url if door == "aiohttp" else club.asgi_url
    before = await club.snapshot()
    caplog.set_level(logging.DEBUG)
    tokens = forged_tokens(club.settings)
    for reason, token in [*tokens.items(), ("empty bearer", "")]:
        headers = {"Authorization": f"Bearer {token}"}
        mutation = {"query": CREATE_SESSION, "variables": {"i": {"discipline": "forged"}}}
        async with club.http.post(url, json=mutation, headers=headers) as response:
            assert response.status == 401, reason
            assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
            body = await response.json()
            assert codes(body) == ["UNAUTHENTICATED"], reason
        params = {"query": "{ users { edges { node { email } } } }"}
        async with club.http.get(url, params=params, headers=headers) as response:
            assert response.status == 401, reason
    async with club.http.post(
        url, json={"query": "{ __typename }"}, headers={"Authorization": "Basic eDp5"}
    ) as r:
        assert r.status == 401
    assert await club.snapshot() == before
    for token in tokens.values():
        assert token not in caplog.text


async def test_an_unreachable_identity_provider_is_a_503_not_a_401(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    """A token that cannot be judged (the JWKS is down) is the server's problem, not the client's."""
    from tests.processes import free_port

    settings = make_settings(
        "sqlite",
        auth_jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json",
        auth_issuer="https://issuer.test/",
        auth_audience="club",
    )
    token = _rs256_token("k1")
    client = await aiohttp_client(create_app(settings))
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 503
    assert codes(await response.json()) == ["UNAVAILABLE"]


@pytest.mark.parametrize("door", DOORS)
async def test_an_unreachable_identity_provider_shows_no_client_where_it_is_and_writes_nothing(
    door: str, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """Any client could send an RS256 token with a made-up kid: the 503 used to quote the JWKS URL
    (a `user:password@` in it too) and the network error naming the provider's internal address."""
    from tests.processes import free_port

    port = free_port()
    settings = make_settings(
        "sqlite",
        auth_jwks_url=f"http://gateway:jwks-basic-auth-secret@127.0.0.1:{port}/jwks.json",
        auth_issuer="https://issuer.test/",
        auth_audience="club",
    )
    token = _rs256_token("made-up")
    caplog.set_level(logging.DEBUG)
    async with served_door(door, settings) as running, aiohttp.ClientSession() as http:
        mutation = {"query": CREATE_USER, "variables": {"i": {"email": "x@example.com", "displayName": "X"}}}
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(running.url + "/graphql", json=mutation, headers=headers) as response:
            assert response.status == 503
            text = await response.text()
        assert codes(json.loads(text)) == ["UNAVAILABLE"]
        assert "keys cannot be fetched" in text
        for shown in ("jwks-basic-auth-secret", "127.0.0.1", str(port), "jwks.json", "ClientConnector"):
            assert shown not in text, shown
        assert await count_rows(running.executor.data_source, "users") == 0
    assert "jwks-basic-auth-secret" not in caplog.text
    # The cause is the operator's to read.
    assert f"JWKS at http://127.0.0.1:{port}/jwks.json: unreachable" in caplog.text
    assert token not in caplog.text


async def test_a_node_shows_an_email_only_to_its_owner_on_every_door_post_and_get(club: Club) -> None:
    query = (
        "query($id: ID!) { node(id: $id) { ... on User { email } }"
        " nodes(ids: [$id, $id]) { ... on User { email } } }"
    )
    hidden = {"data": {"node": {"email": None}, "nodes": [{"email": None}, {"email": None}]}}
    shown = {"data": {"node": {"email": "ada@example.com"}, "nodes": [{"email": "ada@example.com"}] * 2}}
    for url in (club.url, club.asgi_url):
        for caller, expected in ((club.bob, hidden), (club.anonymous, hidden), (club.ada, shown)):
            assert await club.ask(caller, query, url, id=club.ids["ada"]) == expected, (url, caller.name)
            headers = {"Accept": "application/json"}
            if caller.token:
                headers["Authorization"] = f"Bearer {caller.token}"
            params = {"query": query, "variables": json.dumps({"id": club.ids["ada"]})}
            async with club.http.get(url, params=params, headers=headers) as response:
                assert await response.json() == expected, (url, caller.name, "GET")


@pytest.mark.parametrize("door", DOORS)
async def test_two_authorization_headers_are_a_401_that_writes_nothing_on_every_door_and_socket(
    door: str, make_settings: Callable[..., Settings]
) -> None:
    # Each door took the first: a proxy in front that judges the last could let one act as another.
    from multidict import CIMultiDict

    settings = make_settings("sqlite", auth_jwt_secret=SECRET)
    ada, bob = (f"Bearer {issue_token(settings, subject=subject)}" for subject in ("sub-ada", "sub-bob"))
    mutation = {"query": CREATE_USER, "variables": {"i": {"email": "x@example.com", "displayName": "X"}}}
    async with served_door(door, settings) as running, aiohttp.ClientSession() as http:
        url = running.url + "/graphql"
        for pair in ((ada, bob), (ada, "Bearer forged"), ("Bearer forged", ada), (ada, ada)):
            headers = CIMultiDict(("Authorization", value) for value in pair)
            async with http.post(url, json=mutation, headers=headers) as response:
                assert response.status == 401, pair
                assert codes(await response.json()) == ["UNAUTHENTICATED"]
        assert await count_rows(running.executor.data_source, "users") == 0
        if door == "aiohttp":  # the ASGI door serves no sockets
            headers = CIMultiDict([("Authorization", ada), ("Authorization", bob)])
            async with open_socket(url, TRANSPORT_WS, headers=headers) as socket:
                closed = await socket.init()
            assert closed["type"] == "closed" and closed["code"] == 4403, closed
            async with open_socket(url, TRANSPORT_WS, headers=headers) as socket:
                # The payload's token wins over the handshake's headers, as with one.
                assert (await socket.init({"Authorization": ada}))["type"] == "connection_ack"


@pytest.mark.parametrize("door", DOORS)
async def test_an_empty_authorization_header_is_anonymous_on_every_door_and_socket(
    door: str, make_settings: Callable[..., Settings]
) -> None:
    # Apollo Client's documented auth link sends `authorization: ""` when there is no token.
    settings = make_settings("sqlite", auth_jwt_secret=SECRET, auth_anonymous_read=False)
    async with served_door(door, settings) as running, aiohttp.ClientSession() as http:
        url = running.url + "/graphql"
        query = {"query": "{ users(first: 1) { totalCount } }"}
        empty = {"Authorization": "", "Accept": "application/json"}
        for request in (
            http.post(url, json=query, headers=empty),
            http.get(url, params=query, headers=empty),
        ):
            async with request as response:
                assert response.status == 200 and "WWW-Authenticate" not in response.headers
                assert error_codes(await response.json()) == ["UNAUTHENTICATED"]  # anonymous, not a bad token
        blank = {"Authorization": "Bearer ", "Accept": "application/json"}
        for request in (
            http.post(url, json=query, headers=blank),
            http.get(url, params=query, headers=blank),
        ):
            async with request as response:
                assert response.status == 401  # a scheme without a token is a bad token
        if door == "aiohttp":  # the ASGI door serves no sockets
            async with open_socket(url, TRANSPORT_WS) as socket:
                await socket.init({"authorization": ""})
                await socket.subscribe("1", "{ users(first: 1) { totalCount } }")
                message = await socket.receive()
            assert message["type"] == "error", message
            assert message["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def _rs256_token(kid: str) -> str:
    """A token for issuer.test's `club` audience, signed by a key no JWKS holds, naming `kid`."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"sub": "x", "iss": "https://issuer.test/", "aud": "club", "exp": 4_000_000_000}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
