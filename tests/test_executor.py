"""The executor's own promises, beside the doors: what a passing database error does to a compiled plan."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.settings import Settings
from tests.conftest import PG
from tests.graphql_client import graphql

USERS = "{ users { edges { node { displayName } } } }"


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_passing_database_error_leaves_the_query_compiled(
    backend: str, make_settings: Callable[..., Settings], aiohttp_client: Any, pg_database: str
) -> None:
    """A lock timeout (or a deadlock) fails one request; the next one is compiled again.

    Only the database refusing the statement itself (its text, its size) may send an operation
    to the interpreted path for good.
    """
    admin = await asyncpg.connect(database=pg_database, ssl=False, **PG)
    try:
        await admin.execute(f'ALTER DATABASE "{pg_database}" SET lock_timeout = 200')
        app = create_app(make_settings(backend, db_pool_min=0))
        client = await aiohttp_client(app)
        fast = app[EXECUTOR].fast
        assert fast is not None
        assert "errors" not in await graphql(client, USERS)
        assert fast.answered == 1

        async with admin.transaction():
            await admin.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            locked = await graphql(client, USERS)
        assert locked["data"] is None  # the interpreted retry met the same lock
        assert fast.answered == 1

        assert "errors" not in await graphql(client, USERS)
        assert fast.answered == 2, "the plan was dropped for a passing error"
    finally:
        # The database is shared by the session's tests: leave no setting behind.
        await admin.execute(f'ALTER DATABASE "{pg_database}" RESET lock_timeout')
        await admin.close()


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_statement_the_database_refuses_is_interpreted_from_then_on(
    backend: str, make_settings: Callable[..., Settings], aiohttp_client: Any, pg_database: str
) -> None:
    admin = await asyncpg.connect(database=pg_database, ssl=False, **PG)
    try:
        app = create_app(make_settings(backend))
        client = await aiohttp_client(app)
        fast = app[EXECUTOR].fast
        assert fast is not None
        # A function the compiled SQL calls, taken away: the database refuses the statement's text.
        await admin.execute("ALTER TABLE users RENAME COLUMN display_name TO shown_name")
        assert (await graphql(client, USERS))["data"] is None
        await admin.execute("ALTER TABLE users RENAME COLUMN shown_name TO display_name")
        assert "errors" not in await graphql(client, USERS)
        assert fast.answered == 0  # refused once, interpreted since
    finally:
        await admin.close()
