"""`bash bench/run --subscriptions` (or `python -m bench.subscriptions`): 1,000 subscribers on one instance.

A throwaway PostgreSQL holds the benchmark's club; one `gateway serve` process runs on it. This
process opens N graphql-transport-ws sockets, each subscribing to the activity feed, then writes
sessions through the gateway's HTTP API one at a time. For each write it records, per subscriber,
the delay from the mutation's HTTP answer to the update's arrival (an update may arrive before the
answer: NOTIFY fires at commit), waits for all N, then writes the next. It reports p50/p99/max of
those delays and the gateway's resident memory per subscriber (RSS with N subscribed, minus RSS
before any socket, over N). The subscribers run in this one Python process, so on a small machine
their own reading is part of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import sections
from bench.dataset import load_postgres
from bench.postgres_instance import free_port, postgres_instance
from bench.queries import shots_input

ROOT = Path(__file__).resolve().parent.parent
FEED = (
    "subscription { activityAdded { id kind createdAt user { displayName } shootingSession { shotCount } } }"
)
CREATE = """mutation($input: CreateShootingSessionInput!) { createShootingSession(input: $input) { id } }"""


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class Subscriber:
    """One socket, one subscription; `arrivals` maps an activity kind's update number to its arrival."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.arrivals: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def read(self, received: asyncio.Event, counter: list[int], target: list[int]) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                return
            at = time.perf_counter()
            if '"next"' not in message.data[:40]:
                continue
            self.arrivals.append(at)
            counter[0] += 1
            if counter[0] >= target[0]:
                received.set()


async def _subscribe(http: aiohttp.ClientSession, url: str) -> Subscriber:
    ws = await http.ws_connect(url, protocols=("graphql-transport-ws",), max_msg_size=0)
    await ws.send_str('{"type":"connection_init"}')
    ack = await ws.receive_json()
    assert ack["type"] == "connection_ack", ack
    await ws.send_str(orjson.dumps({"id": "1", "type": "subscribe", "payload": {"query": FEED}}).decode())
    return Subscriber(ws)


