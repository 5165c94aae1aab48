"""`python -m bench.memory [--minutes M]`: the gateway's resident memory, idle, under load and over time.

Starts one gateway process (`gateway serve`, one worker) on the benchmark's PostgreSQL dataset and
reads its RSS from /proc: idle after start-up and one request of each kind, the peak during a run
of query N, then every 30 s during M minutes of mixed load (N, P and the mutation M, interleaved,
wrk on loopback). A least-squares slope over the samples after the first says whether it grows.
Standalone it starts its own throwaway PostgreSQL; `python -m bench` calls `measure` on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import sections
from bench.dataset import USERS, load_postgres
from bench.load import Result, wrk
from bench.postgres_instance import free_port, postgres_instance
from bench.queries import QUERY_M, QUERY_N, QUERY_P, shots_input

__all__ = ["LONG_RUN", "Memory", "measure", "report", "rss_mib"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EVERY = 30.0  # seconds between RSS samples during the mixed load
N_SECONDS = 10


def rss_mib(pid: int) -> float:
    """The resident set of process `pid` now, in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


@dataclass(frozen=True)
class Memory:
    idle_mib: float
    n_load_mib: float  # the highest RSS read during the N run
    samples: list[tuple[float, float]]  # (minutes into the mixed load, RSS MiB)
    mixed: Result  # what wrk measured over the mixed load

    def slope(self) -> float:
        """MiB per minute, least squares over the samples after the first (which includes warm-up)."""
        later = self.samples[1:]
        if len(later) < 2:
            return 0.0
        minutes, mib = zip(*later, strict=True)
        return statistics.linear_regression(minutes, mib).slope


def _bodies(kinds: str) -> list[str]:
    """Request bodies, one per letter of `kinds` (N, P or M), users cycling as in the benchmark."""
    from gateway.schema.ids import encode_id

    bodies: list[dict[str, Any]] = []
    for i, kind in enumerate(kinds):
        user = encode_id("User", 1 + (i * 37) % USERS)
        if kind == "N":
            bodies.append({"query": QUERY_N})
        elif kind == "P":
            bodies.append({"query": QUERY_P, "variables": {"id": user}})
        else:
            shots = shots_input()
            session = {"userId": user, "discipline": "10m Air Rifle", "shots": shots}
            bodies.append({"query": QUERY_M, "variables": {"input": session}})
    return [orjson.dumps(body).decode() for body in bodies]


# The mixed load: mostly lookups, some lists, some writes.
MIXED = "PNPMPPNPMP"


@contextmanager
def _peak(pid: int, every: float = 0.25) -> Iterator[list[float]]:
    """Reads RSS every `every` s while the block runs; the list holds the readings."""
    readings: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            readings.append(rss_mib(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield readings
    finally:
        stop.set()
        thread.join()


def _post(url: str, body: str) -> None:
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = orjson.loads(response.read())
    if "errors" in answer:
        raise RuntimeError(f"the gateway answered errors: {answer['errors']}")


@contextmanager
def _gateway(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`gateway serve` on a free loopback port, sign-in off; yields its /graphql URL and pid."""
    port = free_port()
    settings = {"APP_ENV": "production", "LOG_LEVEL": "WARNING", "AUTH_DISABLED": "true"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env={**os.environ, **env, **settings},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the gateway exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway did not start") from None
                time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure(env: dict[str, str], minutes: float) -> Memory:
    """A fresh gateway on the database `env` names: idle, N-load and mixed-load RSS."""
    with _gateway(env) as (url, pid):
        for body in _bodies("NPM"):
            _post(url, body)
        idle = rss_mib(pid)
        with _peak(pid) as readings:
            wrk(url, _bodies("N"), N_SECONDS)
        n_load = max(readings, default=rss_mib(pid))
        samples: list[tuple[float, float]] = []
        results: list[Result] = []
        load = threading.Thread(
            target=lambda: results.append(wrk(url, _bodies(MIXED), minutes * 60)), daemon=True
        )
        started = time.monotonic()
        load.start()
        while load.is_alive():
            load.join(SAMPLE_EVERY)
            if load.is_alive():
                samples.append(((time.monotonic() - started) / 60, rss_mib(pid)))
        samples.append(((time.monotonic() - started) / 60, rss_mib(pid)))
    if not results:
        raise RuntimeError("the mixed load did not finish")
    return Memory(idle, n_load, samples, results[0])


def report(memory: Memory, minutes: float) -> list[str]:
    """Markdown lines: idle and N-load RSS, then the mixed-load samples and their slope."""
    first, last = memory.samples[0][1], memory.samples[-1][1]
    readings = ", ".join(f"{mib:.1f}" for _, mib in memory.samples)
    return [
        "Memory (one gateway process, PostgreSQL, RSS from /proc):",
        "",
        f"- idle, after start-up and one request of each kind: {memory.idle_mib:.1f} MiB",
        f"- under the N load (wrk, {N_SECONDS} s, highest reading): {memory.n_load_mib:.1f} MiB",
        f"- {minutes:g} minutes of mixed load ({MIXED}, wrk on loopback), every {SAMPLE_EVERY:.0f} s:"
        f" {readings} MiB ({memory.mixed.rps:,.0f} req/s, {memory.mixed.errors} errors)",
        f"- slope after the first sample: {memory.slope():+.3f} MiB/min"
        f" (first {first:.1f} → last {last:.1f} MiB); target: no growth",
    ]


# The long run's section of bench/results.md, rewritten only by `--record`.
LONG_RUN = "<!-- bench.memory: this section is rewritten by `python -m bench.memory --record` -->"


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.memory", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10, help="length of the mixed load (default 10)")
    parser.add_argument(
        "--record", type=Path, help="also write the result as the long-run section of this file"
    )
    args = parser.parse_args()
    with postgres_instance() as pg:
        print("loading the dataset into PostgreSQL…", file=sys.stderr)
        env = asyncio.run(load_postgres(pg.port, "club_memory"))
        print(f"measuring memory ({args.minutes:g} min of mixed load)…", file=sys.stderr)
        memory = measure(env, args.minutes)
    lines = report(memory, args.minutes)
    print("\n".join(lines))
    if args.record:
        command = f"python -m bench.memory --minutes {args.minutes:g}"
        measured = f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {sections.machine()} by `{command}`."
        sections.replace(
            args.record, LONG_RUN, "\n".join(["## Memory over a long mixed load", "", measured, "", *lines])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
