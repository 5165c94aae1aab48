"""`python -m bench.profile [--query P|N|M] [--backend postgres|mysql]`: where the time of one request
goes in the server process, the raw handler's against this tree's gateway, under the benchmark's load.

`bench.instructions` counts work and `bench.calls` counts calls; neither is time, and the gateway's
time per request exceeds the raw handler's by more than its instructions do. This samples each
system's Python stack with py-spy (a separate process reading the server's memory: the server is
not paused) while wrk loads it as `bash bench/run` does, and charges each sample to the
innermost Python frame: that frame's own bytecode and the C it called (a driver's socket write is
charged to the driver's function that wrote, the kernel's wake-up of the reader included). Samples
whose innermost frame is the event loop's own (uvloop reading sockets, parsing HTTP, running
callbacks) are grouped apart. Idle samples are not recorded, but a thread that is ready to run
and waiting for a core counts as busy: the samples are read as shares, each group's share of a
system's samples times the CPU time per request /proc gives the process over the same load. Each
system is sampled in rounds, alternating, and the round with its median CPU time per request is
reported (~2 minutes, py-spy from `pip install -e '.[bench]'`).

Where perf is installed (Debian's `linux-perf`), it samples the same load from the kernel's timer,
without reading Python frames, and the time is also split by the machine code that ran: the
interpreter (libpython: bytecode, objects), the kernel, and each package's compiled modules. It
cannot say which Python function ran, but its attribution does not depend on reading the frames
of a running process: the check on py-spy's (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from bench.__main__ import ROOT, System, gateway, raw, running
from bench.calls import GENERATED, GRAPHQL, GROUPS, OWN, C, table, where
from bench.cpu import cpu_seconds
from bench.dataset import load_mariadb, load_postgres
from bench.load import wrk
from bench.postgres_instance import postgres_instance

__all__ = ["RATE", "Profile", "main", "profile", "profiled", "py_spy", "report"]

_PY_ONLY = (OWN, GENERATED, GRAPHQL, C)  # groups of Python code: no machine code of their own
EVENT_LOOP = "the event loop's own frame (uvloop: sockets, HTTP parsing, callbacks)"
# Both servers run in aiohttp's `web.run_app` on uvloop, whose loop is C: a sample whose innermost
# Python frame is run_app's ran in the loop (or in the C it calls back: a driver's protocol, say).
_LOOP_FRAME = "run_app"
_WARM_UP_SECONDS = 3
RATE = 2000  # samples per second
_PERF_RATE = 999  # perf's samples per second: off the timer tick's multiples
_KERNEL = "the kernel (system calls, sockets, scheduling)"
_INTERPRETER = "the interpreter (libpython: bytecode, objects)"
_LOOP_LIBRARY = "the event loop (uvloop)"
_REST = "the C library and the rest"
_LIBRARIES = (
    _INTERPRETER,
    _KERNEL,
    _LOOP_LIBRARY,
    *dict.fromkeys(g for g in GROUPS if g not in _PY_ONLY),
    _REST,
)
_SITE = sysconfig.get_paths()["purelib"] + os.sep
_STDLIB = sysconfig.get_paths()["stdlib"]


class Profile:
    """One system's samples by innermost frame (`function (file:line)`), the requests they cover,
    and the CPU time /proc gave the process over them."""

    def __init__(
        self,
        samples: Counter[str],
        requests: float,
        rate: int,
        cpu_seconds: float,
        machine: Counter[str] | None = None,
    ) -> None:
        self.samples = samples
        self.machine = machine or Counter()  # perf's samples by library; empty without perf
        self.total = sum(samples.values())
        self.machine_total = sum(self.machine.values())
        self.requests = requests
        self.rate = rate
        self.cpu_seconds = cpu_seconds

    def us(self, samples: float) -> float:
        """`samples` as their share of the CPU time per request, in microseconds."""
        return samples / self.total * self.cpu_us()

    def cpu_us(self) -> float:
        """The CPU time per request, in microseconds."""
        return self.cpu_seconds / self.requests * 1e6

    def coverage(self) -> float:
        """The samples' time over the CPU time: under 1 for time they miss, over 1 for time the
        process was ready to run but waiting for a core."""
        return self.total / self.rate / self.cpu_seconds

    def machine_us(self, library: str) -> float:
        """`library`'s share of perf's samples, as µs of the CPU time per request."""
        return self.machine[library] / self.machine_total * self.cpu_us()

    def by_group(self) -> Counter[str]:
        groups: Counter[str] = Counter()
        for frame, n in self.samples.items():
            groups[_group(frame)] += n
        return groups


def _group(frame: str) -> str:
    function, _, location = frame.partition(" (")
    filename = location.rsplit(":", 1)[0]
    if function == _LOOP_FRAME:
        return EVENT_LOOP
    return where(filename)


def _collapsed(path: Path) -> Counter[str]:
    """py-spy's raw output (`frame;frame;… count` per line) as counts per innermost frame.

    Sampling without pausing the process reads a frame's name while it may change: a garbled name
    can hold a line break (a run of 2026-12-07 stopped on one), which cuts its sample's line in two.
    The part without a count is skipped; the sample counts once, under the innermost frame of the
    part that ends with it.
    """
    samples: Counter[str] = Counter()
    for line in path.read_bytes().decode(errors="replace").split("\n"):
        stack, _, count = line.rpartition(" ")
        if count.isascii() and count.isdigit():
            samples[stack.rsplit(";", 1)[-1]] += int(count)
    return samples


def _library(dso: str) -> str:
    """The part of the server a shared object `perf script` names (a path, or `[kernel.kallsyms]`) is."""
    if dso.startswith("[kernel"):
        return _KERNEL
    if "/libpython" in dso:
        return _INTERPRETER
    if "/uvloop/" in dso:
        return _LOOP_LIBRARY
    if "site-packages/" in dso or dso.startswith(_STDLIB):
        return where(dso)
    return _REST


def _perf_samples(path: Path) -> Counter[str]:
    """perf's samples in `path` by the library their instruction was in."""
    out = subprocess.run(
        ["perf", "script", "-i", str(path), "-F", "ip,dso"], capture_output=True, text=True, check=True
    ).stdout
    libraries: Counter[str] = Counter()
    for line in out.splitlines():  # `address (shared object)`
        if (start := line.find(" (")) != -1:
            libraries[_library(line[start + 2 :].rstrip().removesuffix(")"))] += 1
    return libraries


