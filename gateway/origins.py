"""The browser origins allowed to call the gateway (CORS_ORIGINS): exact origins, or patterns with a
`*` inside one DNS label for preview deployments (`https://club-*.vercel.app`).

A pattern matches an origin only with the same scheme, the same port and the same number of host
labels, each `*` standing for letters, digits and hyphens within its label: never a dot, a slash, a
colon or an `@`, so `https://club-x.vercel.app.evil.com` and `https://evil.com/https://club-x.vercel.app`
never match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["AllowedOrigins", "OriginPattern"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# scheme://host[:port], nothing before or after; a bracketed IPv6 host is one label.
_ORIGIN = re.compile(r"(?P<scheme>[^:/]*)://(?P<host>\[[0-9a-f:.]+\]|[^/:?#@\[\]\\]*)(?::(?P<port>[^/?#]*))?")
_HOST_LABEL = re.compile(r"[a-z0-9*](?:[a-z0-9*-]*[a-z0-9*])?")
_WILDCARD_MATCH = "[a-z0-9-]+"
_EXAMPLE = "an origin is scheme://host[:port], like https://app.example.com"


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    labels: tuple[str, ...]
    port: int


def _split(text: str) -> _Origin | None:
    """An origin's parts (lower-case, the scheme's default port filled in), or None if it is not one."""
    if not text.isascii():
        return None  # browsers send names in their xn-- form; lower() would fold some letters to ASCII
    found = _ORIGIN.fullmatch(text.lower())
    if found is None or found["scheme"] not in _DEFAULT_PORTS:
        return None
    port_text = found["port"]
    if port_text is None:
        port = _DEFAULT_PORTS[found["scheme"]]
    elif port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        return None
    host = found["host"]
    labels = (host,) if host.startswith("[") else tuple(host.split("."))
    return _Origin(found["scheme"], labels, port)


@dataclass(frozen=True, slots=True)
class OriginPattern:
    """One CORS_ORIGINS entry, exact or with wildcards, compiled label by label."""

    text: str
    scheme: str
    labels: tuple[re.Pattern[str], ...]
    port: int

    @classmethod
    def parse(cls, text: str) -> OriginPattern:
        """The entry `text`, or ValueError saying what is wrong with it."""
        found = _ORIGIN.fullmatch(text.lower())
        if found is None:
            if re.fullmatch(r"[^:/]*://[^/]*/.*", text):
                raise ValueError(f"{text!r} has a path; {_EXAMPLE}")
            raise ValueError(f"{text!r} is not an origin like https://app.example.com")
        if found["scheme"] not in _DEFAULT_PORTS:
            raise ValueError(f"{text!r}: the scheme must be http or https, written out (no wildcard)")
        if found["port"] is not None and "*" in found["port"]:
            raise ValueError(f"{text!r}: the port must be a number (a wildcard stays inside one host label)")
        origin = _split(text)
        if origin is None:
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
        labels = origin.labels
        ipv6 = labels[0].startswith("[")
        if not ipv6 and not all(_HOST_LABEL.fullmatch(label) for label in labels):
            raise ValueError(
                f"{text!r}: a host may hold letters, digits, hyphens, dots and `*` "
                "(write an internationalized name in its xn-- form)"
            )
        if "*" in text:
            top = labels[-1]
            if ipv6 or "*" in top or top.isdigit():
                raise ValueError(
                    f"{text!r}: a wildcard in the top-level domain or an IP address would match any site"
                )
            if len(labels) < 3 and labels[0] == "*":
                raise ValueError(f"{text!r}: `*.{top}` would match every site under .{top}; name your domain")
        compiled = tuple(
            re.compile(_WILDCARD_MATCH.join(re.escape(part) for part in label.split("*"))) for label in labels
        )
        return cls(text, origin.scheme, compiled, origin.port)

    def matches(self, origin: _Origin) -> bool:
        return (
            origin.scheme == self.scheme
            and origin.port == self.port
            and len(origin.labels) == len(self.labels)
            and all(p.fullmatch(label) for p, label in zip(self.labels, origin.labels, strict=True))
        )


@dataclass(frozen=True, slots=True)
class AllowedOrigins:
    """The origins CORS_ORIGINS allows: any (`*`), or those its entries match."""

    any: bool
    patterns: tuple[OriginPattern, ...]

    @classmethod
    def parse(cls, entries: Sequence[str]) -> AllowedOrigins:
        """The allowed origins of `entries`, or ValueError naming the first bad entry and its problem."""
        if "*" in entries:
            if len(entries) > 1:
                raise ValueError("* allows every origin: it cannot be listed with other origins")
            return cls(True, ())
        return cls(False, tuple(OriginPattern.parse(entry) for entry in entries))

    def allows(self, origin: str) -> bool:
        """Whether a browser's `Origin` header value is allowed."""
        if self.any:
            return True
        parts = _split(origin)
        if parts is None:
            return False  # "null" (sandboxed frames, file: pages) and anything malformed
        return any(pattern.matches(parts) for pattern in self.patterns)
