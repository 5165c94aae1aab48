"""CORS as browsers meet it, on both doors served for real: the headers Apollo Client, Sentry and
OpenTelemetry add pass a preflight, preview-deployment patterns match only what they should, the
Vite dev server is allowed by both its names in development and nothing is in production."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from gateway.doors.cors import CorsPolicy
from gateway.settings import DEFAULT_ALLOW_HEADERS, Settings, SettingsError, load_settings
from tests.served_doors import DOORS, served

PREVIEWS = "https://club-*.vercel.app"
# What a preview pattern must never let in: lookalike suffixes, a URL smuggling the name, another
# scheme, another port, a deeper host, "null", a trailing dot, credentials in the authority.
HOSTILE = (
    "https://club-x.vercel.app.evil.com",
    "https://evil.com/https://club-x.vercel.app",
    "https://evil.com#https://club-x.vercel.app",
    "http://club-x.vercel.app",
    "https://club-x.vercel.app:8443",
    "https://club-a.b.vercel.app",
    "https://club-.vercel.app",
    "https://club-x.vercel.app.",
    "https://attacker@club-x.vercel.app",
    "https://club-x.vercel.appevil.com",
    "https://evilclub-x.vercel.app",
    "null",
)


async def preflight(
    http: aiohttp.ClientSession, url: str, origin: str, headers: str = "content-type"
) -> tuple[int, dict[str, str], str]:
    request = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    if headers:
        request["Access-Control-Request-Headers"] = headers
    async with http.options(url + "/graphql", headers=request) as response:
        return response.status, dict(response.headers), await response.text()


async def post(http: aiohttp.ClientSession, url: str, origin: str, **headers: str) -> aiohttp.ClientResponse:
    async with http.post(
        url + "/graphql", json={"query": "{ __typename }"}, headers={"Origin": origin, **headers}
    ) as response:
        assert await response.json() == {"data": {"__typename": "Query"}}
        return response


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return make_settings("sqlite", **overrides)

    return make


@pytest.mark.parametrize("door", DOORS)
async def test_every_header_real_clients_send_passes_a_preflight(
    door: str, settings: Callable[..., Settings]
) -> None:
    origin = "http://localhost:5173"
    async with served(door, settings()) as url, aiohttp.ClientSession() as http:
        for header in (*DEFAULT_ALLOW_HEADERS, ", ".join(DEFAULT_ALLOW_HEADERS).upper()):
            status, headers, body = await preflight(http, url, origin, header)
            assert (status, body) == (200, ""), (header, body)
            assert headers["Access-Control-Allow-Origin"] == origin
            assert headers["Access-Control-Allow-Credentials"] == "true"
            allowed = {name.strip() for name in headers["Access-Control-Allow-Headers"].split(",")}
            assert {name.strip().lower() for name in header.split(",")} <= allowed
            assert "POST" in headers["Access-Control-Allow-Methods"]
            assert "Origin" in headers["Vary"]
        # The request that follows, with all of them, is answered with the origin and Vary: Origin.
        sent = {name: "1" for name in DEFAULT_ALLOW_HEADERS if name not in ("content-type", "authorization")}
        response = await post(http, url, origin, **sent)
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert "Origin" in response.headers["Vary"]
        assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]

        status, headers, body = await preflight(http, url, origin, "content-type, x-not-listed")
        assert status == 403
        assert body == "CORS preflight refused: header x-not-listed is not in CORS_ALLOW_HEADERS"
        assert "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize("door", DOORS)
async def test_cors_allow_headers_replaces_the_list(door: str, settings: Callable[..., Settings]) -> None:
    origin = "http://localhost:5173"
    served_settings = settings(cors_allow_headers="Content-Type, X-Club-Tenant")
    async with served(door, served_settings) as url, aiohttp.ClientSession() as http:
        assert (await preflight(http, url, origin, "x-club-tenant,content-type"))[0] == 200
        status, _, body = await preflight(http, url, origin, "authorization")
        assert status == 403
        assert body == "CORS preflight refused: header authorization is not in CORS_ALLOW_HEADERS"


@pytest.mark.parametrize("door", DOORS)
async def test_preview_pattern_admits_previews_and_refuses_lookalikes(
    door: str, settings: Callable[..., Settings]
) -> None:
    served_settings = settings(cors_origins=f"https://club.example.com, {PREVIEWS}")
    async with served(door, served_settings) as url, aiohttp.ClientSession() as http:
        for origin in ("https://club-git-main-team.vercel.app", "https://club-a1b2c3.vercel.app"):
            status, headers, _ = await preflight(http, url, origin)
            assert (status, headers["Access-Control-Allow-Origin"]) == (200, origin)
            assert (await post(http, url, origin)).headers["Access-Control-Allow-Origin"] == origin
        for origin in HOSTILE:
            status, headers, body = await preflight(http, url, origin)
            assert (status, body) == (403, f"CORS preflight refused: origin {origin} is not in CORS_ORIGINS")
            assert "Access-Control-Allow-Origin" not in headers
            # A simple request still runs (the browser hides its answer), without a CORS grant.
            response = await post(http, url, origin)
            assert "Access-Control-Allow-Origin" not in response.headers
            assert "Origin" in response.headers["Vary"]


@pytest.mark.parametrize("door", DOORS)
async def test_development_allows_the_vite_server_by_both_names(
    door: str, settings: Callable[..., Settings]
) -> None:
    async with served(door, settings()) as url, aiohttp.ClientSession() as http:
        for origin in ("http://localhost:5173", "http://127.0.0.1:5173"):
            status, headers, _ = await preflight(http, url, origin, "content-type, authorization")
            assert (status, headers["Access-Control-Allow-Origin"]) == (200, origin)
        assert (await preflight(http, url, "http://localhost:3000"))[0] == 403


@pytest.mark.parametrize("door", DOORS)
async def test_production_has_no_development_origins(door: str, settings: Callable[..., Settings]) -> None:
    production = settings(app_env="production", auth_disabled=True)
    async with served(door, production) as url, aiohttp.ClientSession() as http:
        for origin in ("http://localhost:5173", "http://127.0.0.1:5173"):
            status, headers, _ = await preflight(http, url, origin)
            assert status == 403
            assert "Access-Control-Allow-Origin" not in headers
            assert "Access-Control-Allow-Origin" not in (await post(http, url, origin)).headers


@pytest.mark.parametrize(
    ("origins", "message"),
    [
        ("*, https://app.example.com", "* allows every origin: it cannot be listed with other origins"),
        ("*://club.example.com", "'*://club.example.com': the scheme must be http or https"),
        ("https://club.*", "'https://club.*': a wildcard in the top-level domain or an IP address"),
        ("https://*.app", "'https://*.app': `*.app` would match every site under .app"),
        ("http://10.0.0.*", "'http://10.0.0.*': a wildcard in the top-level domain or an IP address"),
        ("http://localhost:*", "'http://localhost:*': the port must be a number"),
        ("https://club-*.vercel.app/", "'https://club-*.vercel.app/' has a path"),
        ("https://club_*.example.com", "'https://club_*.example.com': a host may hold letters, digits"),
        ("club.example.com", "'club.example.com' is not an origin like https://app.example.com"),
    ],
)
def test_a_bad_origin_pattern_stops_start_up_naming_it(origins: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, cors_origins=origins, cors_allow_credentials=False)
    assert str(refused.value).startswith(f"CORS_ORIGINS: {message}"), str(refused.value)


def test_a_bad_header_name_stops_start_up_naming_it() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, cors_allow_headers="content-type, x request")
    assert str(refused.value) == (
        "CORS_ALLOW_HEADERS: 'x request' is not a header name like x-request-id (list each header)"
    )


def _policy(origins: str) -> CorsPolicy:
    return CorsPolicy.from_settings(load_settings(_env_file=None, cors_origins=origins))


@functools.cache
def _previews() -> CorsPolicy:
    return _policy(PREVIEWS)


_LABEL_CHARS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
_ANY_TEXT = st.text(max_size=20)
_SEPARATED = st.tuples(_ANY_TEXT, st.sampled_from("./@:#?\\ "), _ANY_TEXT).map("".join)


# Settings are read once; no deadline: the machine may be busy, and what is checked is the answer.
_PROPERTY = examples(deadline=None, derandomize=True)


@_PROPERTY
@given(_LABEL_CHARS)
def test_the_wildcard_matches_any_single_label_completion(label: str) -> None:
    assert _previews().origin_allowed(f"https://club-{label}.vercel.app")


@_PROPERTY
@given(_ANY_TEXT, _SEPARATED)
def test_the_wildcard_never_leaves_its_label(middle: str, around: str) -> None:
    """Whatever fills the wildcard or surrounds the name, only letters, digits and hyphens in the
    label, with the pattern's scheme and port, pass."""
    policy = _previews()
    label_ok = middle.isascii() and re.fullmatch("[a-z0-9-]+", middle.lower()) is not None
    assert policy.origin_allowed(f"https://club-{middle}.vercel.app") is label_ok
    assert not policy.origin_allowed(f"http://club-{middle}.vercel.app")
    assert not policy.origin_allowed(f"https://{around}club-{middle}.vercel.app")
    if around != ":443":  # the default port written out is the same origin
        assert not policy.origin_allowed(f"https://club-{middle}.vercel.app{around}")


def test_hostile_origins_are_refused_by_the_function_the_websocket_door_uses() -> None:
    policy = _policy(f"https://club.example.com,{PREVIEWS}")
    assert policy.origin_allowed("https://club.example.com")
    assert policy.origin_allowed("https://club-abc123-team.vercel.app")
    assert not any(policy.origin_allowed(origin) for origin in HOSTILE)