def py_spy() -> str | None:
    """py-spy's executable, the virtualenv's before any other; None when it is not installed."""
    folders = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return shutil.which("py-spy", path=folders)


def profile(system: System, query: str, seconds: int, rate: int, spy: str) -> Profile:
    """`system` (running) sampled while wrk loads it with `query` for `seconds`."""
    assert system.process is not None
    path, bodies = system.offered(query)
    wrk(system.url(path), bodies, _WARM_UP_SECONDS, system.headers)
    with tempfile.TemporaryDirectory(prefix="gw-profile-") as folder:
        out = Path(folder) / "stacks.txt"
        # Sampling starts before the load and ends after it: the samples outside it are idle ones.
        command = [spy, "record", "--nonblocking", "--full-filenames", "--format", "raw", "--rate", str(rate)]
        command += ["--duration", str(seconds + 2), "--pid", str(system.process.pid), "--output", str(out)]
        sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        recorded = Path(folder) / "perf.data"
        perf = None
        if shutil.which("perf"):
            # The kernel's timer samples the process's threads on their cores: py-spy is another process.
            command = ["perf", "record", "-q", "-F", str(_PERF_RATE), "-e", "cpu-clock", "-o", str(recorded)]
            command += ["-p", str(system.process.pid), "--", "sleep", str(seconds + 2)]
            perf = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        before = cpu_seconds(system.process.pid)
        load = wrk(system.url(path), bodies, seconds, system.headers)
        used = cpu_seconds(system.process.pid) - before
        _, error = sampler.communicate(timeout=seconds + 60)
        if sampler.returncode != 0 or not out.exists():
            raise RuntimeError(f"py-spy failed on {system.name}: {error.decode(errors='replace')[-1000:]}")
        # A perf that cannot sample here (no permission, no build for this kernel): no split by library.
        machine = _perf_samples(recorded) if perf is not None and perf.wait() == 0 else None
        return Profile(_collapsed(out), load.rps * seconds, rate, used, machine)


