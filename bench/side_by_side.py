"""`python -m bench.side_by_side --ref COMMIT [--ref COMMIT …] [--floor]`: this tree's gateway against
earlier commits of it and the raw handler, side by side in one run.

Each system is one process on the benchmark's dataset, in a throwaway PostgreSQL (or the machine's
MariaDB); a commit runs from its own git worktree with this tree's virtualenv (`--with` installs
packages an older commit needs and this one does not, such as aiohttp-cors for be762ad). wrk
loads the systems in turn, the order rotating every round, and the report gives each one's median
requests/s, its ratio to the raw handler, and its CPU time per request: the figures that tell a
regression from the machine's drift, which moves every system alike. `--floor` adds, on P on
PostgreSQL, the least a GraphQL server can do around the handler's statement (`bench/raw_server.py`,
`graphql_floor_app`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.__main__ import ROOT, System, Table, gateway, graphql_floor, load_rounds, raw, running
from bench.cpu import process_named
from bench.dataset import load_mariadb, load_postgres
from bench.postgres_instance import postgres_instance

__all__ = ["earlier_gateways", "main", "report"]


@contextmanager
def _worktree(ref: str) -> Iterator[Path]:
    """A checkout of `ref` beside this one, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="gw-side-by-side-") as parent:
        tree = Path(parent) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), ref], cwd=ROOT, check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True)


def _packages(names: list[str], into: Path) -> Path:
    """`names` installed (without their dependencies) into a folder of their own."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(into), *names],
        check=True,
    )
    return into


def earlier_gateways(
    stack: ExitStack, refs: list[str], names: list[str], backend: str, env: dict[str, str]
) -> list[System]:
    """A gateway for each commit in `refs`, each run from its own worktree (open while `stack` is),
    with the packages `names` installed beside it."""
    extra: list[str] = []
    if names:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-side-by-side-pkgs-")))
        extra.append(str(_packages(names, folder)))
    systems = []
    for ref in refs:
        system = gateway(ref, backend, env)
        system.cwd = stack.enter_context(_worktree(ref))
        system.env["PYTHONPATH"] = os.pathsep.join([str(system.cwd), *extra])
        systems.append(system)
    return systems


def report(table: Table, systems: list[System], query: str) -> str:
    """Markdown: each system's median requests/s, ratio to the first (the raw handler), CPU per request."""
    baseline = systems[0].name
    lines = [
        f"| system | {query} req/s | / raw | CPU µs per request | req/s each round |",
        "|---|---:|---:|---:|---|",
    ]
    for system in systems:
        cpu = table.cpu_us(system.name, query)
        ratio = table.ratio(system.name, baseline, query)
        rounds = ", ".join(f"{r.rps:,.0f}" for r in table.results[(system.name, query)])
        median = table.median(system.name, query)
        lines.append(f"| {system.name} | {median:,.0f} | {ratio:.3f} | {cpu:.1f} | {rounds} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.side_by_side", description=__doc__)
    parser.add_argument("--ref", action="append", required=True, help="a commit to compare (repeatable)")
    parser.add_argument("--query", choices=("P", "N", "M"), default="P", help="the operation (default P)")
    parser.add_argument("--backend", choices=("postgres", "mysql"), default="postgres")
    parser.add_argument("--seconds", type=int, default=8, help="length of each load run (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each system once (default 5)")
    parser.add_argument("--floor", action="store_true", help="add the GraphQL floor (P on PostgreSQL)")
    parser.add_argument(
        "--with", dest="packages", action="append", default=[], help="a package the older commits need"
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        print("loading the dataset…", file=sys.stderr)
        if args.backend == "postgres":
            pg = stack.enter_context(postgres_instance())
            env = asyncio.run(load_postgres(pg.port, "club_bench"))
            databases = {"postgres": pg.pid}
        else:
            env = load_mariadb("gw_bench")
            databases = {"mysql": process_named("mariadbd", "mysqld")}
        systems = [raw("raw handler", args.backend, env), gateway("this tree", args.backend, env)]
        if args.floor:
            if (args.query, args.backend) != ("P", "postgres"):
                parser.error("--floor is P on PostgreSQL")
            systems.insert(1, graphql_floor(env))
        systems += earlier_gateways(stack, args.ref, args.packages, args.backend, env)
        for system in systems:
            stack.enter_context(running(system))
        table = Table(databases)
        load_rounds(systems, [args.query], args.rounds, args.seconds, table)
    print(report(table, systems, args.query))
    return 0


if __name__ == "__main__":
    sys.exit(main())
