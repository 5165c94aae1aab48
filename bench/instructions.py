"""`python -m bench.instructions [--ref COMMIT …] [--query P|N|M] [--signed-in]`: CPU instructions
per request of this tree's gateway (signed in too, with --signed-in), earlier commits of it and the
raw handler, counted by callgrind.

Requests/s and CPU time on a shared two-core machine drift by 10-20% within minutes; an
instruction count does not (the same build, data and requests count alike within ~1%), so it
tells a change of a few percent in the server's own work from the machine's noise. Each system
runs alone under `valgrind --tool=callgrind` on the benchmark's dataset in a throwaway
PostgreSQL; after warm-up requests the counters are zeroed (`callgrind_control -z`), the
requests are sent one at a time on one keep-alive connection, and the counters dumped (`-d`).
The count is the server process's: its event loop, HTTP, GraphQL and driver work, not the
database's. It is not a throughput figure (no concurrency, no cache effects): `bench.side_by_side`
measures that. `--connections 16` sends them over 16 connections at once, as wrk does, so that
what concurrency adds (pool waits, more tasks in flight) counts too. `--misses` also simulates
the caches and branch predictors (`--cache-sim=yes --branch-sim=yes`, a simple model of the
hardware): the misses and mispredicted branches per request, which cost time that no instruction
count shows.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from bench.__main__ import System, gateway, raw, send
from bench.dataset import load_postgres
from bench.postgres_instance import free_port, postgres_instance
from bench.side_by_side import earlier_gateways

__all__ = ["count", "main"]

WARM_UP = 20
# callgrind's names for what --misses adds: first-level instruction and data read misses,
# mispredicted conditional and indirect branches.
MISSES = {
    "I1mr": "L1 instruction misses",
    "D1mr": "L1 data read misses",
    "Bcm": "conditional branches mispredicted",
    "Bim": "indirect branches mispredicted",
}


def count(
    system: System, query: str, requests: int, connections: int = 1, misses: bool = False
) -> dict[str, float]:
    """callgrind's events per `query` request in the server process of `system` after warm-up, the
    requests sent over `connections` keep-alive connections at once: `Ir` (instructions), and with
    `misses` those of MISSES too."""
    path, bodies = system.offered(query)
    with tempfile.TemporaryDirectory(prefix="gw-callgrind-") as folder:
        out = Path(folder) / "callgrind.out"
        system.port = free_port()
        simulated = ["--cache-sim=yes", "--branch-sim=yes"] if misses else []
        command = ["valgrind", "--tool=callgrind", *simulated, f"--callgrind-out-file={out}", *system.argv()]
        env = {**os.environ, **system.env}
        process = subprocess.Popen(
            command, cwd=system.cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            conns = [_connected(system, process) for _ in range(connections)]

            def send_all(total: int) -> None:
                """`total` requests, each connection sending its share one after another."""

                def share(which: int) -> None:
                    for index in range(which, total, connections):
                        send(conns[which], system, path, bodies[index % len(bodies)])

                with ThreadPoolExecutor(connections) as senders:
                    list(senders.map(share, range(connections)))

            send_all(WARM_UP * connections)
            subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True, capture_output=True)
            send_all(requests)
            subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True, capture_output=True)
            for conn in conns:
                conn.close()
        finally:
            process.terminate()
            process.wait(timeout=120)
        dumped = next(p for p in Path(folder).iterdir() if p.name.endswith(".1"))
        text = dumped.read_bytes()
        events = re.search(rb"\nevents: ([^\n]*)", text)
        total = re.search(rb"\n(?:totals|summary): ([^\n]*)", text)
        if events is None or total is None:
            raise RuntimeError(f"no events or total in {dumped}")
        counted = zip(events.group(1).decode().split(), total.group(1).split(), strict=True)
        return {name: int(value) / requests for name, value in counted}


def _connected(system: System, process: subprocess.Popen[bytes]) -> http.client.HTTPConnection:
    """A connection to `system` once it answers (under callgrind, starting takes ~20-40 s)."""
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{system.name} exited under callgrind")
        conn = http.client.HTTPConnection("127.0.0.1", system.port, timeout=120)
        try:
            conn.connect()
            return conn
        except OSError:
            conn.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system.name} did not start under callgrind") from None
            time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.instructions", description=__doc__)
    parser.add_argument("--ref", action="append", default=[], help="a commit to count too (repeatable)")
    parser.add_argument("--query", choices=("P", "N", "M"), default="P", help="the operation (default P)")
    parser.add_argument("--requests", type=int, default=300, help="requests counted (default 300)")
    parser.add_argument(
        "--connections", type=int, default=1, help="connections sending at once (default 1; wrk's is 16)"
    )
    parser.add_argument(
        "--misses", action="store_true", help="also count cache misses and mispredicted branches"
    )
    parser.add_argument("--signed-in", action="store_true", help="also count this tree with a member's token")
    parser.add_argument(
        "--with", dest="packages", action="append", default=[], help="a package the older commits need"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    with ExitStack() as stack:
        print("loading the dataset…", file=sys.stderr)
        pg = stack.enter_context(postgres_instance())
        env = asyncio.run(load_postgres(pg.port, "club_bench"))
        systems = [raw("raw handler", "postgres", env), gateway("this tree", "postgres", env)]
        if args.signed_in:
            systems.append(gateway("this tree, signed in", "postgres", env, signed_in=True))
        systems += earlier_gateways(stack, args.ref, args.packages, "postgres", env)
        counted = []
        for system in systems:
            print(f"counting {system.name}…", file=sys.stderr)
            counted.append(
                (system.name, count(system, args.query, args.requests, args.connections, args.misses))
            )
    print(report(counted, args.query))
    return 0


def report(counted: list[tuple[str, dict[str, float]]], query: str) -> str:
    """A table of each system's events per request, each beside its ratio to the first system's."""
    names = ["Ir", *(name for name in MISSES if name in counted[0][1])]
    titles = ["instructions", *(MISSES[name] for name in names[1:])]
    header = "| system | " + " | ".join(f"{title} per {query} request | / raw" for title in titles) + " |"
    lines = [header, "|---|" + "---:|---:|" * len(names)]
    baseline = counted[0][1]
    for system, events in counted:
        cells = " | ".join(f"{events[name]:,.0f} | {events[name] / baseline[name]:.3f}" for name in names)
        lines.append(f"| {system} | {cells} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