def profiled(
    systems: list[System], query: str, rounds: int, seconds: int, rate: int, spy: str
) -> list[tuple[str, Profile]]:
    """Each system (running) sampled in `rounds` rounds, the systems alternating; of each, the round
    with the median CPU time per request (one round slowed by the shared machine does not count)."""
    taken: dict[str, list[Profile]] = {system.name: [] for system in systems}
    for _ in range(rounds):
        for system in systems:
            taken[system.name].append(profile(system, query, seconds, rate, spy))
    return [(name, sorted(runs, key=Profile.cpu_us)[len(runs) // 2]) for name, runs in taken.items()]


def report(profiles: list[tuple[str, Profile]], query: str, top: int) -> str:
    """Markdown: µs of CPU per request by group for each system (shares of its samples); then the
    last system's busiest frames of its own, and the frames both systems run by how much more time
    the last one spends in them."""
    names = [name for name, _ in profiles]
    grouped = [p.by_group() for _, p in profiles]
    rows = [
        (group, [f"{p.us(g[group]):.1f}" for (_, p), g in zip(profiles, grouped, strict=True)])
        for group in (EVENT_LOOP, *GROUPS)
        if any(g[group] for g in grouped)
    ]
    rows.append(
        ("**all: the CPU time per request read from /proc**", [f"**{p.cpu_us():.1f}**" for _, p in profiles])
    )
    rows.append(("the samples' time over that CPU time", [f"{p.coverage():.2f}" for _, p in profiles]))
    lines = table(f"µs of CPU per {query} request, by innermost Python frame", names, rows)
    if all(p.machine for _, p in profiles):
        rows = [
            (library, [f"{p.machine_us(library):.1f}" for _, p in profiles])
            for library in _LIBRARIES
            if any(p.machine[library] for _, p in profiles)
        ]
        lines += [
            "",
            *table(f"µs of CPU per {query} request, by the machine code that ran (perf)", names, rows),
        ]
    (first_name, first), (name, last) = profiles[0], profiles[-1]
    ours = [(frame, last.us(n)) for frame, n in last.samples.items() if _group(frame) in _OURS]
    shared = {frame for p in (first, last) for frame in p.samples if _group(frame) not in _OURS}
    more = [(frame, last.us(last.samples[frame]) - first.us(first.samples[frame])) for frame in shared]
    lines += ["", f"{name}: its own and the GraphQL libraries' frames, the {top} busiest", ""]
    lines += [f"    {us:5.2f}  {_short(frame)}" for frame, us in sorted(ours, key=lambda f: -f[1])[:top]]
    lines += ["", f"The frames both run (HTTP, driver, loop, library): {name} over {first_name}", ""]
    lines += [f"    {us:+5.2f}  {_short(frame)}" for frame, us in sorted(more, key=lambda f: -f[1])[:top]]
    return "\n".join(lines)


_OURS = (OWN, GENERATED, GRAPHQL)


def _short(frame: str) -> str:
    return frame.replace(_SITE, "").replace(str(ROOT) + os.sep, "") or "(no Python frame)"


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.profile", description=__doc__)
    parser.add_argument("--query", choices=("P", "N", "M"), default="P", help="the operation (default P)")
    parser.add_argument("--backend", choices=("postgres", "mysql"), default="postgres")
    parser.add_argument("--seconds", type=int, default=10, help="load per system and round (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the systems alternating (default 3)")
    parser.add_argument("--rate", type=int, default=RATE, help=f"samples per second (default {RATE})")
    parser.add_argument("--top", type=int, default=40, help="the gateway's frames listed (default 40)")
    args = parser.parse_args()
    spy = py_spy()
    if spy is None:
        parser.error("py-spy is not installed: .venv/bin/pip install -e '.[bench]'")
    with ExitStack() as stack:
        print("loading the dataset…", file=sys.stderr)
        if args.backend == "postgres":
            pg = stack.enter_context(postgres_instance())
            env = asyncio.run(load_postgres(pg.port, "club_bench"))
        else:
            env = load_mariadb("gw_bench")
        systems = [raw("raw handler", args.backend, env), gateway("this tree", args.backend, env)]
        for system in systems:
            stack.enter_context(running(system))
        print("sampling…", file=sys.stderr)
        profiles = profiled(systems, args.query, args.rounds, args.seconds, args.rate, spy)
    print(report(profiles, args.query, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
