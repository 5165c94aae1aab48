"""`python -m bench.calls [--query P|N|M] [--top K]`: the function calls one request makes in the
server process, the raw handler's against this tree's gateway, grouped by where each function is
defined.

`bench.instructions` says how much more work the gateway does per request; this says where it is.
Each system runs under a profile hook (`sys.setprofile`) on the benchmark's dataset in a throwaway
PostgreSQL; after warm-up requests it counts every Python function entered (a coroutine counts
again each time it resumes: each resumption enters its frame) and every C function called from
Python, over requests sent one at a time on one keep-alive connection. Counts, not time: the hook
slows the server down many times, but a call is a call.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import runpy
import signal
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from bench.__main__ import ROOT, System, gateway, raw, running, send
from bench.dataset import load_postgres
from bench.postgres_instance import postgres_instance

__all__ = ["GENERATED", "GRAPHQL", "GROUPS", "OWN", "main", "table", "where"]

WARM_UP = 50
GRAPHQL = "GraphQL libraries"
# Installed packages by the part of a request they serve.
_PACKAGES = {
    "aiohttp": "HTTP (aiohttp)",
    "yarl": "HTTP (aiohttp)",
    "multidict": "HTTP (aiohttp)",
    "aiosignal": "HTTP (aiohttp)",
    "asyncpg": "the driver (asyncpg, aiomysql)",
    "aiomysql": "the driver (asyncpg, aiomysql)",
    "pymysql": "the driver (asyncpg, aiomysql)",
    "graphql": GRAPHQL,
    "strawberry": GRAPHQL,
}
OWN = "the server's own code"
GENERATED = "generated (dataclass __init__)"
STDLIB = "Python's library (asyncio, logging…)"
OTHER = "other packages"
C = "C functions (builtins, methods)"
GROUPS = (OWN, GENERATED, *dict.fromkeys(_PACKAGES.values()), STDLIB, OTHER, C)
_STDLIB = sysconfig.get_paths()["stdlib"]
_OWN_FOLDERS = (str(ROOT / "gateway"), str(ROOT / "bench"))


def where(filename: str) -> str:
    """The group of a Python function defined in `filename`."""
    if filename.startswith(_OWN_FOLDERS):
        return OWN
    if filename == "<string>":
        return GENERATED
    _, marker, inside = filename.partition("site-packages/")
    if marker:
        return _PACKAGES.get(inside.split("/", 1)[0], OTHER)
    if filename.startswith(_STDLIB) or filename.startswith("<frozen"):
        return STDLIB
    return OTHER


def _serve_counted(module: str, argv: list[str], out: Path) -> None:
    """Run `module` as `python -m` would; SIGUSR1 starts counting, SIGUSR2 writes the counts to `out`."""
    counts: Counter[str] = Counter()

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            if code.co_filename == __file__:
                return  # the signal handler that stops the count
            counts[f"{where(code.co_filename)}\t{code.co_filename}:{code.co_name}"] += 1
        elif event == "c_call":
            counts[f"{C}\t{getattr(arg, '__qualname__', repr(arg))}"] += 1

    def start(signum: int, frame: FrameType | None) -> None:
        counts.clear()
        sys.setprofile(hook)

    def stop(signum: int, frame: FrameType | None) -> None:
        sys.setprofile(None)
        written = out.with_suffix(".part")
        written.write_text(json.dumps(counts))
        written.replace(out)  # whole, or not there: the parent reads it as soon as it appears

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def count(system: System, query: str, requests: int) -> Counter[str]:
    """The calls, per function, that `requests` of `query` made in `system`'s server process."""
    path, bodies = system.offered(query)
    with tempfile.TemporaryDirectory(prefix="gw-calls-") as folder:
        out = Path(folder) / "calls.json"
        # `python -m X args` runs as `python -m bench.calls --serve OUT X args`.
        module, *argv = system.command[2:]
        counted = replace(
            system, command=[sys.executable, "-m", "bench.calls", "--serve", str(out), module, *argv]
        )
        with running(counted) as served:
            assert served.process is not None
            conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
            for index in range(WARM_UP):
                send(conn, served, path, bodies[index % len(bodies)])
            served.process.send_signal(signal.SIGUSR1)
            time.sleep(0.5)  # the handler runs between two bytecodes of the idle loop
            for index in range(requests):
                send(conn, served, path, bodies[index % len(bodies)])
            served.process.send_signal(signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            conn.close()
        if not out.exists():
            raise RuntimeError(f"{system.name} wrote no counts within 30 s of SIGUSR2")
        return Counter(json.loads(out.read_text()))


def _by_group(calls: Counter[str]) -> Counter[str]:
    groups: Counter[str] = Counter()
    for key, n in calls.items():
        groups[key.split("\t", 1)[0]] += n
    return groups


def table(heading: str, names: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    """A markdown table's lines: a column per system, a row per label."""
    lines = [f"| {heading} | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    return lines + [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]


def report(counted: list[tuple[str, Counter[str]]], query: str, requests: int, top: int) -> str:
    """Markdown: calls per request by group for each system, then the last system's own busiest functions."""
    names = [name for name, _ in counted]
    grouped = [_by_group(calls) for _, calls in counted]
    python = [sum(n for g, n in groups.items() if g != C) for groups in grouped]
    rows = [
        (group, [f"{groups[group] / requests:.1f}" for groups in grouped])
        for group in GROUPS
        if group != C  # C functions: the bold total below
    ]
    rows.append(("**Python functions**", [f"**{n / requests:.1f}**" for n in python]))
    rows.append(("**C functions**", [f"**{g[C] / requests:.1f}**" for g in grouped]))
    lines = table(f"calls per {query} request", names, rows)
    name, calls = counted[-1]
    own = [(key.split("\t", 1)[1], n) for key, n in calls.most_common() if key.startswith(f"{OWN}\t")]
    lines += ["", f"{name}: its own code's calls per {query} request, the {top} most called", ""]
    lines += [f"    {n / requests:5.2f}  {os.path.relpath(where_, ROOT)}" for where_, n in own[:top]]
    return "\n".join(lines)


def main() -> int:
    if sys.argv[1:2] == ["--serve"]:
        _serve_counted(sys.argv[3], sys.argv[4:], Path(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(prog="bench.calls", description=__doc__)
    parser.add_argument("--query", choices=("P", "N", "M"), default="P", help="the operation (default P)")
    parser.add_argument("--requests", type=int, default=200, help="requests counted (default 200)")
    parser.add_argument("--top", type=int, default=80, help="the gateway's own functions listed (default 80)")
    args = parser.parse_args()
    with postgres_instance() as pg:
        print("loading the dataset…", file=sys.stderr)
        env = asyncio.run(load_postgres(pg.port, "club_bench"))
        systems = [raw("raw handler", "postgres", env), gateway("this tree", "postgres", env)]
        counted = []
        for system in systems:
            print(f"counting {system.name}…", file=sys.stderr)
            counted.append((system.name, count(system, args.query, args.requests)))
    print(report(counted, args.query, args.requests, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
