"""A data source's own lifecycle: a closed one opens again and holds nothing while closed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gateway.datasources.records import Page
from gateway.datasources.sqlite import SqliteDataSource
from gateway.settings import Settings


def files_open_at(path: Path) -> list[str]:
    """What this process holds open of the SQLite database at `path` (the file, its -wal, its -shm)."""
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed since the listing
        if target.startswith(str(path)):
            held.append(target)
    return held


async def test_a_closed_sqlite_source_opens_again_and_holds_no_file_while_closed(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings("sqlite", db_pool_max=3)
    source = SqliteDataSource(settings)
    await source.open()
    assert await source.list_users(Page(first=1)) == []
    await source.close()
    assert files_open_at(settings.db_sqlite_path) == []

    await source.open()
    try:
        user = await source.create_user("ada@example.com", "Ada")
        assert await source.users_by_ids([user.id]) == [user]
    finally:
        await source.close()
    assert files_open_at(settings.db_sqlite_path) == []


async def test_a_connection_in_use_while_sqlite_closes_is_not_handed_out_after_the_next_open(
    make_settings: Callable[..., Settings],
) -> None:
    source = SqliteDataSource(make_settings("sqlite"))
    await source.open()
    async with source.connection() as conn:
        await conn.fetch("SELECT 1 AS one")
        await source.close()
    await source.open()
    try:
        assert await source.list_users(Page(first=1)) == []
    finally:
        await source.close()
