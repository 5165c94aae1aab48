"""bench/results.md as the full run's part followed by sections that other tools rewrite on their own.

Each such section opens with its own marker line (an HTML comment naming the tool) and runs to the
next marker or the end of the file, so one tool's rewrite keeps every other's section, in any order.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["PREFIX", "kept", "machine", "replace"]

PREFIX = "<!-- bench."  # every section marker starts with it


def machine() -> str:
    """The machine a figure was measured on, as each results section names it."""
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def kept(results: Path) -> str:
    """Every marked section of `results`, from the first marker to the end ("" without any)."""
    text = results.read_text() if results.exists() else ""
    start = _line_starting(text, PREFIX, 0)
    return text[start:].strip() if start < len(text) else ""


def replace(results: Path, marker: str, section: str) -> None:
    """Write `section` under `marker` in `results`: in place of that marker's section, or at the end."""
    text = results.read_text() if results.exists() else ""
    start = _line_starting(text, marker, 0)
    before = text[:start].rstrip()
    after = text[_line_starting(text, PREFIX, start + len(marker)) :].strip() if start < len(text) else ""
    parts = [part for part in (before, f"{marker}\n\n{section.strip()}", after) if part]
    results.write_text("\n\n".join(parts) + "\n")


def _line_starting(text: str, prefix: str, start: int) -> int:
    """Where the first line at or after `start` that begins with `prefix` begins, or len(text)."""
    at = start
    while (at := text.find(prefix, at)) >= 0:
        if at == 0 or text[at - 1] == "\n":
            return at
        at += len(prefix)
    return len(text)
