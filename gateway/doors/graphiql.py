"""The GraphiQL page and its assets, served by the gateway itself: no CDN, so it works offline and
under `Content-Security-Policy: default-src 'self'`, which the page is sent with.

The assets live in `static/`: `explorer.js` and `explorer.css` are ours; `vendor/` holds GraphiQL's
and React's npm builds, written by scripts/graphiql-assets from a lockfile. They are served under
`/graphiql/<build>/`, where `<build>` is a hash of every file: a page always loads the assets it
was written for, and browsers may keep them for a year.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gateway.doors.responses import Answer

__all__ = ["ASSETS_PATH", "CONTENT_SECURITY_POLICY", "GraphiQLAssets", "graphiql_assets"]

STATIC = Path(__file__).resolve().parent / "static"
ASSETS_PATH = "/graphiql"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_IMMUTABLE = "public, max-age=31536000, immutable"
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>GraphiQL</title>
<link rel="stylesheet" href="{base}/vendor/graphiql.min.css">
<link rel="stylesheet" href="{base}/explorer.css">
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="{base}/vendor/react.production.min.js"></script>
<script src="{base}/vendor/react-dom.production.min.js"></script>
<script src="{base}/vendor/graphiql.min.js"></script>
<script src="{base}/explorer.js"></script>
</body>
</html>
"""


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


class GraphiQLAssets:
    """The page and every file under `directory`, read once."""

    def __init__(self, directory: Path = STATIC) -> None:
        self._assets: dict[str, _Asset] = {}
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            if path.suffix not in _MEDIA_TYPES:
                continue  # nothing a page could load (a stray editor file, say)
            body = path.read_bytes()
            etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
            name = path.relative_to(directory).as_posix()
            self._assets[name] = _Asset(body, _MEDIA_TYPES[path.suffix], etag)
        build = hashlib.sha256("".join(f"{n}{a.etag}" for n, a in self._assets.items()).encode())
        self.build = build.hexdigest()[:16]
        self._page = _PAGE.format(base=f"{ASSETS_PATH}/{self.build}").encode()

    def page(self) -> Answer:
        """The GraphiQL page, with its Content-Security-Policy."""
        headers = {
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        return Answer(200, self._page, "text/html; charset=utf-8", headers)

    def asset(self, build: str, name: str, if_none_match: str | None) -> Answer:
        """The file `name` asked for under `/graphiql/<build>/`: kept a year when `build` is this one;
        a page from another build gets today's file, to be checked again next time."""
        asset = self._assets.get(name)
        if asset is None:
            return Answer(404, b"no such GraphiQL asset", "text/plain; charset=utf-8")
        headers = {
            "Cache-Control": _IMMUTABLE if build == self.build else "no-cache",
            "ETag": asset.etag,
            "X-Content-Type-Options": "nosniff",
        }
        if if_none_match is not None and asset.etag in (tag.strip() for tag in if_none_match.split(",")):
            return Answer(304, b"", asset.media_type, headers)
        return Answer(200, asset.body, asset.media_type, headers)


@cache
def graphiql_assets() -> GraphiQLAssets:
    """The assets of this installation, read on first use (a few MB, shared by both doors)."""
    return GraphiQLAssets()
