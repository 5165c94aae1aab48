"""`python -m bench.cold_start`: how soon a fresh serverless instance answers (Vercel's cold start).

Each run is a new Python process that imports `api.index` (the Vercel entry) and sends its ASGI app
one query, the way the platform's runtime does, on a SQLite file made beforehand. The project runs
from a copy laid out like the function's bundle as vercel.json deploys it: its build sets
VERCEL_PYTHON_COMPILEALL, so Vercel's Python builder ships bytecode for the project and the
installed packages (unchecked-hash, as its compile step writes it). It reports, over the runs, the
median and max of the import and of the first answer counted from process start, with the targets
beside them. A second series runs the bundle Vercel builds without that setting: it strips every
`__pycache__`, the installed packages' too, so each cold start compiles all it imports. A third
imports only the installed packages that `import api.index` loads, the same modules in the same
order without the project's own code: the floor under the import, which the project cannot go below
while it runs on these packages. `--importtime` adds one run under `python -X importtime` and prints
where the import's time goes, by top-level package.

The processes run on the Python that Vercel runs the function on: the version api/.python-version
pins, in the venv `scripts/function-venv` makes (`--python 3.12` measures another version).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.queries import QUERY_P

__all__ = ["ColdStart", "function_python", "importtime_by_package", "measure", "report"]

ROOT = Path(__file__).resolve().parent.parent
IMPORT_TARGET_MS = 250.0
FIRST_ANSWER_TARGET_MS = 350.0

# A production instance with sign-in configured, asked anonymously (AUTH_ANONYMOUS_READ's default).
ENV = {
    "APP_ENV": "production",
    "AUTH_JWT_SECRET": "cold-start-secret-cold-start-secret-0123456789",
    "DB_BACKEND": "sqlite",
    "LOG_LEVEL": "WARNING",
}

# Run by each fresh process: stamps (CLOCK_MONOTONIC, shared by all processes) around the import and
# the first answer, which Vercel's runtime would produce by calling the module's ASGI `app` itself.
_CHILD = """
import time
started, started_cpu = time.monotonic(), time.process_time()
import sys
sys.path.insert(0, {root!r})
import api.index
imported, imported_cpu = time.monotonic(), time.process_time()
import asyncio, json, os

async def ask():
    body = {body!r}
    scope = {{"type": "http", "asgi": {{"version": "3.0"}}, "http_version": "1.1", "method": "POST",
        "scheme": "https", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 443),
        "headers": [(b"host", b"club.example"), (b"content-type", b"application/json")]}}
    sent, requests, finished = [], [body], asyncio.Event()
    async def receive():
        if requests:
            return {{"type": "http.request", "body": requests.pop(), "more_body": False}}
        await finished.wait()  # the client hangs up once the answer is complete
        return {{"type": "http.disconnect"}}
    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()
    await api.index.app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

def peak_rss_kib():
    # VmHWM, not getrusage's ru_maxrss: Linux carries that across exec from the process that
    # spawned this one (the benchmark's own, larger, process).
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

status, answer = asyncio.run(ask())
answered = time.monotonic()
print(json.dumps({{"started": started, "imported": imported, "answered": answered, "status": status,
    "import_cpu": imported_cpu - started_cpu,
    "answer": answer.decode(),
    "max_rss_kib": peak_rss_kib()}}), flush=True)
os._exit(0)  # the platform freezes or kills an instance; the open SQLite thread would keep it alive
"""


# Run by a process that has imported api.index: the installed modules it loaded, in the order their
# imports began (sys.modules' order), neither the project's nor the standard library's.
_LOADED = """
import importlib.util, json, sys
sys.path.insert(0, {root!r})
import api.index
ours = ("api", "gateway")
names = [n for n in sys.modules if n.split(".")[0] not in ours + tuple(sys.stdlib_module_names)
    and getattr(sys.modules[n], "__file__", None)]
tops = {{top: (spec.origin, bool(spec.submodule_search_locations))
    for top in sorted({{n.split(".")[0] for n in names}})
    if (spec := importlib.util.find_spec(top)) is not None and spec.origin}}
