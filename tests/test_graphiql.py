"""GraphiQL served by the gateway itself, on both doors: the page names only the gateway's own
files, every one loads with its media type and cache headers, the page carries a strict CSP, and
the vendored files are exactly the lockfile's packages."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL

from gateway.auth.issuing import issue_token
from gateway.doors.graphiql import CONTENT_SECURITY_POLICY
from gateway.settings import Settings
from tests.served_doors import DOORS, served
from tests.test_react_example import CHROMIUM, DRIVER, run

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "gateway" / "doors" / "static" / "vendor"
LOCKFILE = ROOT / "scripts" / "graphiql" / "package-lock.json"
MEDIA = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".png": "image/png",
}


class _Page(HTMLParser):
    """What a browser would fetch or run from the page: URLs, inline script and style."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster", "data") and value:
                self.urls.append(value)
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")
        if tag == "style" or (tag == "script" and "src" not in values):
            self._in = tag

    def handle_data(self, data: str) -> None:
        if self._in and data.strip():
            self.inline.append(f"<{self._in}>{data.strip()[:40]}")

    def handle_endtag(self, tag: str) -> None:
        self._in = None


async def fetch(
    http: aiohttp.ClientSession, url: str | URL, **headers: str
) -> tuple[int, CIMultiDict[str], bytes]:
    async with http.get(url, headers=headers, allow_redirects=False) as response:
        return response.status, CIMultiDict(response.headers), await response.read()


@pytest.mark.parametrize("door", DOORS)
async def test_the_page_and_every_asset_come_from_the_gateway_under_a_strict_csp(
    door: str, make_settings: Callable[..., Settings]
) -> None:
    async with served(door, make_settings("sqlite")) as url, aiohttp.ClientSession() as http:
        status, headers, body = await fetch(http, url + "/graphql", Accept="text/html")
        assert status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "default-src 'self'" in headers["Content-Security-Policy"].split(";")
        html = body.decode()
        assert not re.search(r"(https?:)?//", html.replace("<!doctype html>", "")), "an external URL"
        page = _Page()
        page.feed(html)
        assert page.inline == []
        assert len(page.urls) == 6  # 2 stylesheets, React, ReactDOM, GraphiQL, ours
        css_urls = []
        for path in page.urls:
            assert path.startswith("/graphiql/"), path
            status, headers, asset = await fetch(http, url + path)
            suffix = Path(path).suffix
            assert status == 200, path
            assert headers["Content-Type"].split(";")[0] == MEDIA[suffix], path
            assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert asset
            if suffix == ".css":
                base = path.rsplit("/", 1)[0]
                css_urls += [f"{base}/{ref}" for ref in re.findall(r"url\(([^)]+)\)", asset.decode())]
        # What the stylesheets load (fonts, images) is the gateway's too: data: URLs would break the CSP.
        assert len(css_urls) > 30
        for path in css_urls:
            assert not path.split("/")[-1].startswith(("data:", "http")), path
            status, headers, asset = await fetch(http, url + path)
            assert (status, headers["Content-Type"]) == (200, MEDIA[Path(path).suffix]), path


@pytest.mark.parametrize("door", DOORS)
async def test_assets_revalidate_by_etag_and_unknown_names_are_404(
    door: str, make_settings: Callable[..., Settings]
) -> None:
    async with served(door, make_settings("sqlite")) as url, aiohttp.ClientSession() as http:
        _, _, body = await fetch(http, url + "/graphql", Accept="text/html")
        script = re.findall(r'src="([^"]+explorer\.js)"', body.decode())[0]
        status, headers, _ = await fetch(http, url + script)
        assert (await fetch(http, url + script, **{"If-None-Match": headers["ETag"]}))[0] == 304
        # A page from an earlier build gets today's file, to be checked again next time.
        status, headers, _ = await fetch(http, url + "/graphiql/0123456789abcdef/explorer.js")
        assert (status, headers["Cache-Control"]) == (200, "no-cache")
        for missing in ("none.js", "../graphiql.py", "%2e%2e/graphiql.py", "..%2fgraphiql.py", "vendor"):
            # Sent as written: the door, not the client, meets the dots.
            status, _, body = await fetch(http, URL(f"{url}/graphiql/x/{missing}", encoded=True))
            assert (status, body) == (404, b"no such GraphiQL asset"), missing


