"""Load with wrk (Debian's package) in its own process: requests/s, p50 and p99 latency."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Result", "wrk"]

CONNECTIONS = 16


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _lua(bodies: list[str], headers: dict[str, str]) -> str:
    quoted = ",\n".join(json.dumps(b) for b in bodies)  # a JSON string is a valid Lua string here
    extra = "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in headers.items())
    return (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        + extra
        + f"local bodies = {{\n{quoted}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i % #bodies + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[i])\nend\n"
    )


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise ValueError(f"wrk printed a latency this does not read: {text!r}")
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[found.group(2)]


def _find(pattern: str, out: str) -> str:
    found = re.search(pattern, out)
    if found is None:
        raise ValueError(f"no {pattern!r} in wrk's output:\n{out}")
    return found.group(1)


def wrk(url: str, bodies: list[str], seconds: float, headers: dict[str, str] | None = None) -> Result:
    """`seconds` of load from CONNECTIONS connections on one wrk thread, cycling through `bodies`."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(bodies, headers or {}))
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{int(seconds)}s", "--latency", "-s", script.name, url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        Path(script.name).unlink()
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    # Anchored: a "+/- Stdev" column can end in "99%" too.
    p50 = _ms(_find(r"(?m)^\s+50%\s+(\S+)", out))
    p99 = _ms(_find(r"(?m)^\s+99%\s+(\S+)", out))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    failed = re.search(r"Socket errors:.*?timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (int(failed.group(1)) if failed else 0)
    return Result(rps, p50, p99, errors)