print(json.dumps({{"names": names, "tops": tops}}))
"""

# Imports `names` (each module api.index's import loaded from an installed package) and stamps it
# like _CHILD; a module that cannot be imported on its own is left out.
_PACKAGES_CHILD = """
import time
started, started_cpu = time.monotonic(), time.process_time()
import gc, importlib, os
gc.disable()  # as api/index.py does while it imports
for name in {names!r}:
    try:
        importlib.import_module(name)
    except Exception:
        pass
imported, imported_cpu = time.monotonic(), time.process_time()
import json
print(json.dumps({{"started": started, "imported": imported, "import_cpu": imported_cpu - started_cpu}}))
os._exit(0)
"""


@dataclass(frozen=True)
class Run:
    startup_ms: float  # from just before the process was spawned until its first line ran
    import_ms: float  # `import api.index`, measured inside the process
    import_cpu_ms: float  # the CPU time it took: less disturbed by other processes on a busy machine
    first_answer_ms: float  # from just before the process was spawned until the answer was complete
    max_rss_mib: float


@dataclass(frozen=True)
class ColdStart:
    runs: list[Run]
    python: str  # the version the processes ran on, as `3.13.0`

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in self.runs)

    def max(self, attribute: str) -> float:
        return max(getattr(r, attribute) for r in self.runs)


def _demo_database(directory: Path) -> Path:
    """A SQLite file holding the demo club, made once (the instance finds its tables ready)."""
    path = directory / "club.db"
    subprocess.run(
        [sys.executable, "-m", "gateway", "init-db", "--demo"],
        env={**os.environ, **ENV, "DB_SQLITE_PATH": str(path), "PYTHONPATH": str(ROOT)},
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return path


def function_python(version: str | None = None) -> str:
    """The interpreter of the venv on the Python the function is pinned to (or `version`), made by
    scripts/function-venv if it is missing."""
    command = [sys.executable, str(ROOT / "scripts" / "function-venv"), *([version] if version else [])]
    made = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if made.returncode != 0:
        raise RuntimeError(f"no venv for the function's Python: {made.stderr.strip()[-2000:]}")
    return made.stdout.strip()


def _version(python: str) -> str:
    done = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True
    )
    return done.stdout.decode().strip()


def _one(
    python: str, code: str, env: dict[str, str], cwd: Path, *flags: str
) -> tuple[Run, subprocess.CompletedProcess[str]]:
    spawned = time.monotonic()
    done = subprocess.run(
        [python, *flags, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"the cold process failed: {done.stderr[-2000:]}")
    stamps = json.loads(done.stdout)
    answer = json.loads(stamps["answer"])
    if stamps["status"] != 200 or "errors" in answer or not answer["data"]["user"]:
        raise RuntimeError(f"the cold process's first answer is not the user: {stamps['status']} {answer}")
    run = Run(
        startup_ms=(stamps["started"] - spawned) * 1000,
        import_ms=(stamps["imported"] - stamps["started"]) * 1000,
        import_cpu_ms=stamps["import_cpu"] * 1000,
        first_answer_ms=(stamps["answered"] - spawned) * 1000,
        max_rss_mib=stamps["max_rss_kib"] / 1024,
    )
    return run, done


def _imports_only(python: str, code: str, env: dict[str, str], cwd: Path) -> Run:
    """One fresh process running `code` (_PACKAGES_CHILD): its start-up and import, nothing answered."""
    spawned = time.monotonic()
    command = [python, "-c", code]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=True)
    stamps = json.loads(done.stdout)
    return Run(
        startup_ms=(stamps["started"] - spawned) * 1000,
        import_ms=(stamps["imported"] - stamps["started"]) * 1000,
        import_cpu_ms=stamps["import_cpu"] * 1000,
        first_answer_ms=float("nan"),
        max_rss_mib=float("nan"),
    )


def _setup(directory: Path, python: str, bytecode: bool = True) -> tuple[str, dict[str, str]]:
    """The bundle (api/ and gateway/, compiled by `python` as Vercel's builder compiles them unless
    `bytecode` is false), its database, the child's code."""
    bundle = directory / "bundle"
    for package in ("api", "gateway"):
        ignored = shutil.ignore_patterns("__pycache__", "*.db")
        shutil.copytree(ROOT / package, bundle / package, ignore=ignored)
    if bytecode:
        compile_all = [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(bundle)]
        subprocess.run(compile_all, check=True, capture_output=True, timeout=300)
    path = _demo_database(directory)
    from gateway.schema.ids import encode_id

    body = json.dumps({"query": QUERY_P, "variables": {"id": encode_id("User", 1)}}).encode()
    # No bytecode is written: every run finds the bundle as deployed.
    env = {**os.environ, **ENV, "DB_SQLITE_PATH": str(path), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)  # api/index.py finds the project itself, as on Vercel
    return _CHILD.format(root=str(bundle), body=body), env