@pytest.mark.parametrize("door", DOORS)
async def test_production_serves_neither_page_nor_assets(
    door: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings("sqlite", app_env="production", auth_disabled=True)
    async with served(door, settings) as url, aiohttp.ClientSession() as http:
        status, headers, _ = await fetch(http, url + "/graphql", Accept="text/html")
        assert "Content-Security-Policy" not in headers
        assert status != 200
        assert (await fetch(http, url + "/graphiql/x/explorer.js"))[0] == 404


def test_vendored_files_are_the_lockfile_packages() -> None:
    """The manifest scripts/graphiql-assets wrote names the lockfile's versions and integrity hashes,
    and every committed file is the one it recorded (scripts/test rebuilds them byte for byte)."""
    lock = json.loads(LOCKFILE.read_text())["packages"]
    manifest = json.loads((VENDOR / "manifest.json").read_text())
    assert set(manifest["packages"]) == {"graphiql", "react", "react-dom"}
    for name, source in manifest["packages"].items():
        locked = lock[f"node_modules/{name}"]
        assert (source["version"], source["integrity"]) == (locked["version"], locked["integrity"]), name
        assert locked["integrity"].startswith("sha512-")
    root = lock[""]["dependencies"]
    assert all(root[name] == source["version"] for name, source in manifest["packages"].items())  # exact pins
    committed = {p.name for p in VENDOR.iterdir()} - {"manifest.json"}
    assert committed == set(manifest["files"])
    for name, recorded in manifest["files"].items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == recorded["sha256"], name
    licenses = (VENDOR / "LICENSES.txt").read_text()
    for name, source in manifest["packages"].items():
        assert f"\n{name}@{source['version']} (MIT)\n" in licenses


@pytest.mark.parametrize("door", DOORS)
async def test_graphiql_runs_a_signed_in_mutation_in_chromium_under_its_csp(
    door: str, make_settings: Callable[..., Settings]
) -> None:
    """A developer opens GraphiQL, pastes a token into the Headers tab and creates their profile:
    the page loads nothing from elsewhere and the browser refuses nothing under the CSP."""
    if shutil.which("node") is None or not Path(CHROMIUM).exists():
        pytest.fail(f"Node.js and {CHROMIUM} drive this test: scripts/test installs them")
    if not (DRIVER / "node_modules" / "playwright-core").is_dir():
        pytest.fail(f"run `npm ci` in {DRIVER} (scripts/test does)")
    settings = make_settings("sqlite", auth_jwt_secret=secrets.token_urlsafe(48))
    token = issue_token(settings, subject="graphiql-developer", email="gia@example.com")
    mutation = """mutation { createUser(input: {email: "gia@example.com", displayName: "Gia"}) {
      displayName } }"""
    async with served(door, settings) as url:
        config = {
            "url": url + "/graphql",
            "chromium": CHROMIUM,
            "headers": json.dumps({"Authorization": f"Bearer {token}"}),
            "query": mutation,
        }
        seen = json.loads(await run(["node", "graphiql.mjs", json.dumps(config)], DRIVER, timeout=90))
    assert "failed" not in seen, seen["failed"]
    assert seen["csp"] == CONTENT_SECURITY_POLICY
    assert seen["headersEditorVisible"]
    assert seen["result"] == {"data": {"createUser": {"displayName": "Gia"}}}
    with closing(sqlite3.connect(settings.db_sqlite_path)) as db:
        rows = db.execute("SELECT subject, email FROM users").fetchall()
    assert rows == [("graphiql-developer", "gia@example.com")]
    assert seen["violations"] == []
    assert [r for r in seen["requests"] if not r.startswith(url + "/")] == []
    # The browser asks for /favicon.ico on its own; the page names none.
    assert [e for e in seen["consoleErrors"] if not e["url"].endswith("/favicon.ico")] == []
