"""CPU time of process trees, read from /proc: where a load run's cores went."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cores", "cpu_seconds", "measure", "process_named"]

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # exited
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    return text[text.rindex(")") + 2 :].split()


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and its descendants, all threads, exited ones included."""
    total = 0
    for pid in _tree(root):
        fields = _stat(pid)
        if fields is not None:
            # utime, stime, and cutime, cstime: the time of children that exited and were
            # waited for (a PostgreSQL backend whose connection the pool closed, say).
            total += sum(int(f) for f in fields[11:15])
    return total / _TICKS


@dataclass(frozen=True)
class Cores:
    """Cores used on average during a run: by the system under load, the database and wrk."""

    server: float
    database: float
    load: float

    def __str__(self) -> str:
        return f"{self.server:.2f} / {self.database:.2f} / {self.load:.2f}"


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # children that ran and were waited for: wrk
    return usage.ru_utime + usage.ru_stime


def measure(server: int, database: int) -> Callable[[], Cores]:
    """Start counting; the function returned gives the cores each used since."""
    wall, s, d, w = time.monotonic(), cpu_seconds(server), cpu_seconds(database), _children_seconds()

    def stop() -> Cores:
        elapsed = time.monotonic() - wall
        return Cores(
            (cpu_seconds(server) - s) / elapsed,
            (cpu_seconds(database) - d) / elapsed,
            (_children_seconds() - w) / elapsed,
        )

    return stop


def process_named(*names: str) -> int:
    """The pid of a running process with one of these command names (mariadbd, mysqld)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in names:
                return int(entry.name)
        except OSError:
            continue
    raise RuntimeError(f"no running {' or '.join(names)}")
