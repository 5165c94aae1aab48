"""Rewrites the shared queries' `?` placeholders into a driver's own style, once per query text."""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

__all__ = ["format_style", "numbered_style"]

_MARK = re.compile(r"\?")


@lru_cache(maxsize=2048)
def numbered_style(sql: str) -> str:
    """`?` → `$1`, `$2`… (asyncpg)."""
    counter = itertools.count(1)
    return _MARK.sub(lambda _: f"${next(counter)}", sql)


@lru_cache(maxsize=2048)
def format_style(sql: str) -> str:
    """`?` → `%s` (PyMySQL), with literal `%` escaped."""
    return _MARK.sub("%s", sql.replace("%", "%%"))