def _loaded_packages(
    python: str, env: dict[str, str], cwd: Path, root: Path
) -> tuple[list[str], dict[str, tuple[str, bool]]]:
    """The installed modules that `import api.index` loads from the bundle at `root`, in order, and
    where each of their top-level packages lives (its origin, whether it is a package)."""
    loaded = subprocess.run(
        [python, "-c", _LOADED.format(root=str(root))],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(loaded.stdout)
    return found["names"], {top: (origin, package) for top, (origin, package) in found["tops"].items()}


def _vendored_without_bytecode(directory: Path, tops: dict[str, tuple[str, bool]]) -> Path:
    """A copy of the installed top-level packages `tops`, without their bytecode, as Vercel's
    builder vendors them when it does not compile."""
    vendor = directory / "vendor"
    vendor.mkdir()
    for top, (where, package) in sorted(tops.items()):
        origin = Path(where)
        if package:
            shutil.copytree(origin.parent, vendor / top, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, vendor / origin.name)
    return vendor


def measure(python: str, runs: int = 10) -> tuple[ColdStart, ColdStart, ColdStart]:
    """`runs` fresh processes of `python` (function_python()) on the bundle as deployed, on the
    bundle without any bytecode, and on the installed packages alone, interleaved, one at a time."""
    with (
        tempfile.TemporaryDirectory(prefix="gw-cold-") as deployed,
        tempfile.TemporaryDirectory(prefix="gw-cold-") as uncompiled,
    ):
        code, env = _setup(Path(deployed), python)
        names, tops = _loaded_packages(python, env, Path(deployed), Path(deployed) / "bundle")
        bare_code, bare_env = _setup(Path(uncompiled), python, bytecode=False)
        # Ahead of site-packages on sys.path: the same packages, found without their bytecode.
        bare_env["PYTHONPATH"] = str(_vendored_without_bytecode(Path(uncompiled), tops))
        setups = [(code, env, Path(deployed)), (bare_code, bare_env, Path(uncompiled))]
        for child, child_env, cwd in setups:
            _one(python, child, child_env, cwd)  # not counted: fills the page cache
        packages = _PACKAGES_CHILD.format(names=names)
        series: tuple[list[Run], list[Run]] = ([], [])
        alone: list[Run] = []
        for _ in range(runs):
            for found, (child, child_env, cwd) in zip(series, setups, strict=True):
                found.append(_one(python, child, child_env, cwd)[0])
            alone.append(_imports_only(python, packages, env, Path(deployed)))
    version = _version(python)
    return ColdStart(series[0], version), ColdStart(series[1], version), ColdStart(alone, version)


def importtime_by_package(python: str, runs: int = 3, top: int = 12) -> list[tuple[str, float]]:
    """Cold imports of `python` under `-X importtime`: each module's least self time over `runs`,
    summed by top-level package, in milliseconds, heaviest first."""
    least: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="gw-cold-") as tmp:
        code, env = _setup(Path(tmp), python)
        for _ in range(runs):
            _, done = _one(python, code, env, Path(tmp), "-X", "importtime")
            for line in done.stderr.splitlines():
                if not line.startswith("import time:") or "self [us]" in line:
                    continue
                self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
                least[name] = min(least.get(name, int(self_us)), int(self_us))
    spent: dict[str, float] = defaultdict(float)
    for name, us in least.items():
        spent[name.split(".")[0]] += us / 1000
    return sorted(spent.items(), key=lambda item: -item[1])[:top]


