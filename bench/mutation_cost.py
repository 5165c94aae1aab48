"""`python -m bench.mutation_cost [--backend postgres|mysql] [--runs N]`: where a mutation's CPU goes.

In one process, on the benchmark's dataset, M (a session with 10 shots) runs one at a time in
three ways, in interleaved rounds: through the executor (variables, policy, graphql-core and
Strawberry, the resolver, the data source), through the data source alone (`create_session`, the
same writes without GraphQL), and as the raw handler's statements. Each figure is the process's
CPU time per M, the driver and the event loop included, the median of the rounds. The executor
less the data source is the GraphQL layer's cost; the data source less the raw statements is what
the gateway's writes cost over the hand-written ones. No HTTP: `bench.instructions --query M`
counts whole requests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bench.dataset import load_mariadb, load_postgres
from bench.postgres_instance import postgres_instance
from bench.queries import QUERY_M, shots_input
from bench.raw_server import mysql_pool, mysql_record, postgres_pool, postgres_record
from gateway.doors.workers import event_loop

__all__ = ["WAYS", "measure", "report"]

WAYS = ("through the executor", "the data source alone", "the raw handler's statements")


async def _costs(env: dict[str, str], runs: int, rounds: int) -> dict[str, float]:
    """Median CPU µs per M of each way, over `rounds` interleaved rounds of `runs` each."""
    # Imported here: the benchmark's own process loads the gateway only to run this.
    from gateway.datasources.records import NewSession, NewShot
    from gateway.execution.executor import Executor
    from gateway.execution.operation import Operation
    from gateway.schema.ids import encode_id
    from gateway.settings import load_settings

    executor = Executor(load_settings(**{name.lower(): value for name, value in env.items()}))
    source = await executor.open()
    shots = shots_input()
    if env["DB_BACKEND"] == "postgres":
        pg = await postgres_pool(env)

        async def raw(i: int) -> None:
            await postgres_record(pg, user(i), shots)

        async def close_raw() -> None:
            await pg.close()
    else:
        my = await mysql_pool(env)

        async def raw(i: int) -> None:
            await mysql_record(my, user(i), shots)

        async def close_raw() -> None:
            my.close()
            await my.wait_closed()

    def user(i: int) -> int:
        return 1 + i % 1000

    async def graphql(i: int) -> None:
        variables = {
            "input": {"userId": encode_id("User", user(i)), "discipline": "10m Air Rifle", "shots": shots}
        }
        outcome = await executor.execute(Operation(QUERY_M, None, variables), None, None)
        if not isinstance(outcome, bytes) and outcome.errors:
            raise RuntimeError(f"M failed: {outcome.errors}")

    async def data_source(i: int) -> None:
        new = NewSession(
            user_id=user(i),
            group_id=None,
            started_at=datetime.now(UTC),
            discipline="10m Air Rifle",
            location=None,
            distance_meters=None,
            notes=None,
            shots=[NewShot(score_tenths=round(s["score"] * 10), x=None, y=None) for s in shots],
        )
        await source.create_session(new)

    ways: dict[str, Callable[[int], Awaitable[None]]] = dict(
        zip(WAYS, (graphql, data_source, raw), strict=True)
    )
    spent: dict[str, list[float]] = {way: [] for way in WAYS}
    try:
        for way in ways.values():  # warm-up: plans, statement caches, pools
            for i in range(100):
                await way(i)
        for _ in range(rounds):
            for name, way in ways.items():
                started = time.process_time()
                for i in range(runs):
                    await way(i)
                spent[name].append((time.process_time() - started) / runs * 1e6)
    finally:
        await executor.close()
        await close_raw()
    return {way: statistics.median(values) for way, values in spent.items()}


def measure(env: dict[str, str], runs: int = 1000, rounds: int = 5) -> dict[str, float]:
    """CPU µs per M of each way, on the database of the gateway's DB_* `env` (the benchmark's dataset).

    Each M adds a session: run it on a database made for the benchmark. The event loop is the
    servers' (uvloop where installed)."""
    loop = event_loop()
    try:
        return loop.run_until_complete(_costs(env, runs, rounds))
    finally:
        loop.close()


def report(costs: dict[str, dict[str, float]], runs: int = 1000, rounds: int = 5) -> list[str]:
    """Markdown lines: per backend, each way's CPU per M, the GraphQL layer's and the writes' shares."""
    lines = [
        "Where a mutation's CPU goes (`python -m bench.mutation_cost`: M in one process, one at a time,"
        f" no HTTP; CPU µs per M, median of {rounds} interleaved rounds of {runs:,}):",
        "",
        f"| backend | {' | '.join(WAYS)} | GraphQL layer (executor less data source) |"
        " data source less raw statements |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for backend, spent in costs.items():
        executor, source, raw = (spent[way] for way in WAYS)
        lines.append(
            f"| {backend} | {executor:.0f} | {source:.0f} | {raw:.0f} | {executor - source:.0f}"
            f" ({(executor - source) / executor:.0%}) | {source - raw:.0f} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.mutation_cost", description=__doc__)
    parser.add_argument("--backend", choices=("postgres", "mysql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=1000, help="M per way and round (default 1000)")
    args = parser.parse_args()
    costs: dict[str, dict[str, float]] = {}
    if args.backend in ("postgres", "both"):
        with postgres_instance() as pg:
            env = asyncio.run(load_postgres(pg.port, "gw_mutation_cost"))
            costs["PostgreSQL"] = measure(env, args.runs)
    if args.backend in ("mysql", "both"):
        costs["MariaDB"] = measure(load_mariadb("gw_mutation_cost"), args.runs)
    print("\n".join(report(costs, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