async def _subscriptions(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(f"{base}/readyz") as response:
        return int((await response.json()).get("subscriptions", 0))


async def run(base: str, pid: int, count: int, writes: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        first_user = {"query": "{ users(first: 1) { edges { node { id } } } }"}
        async with http.post(f"{base}/graphql", json=first_user) as response:
            user = orjson.loads(await response.read())["data"]["users"]["edges"][0]["node"]["id"]
        session = {"userId": user, "discipline": "Air", "shots": shots_input()}
        body = {"query": CREATE, "variables": {"input": session}}
        for _ in range(20):  # warm the server's paths before measuring its memory
            await http.post(f"{base}/graphql", json=body)
        await asyncio.sleep(1)
        rss_before = _rss_kib(pid)
        load = os.getloadavg()[0]
        subscribers: list[Subscriber] = []
        for start in range(0, count, 100):
            batch = range(start, min(count, start + 100))
            subscribers += await asyncio.gather(*(_subscribe(http, f"{base}/graphql") for _ in batch))
        deadline = time.monotonic() + 60
        while await _subscriptions(http, base) < count:
            if time.monotonic() > deadline:
                raise RuntimeError("the subscriptions did not all start within 60 s")
            await asyncio.sleep(0.1)
        received = asyncio.Event()
        counter, target = [0], [0]
        for subscriber in subscribers:
            subscriber.task = asyncio.create_task(subscriber.read(received, counter, target))
        delays: list[float] = []
        spreads: list[float] = []
        cpu_start = 0.0
        for write in range(writes + 2):
            if write == 2:
                cpu_start = _cpu_seconds(pid)
            received.clear()
            target[0] = counter[0] + count
            async with http.post(f"{base}/graphql", json=body) as response:
                await response.read()
                answered = time.perf_counter()
            await asyncio.wait_for(received.wait(), 60)
            if write < 2:
                continue  # the first updates warm each subscription's path
            arrivals = [subscriber.arrivals[-1] for subscriber in subscribers]
            delays += [(at - answered) * 1000 for at in arrivals]
            spreads.append((max(arrivals) - min(arrivals)) * 1000)
        cpu = _cpu_seconds(pid) - cpu_start
        rss_after = _rss_kib(pid)
        for subscriber in subscribers:
            await subscriber.ws.close()
        ordered = sorted(delays)
        return {
            "subscribers": count,
            "load": load,
            "writes": writes,
            "p50": statistics.median(ordered),
            "p99": ordered[int(len(ordered) * 0.99) - 1],
            "max": ordered[-1],
            "spread": statistics.median(spreads),
            "rss_before_mib": rss_before / 1024,
            "rss_after_mib": rss_after / 1024,
            "kib_per_subscriber": (rss_after - rss_before) / count,
            "cpu_per_write_ms": cpu / writes * 1000,
            "cpu_per_delivery_us": cpu / (writes * count) * 1_000_000,
        }


MARKER = "<!-- bench.subscriptions: this section is rewritten by `bash bench/run --subscriptions` -->"


def report(result: dict[str, Any], machine: str) -> str:
    """The section's text, under its marker in bench/results.md."""
    return "\n".join(
        [
            "## Subscriptions",
            "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine}; one `gateway serve`"
            f" process on a throwaway PostgreSQL; {result['subscribers']:,} graphql-transport-ws subscribers"
            " (one socket each, the same `activityAdded` with a nested user and session) in the benchmark's"
            f" own process; {result['writes']} writes one at a time (createShootingSession, 10 shots)."
            f" Load average when it started: {result['load']:.1f} (other processes on the machine).",
            "",
            "| subscribers | delivery p50 ms | p99 ms | max ms | first-to-last ms (median) "
            "| gateway CPU per write (per delivery) | gateway RSS before / with them "
            "| memory per subscriber |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {result['subscribers']:,} | {result['p50']:.1f} | {result['p99']:.1f} | {result['max']:.1f} "
            f"| {result['spread']:.1f} "
            f"| {result['cpu_per_write_ms']:.1f} ms ({result['cpu_per_delivery_us']:.0f} µs) "
            f"| {result['rss_before_mib']:.1f} / {result['rss_after_mib']:.1f} MiB "
            f"| {result['kib_per_subscriber']:.1f} KiB |",
            "",
            "Delivery: from the mutation's HTTP answer to the update's arrival at each subscriber. Gateway"
            " CPU: its user and system time during the measured writes, over the writes (and over the"
            " deliveries); the subscribers' own reading runs in the benchmark's process, on the same cores.",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.subscriptions", description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000, help="sockets, one subscription each (1000)")
    parser.add_argument("--writes", type=int, default=30, help="writes measured, one at a time (30)")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results.md", help="its section is replaced, or added"
    )
    args = parser.parse_args()
    with postgres_instance() as pg:
        print("loading the dataset into PostgreSQL…", file=sys.stderr)
        env = asyncio.run(load_postgres(pg.port, "club_bench"))
        port = free_port()
        settings = {"APP_ENV": "production", "AUTH_DISABLED": "true", "LOG_LEVEL": "WARNING"}
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, **env, **settings, "SUBSCRIPTIONS_MAX": str(args.subscribers * 2)},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib_open(f"{base}/healthz"):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the gateway did not start") from None
                    time.sleep(0.1)
            print(f"opening {args.subscribers} subscriptions…", file=sys.stderr)
            result = asyncio.run(run(base, server.pid, args.subscribers, args.writes))
        finally:
            server.terminate()
            server.wait(30)
    text = report(result, sections.machine())
    print(text)
    sections.replace(args.output, MARKER, text)
    print(f"\n(also written to {args.output})", file=sys.stderr)
    return 0


def urllib_open(url: str) -> Any:
    import urllib.request

    return urllib.request.urlopen(url, timeout=2)


if __name__ == "__main__":
    sys.exit(main())