def report(
    cold: ColdStart,
    uncompiled: ColdStart | None = None,
    alone: ColdStart | None = None,
    packages: list[tuple[str, float]] | None = None,
) -> list[str]:
    """Markdown lines: median and max against the targets; `uncompiled`: the series without any
    bytecode; `alone`: the installed packages without the project; `packages`: where the import's
    time goes."""
    lines = [
        f"Cold start (Vercel entry, SQLite, {len(cold.runs)} fresh processes each on Python {cold.python};"
        " the bundle as vercel.json deploys it, bytecode compiled at build by VERCEL_PYTHON_COMPILEALL):"
        " median / max, target",
        "",
        "| figure | median ms | max ms | target ms |",
        "|---|---:|---:|---:|",
        f"| interpreter start-up | {cold.median('startup_ms'):.0f} | {cold.max('startup_ms'):.0f} | |",
        f"| `import api.index` | {cold.median('import_ms'):.0f} | {cold.max('import_ms'):.0f}"
        f" | ≤ {IMPORT_TARGET_MS:.0f} |",
        f"| `import api.index`, CPU time | {cold.median('import_cpu_ms'):.0f}"
        f" | {cold.max('import_cpu_ms'):.0f}"
        " | |",
        f"| first answer from process start | {cold.median('first_answer_ms'):.0f}"
        f" | {cold.max('first_answer_ms'):.0f} | ≤ {FIRST_ANSWER_TARGET_MS:.0f} |",
        f"| peak RSS (MiB) | {cold.median('max_rss_mib'):.0f} | {cold.max('max_rss_mib'):.0f} | |",
    ]
    if uncompiled is not None:
        lines += [
            "| `import api.index`, no bytecode (built without VERCEL_PYTHON_COMPILEALL)"
            f" | {uncompiled.median('import_ms'):.0f} | {uncompiled.max('import_ms'):.0f} | |",
            f"| first answer, no bytecode | {uncompiled.median('first_answer_ms'):.0f}"
            f" | {uncompiled.max('first_answer_ms'):.0f} | |",
        ]
    if alone is not None:
        lines.append(
            "| the installed packages alone (the same modules, no project code)"
            f" | {alone.median('import_ms'):.0f} | {alone.max('import_ms'):.0f} | |"
        )
    if cold.median("import_ms") > IMPORT_TARGET_MS or cold.median("first_answer_ms") > FIRST_ANSWER_TARGET_MS:
        why = (
            "Not met, and why (measured; bench/README.md has the detail): what is left is loading the"
            " packages every answer needs (graphql-core, Strawberry and the schema it builds, Pydantic"
            " with pydantic-settings), by package below."
        )
        if alone is not None:
            floor, project = alone.median("import_ms"), cold.median("import_ms") - alone.median("import_ms")
            why += (
                f" The installed packages alone take {floor:.0f} ms ({floor / IMPORT_TARGET_MS:.0%} of the"
                f" import's target); the project's own modules add {project:.0f} ms."
            )
        lines += ["", why]
    if packages:
        spent = ", ".join(f"{name} {ms:.0f}" for name, ms in packages)
        lines += [
            "",
            "Where the import's time goes, ms by top-level package (`python -X importtime`, each"
            f" module's least of 3 runs; the measurement inflates it): {spent}",
        ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.cold_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="fresh processes (default 10)")
    parser.add_argument(
        "--importtime", action="store_true", help="also show where the import's time goes, by package"
    )
    parser.add_argument(
        "--python", metavar="VERSION", help="run on this Python, as 3.12 (default: api/.python-version's)"
    )
    args = parser.parse_args()
    python = function_python(args.python)
    packages = importtime_by_package(python) if args.importtime else None
    print("\n".join(report(*measure(python, args.runs), packages)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
