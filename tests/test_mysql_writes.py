"""createShootingSession on MySQL: one CALL of the stored procedure `gateway_create_session`
(migration 4), which writes what the statements one by one would, all or nothing; and the
statements one by one where the procedure cannot be called."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pymysql
import pytest

from gateway.datasources.mysql import MysqlDataSource
from gateway.datasources.records import NewSession, NewShot
from gateway.datasources.sql.migrations import load_migrations
from gateway.datasources.sql.writes import SqlWrites
from gateway.errors import NotFound
from gateway.settings import Settings
from tests.conftest import MY, mysql_admin

STARTED = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
SHOTS = (
    NewShot(104),
    NewShot(98, 1.25, -0.5),
    NewShot(0, -3.0e-7, 12.0),
    NewShot(55, -2.2250738585072014e-308, 1.7976931348623157e308),
    NewShot(109, None, 0.1),
)
TRICKY = "Zürich 🎯 'quoted' \"double\" back\\slash %s ?"


@pytest.fixture
def database(fresh_database: Callable[[str], str]) -> str:
    return fresh_database("mysql")


@pytest.fixture
async def source(make_settings: Callable[..., Settings], database: str) -> AsyncIterator[MysqlDataSource]:
    """A data source on a new database of its own (migrations applied), one connection in its pool,
    so that a write which failed leaves that same connection to the next."""
    opened = MysqlDataSource(make_settings("mysql", db_name=database, db_pool_max=1))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def rows(database: str, sql: str) -> list[tuple[Any, ...]]:
    """Run `sql` on `database` as root, committed; the rows it answers."""
    conn = pymysql.connect(database=database, autocommit=True, **MY)  # type: ignore[arg-type]
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        conn.close()


def counts(database: str) -> tuple[int, int, int]:
    """How many sessions, shots and activities the database holds."""
    tables = ("shooting_sessions", "shots", "activities")
    return tuple(rows(database, f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables)  # type: ignore[return-value]


def written(database: str, session_id: int) -> dict[str, Any]:
    """Everything a session's creation wrote, without the ids and instants the database chose."""
    session = rows(
        database,
        "SELECT user_id, group_id, started_at, location, discipline, distance_meters, notes, shot_count,"
        f" total_tenths, created_at IS NOT NULL FROM shooting_sessions WHERE id = {session_id}",
    )
    shots = rows(
        database,
        f"SELECT sequence, score_tenths, x, y FROM shots WHERE session_id = {session_id} ORDER BY sequence",
    )
    activity = rows(
        database,
        "SELECT kind, user_id, group_id, session_ref = session_id, created_at = (SELECT created_at FROM"
        f" shooting_sessions WHERE id = {session_id}) FROM activities WHERE session_id = {session_id}",
    )
    return {"session": session, "shots": shots, "activity": activity}


async def member_and_group(database: str) -> tuple[int, int]:
    """A new member and a new group: their ids."""
    users = "users (email, display_name, created_at) VALUES ('a@club.test', 'A', NOW(6))"
    rows(database, f"INSERT INTO {users}")
    rows(database, "INSERT INTO club_groups (name, created_at) VALUES ('Juniors', NOW(6))")
    [(user,)], [(group,)] = (
        rows(database, "SELECT MAX(id) FROM users"),
        rows(database, "SELECT MAX(id) FROM club_groups"),
    )
    return int(user), int(group)


def test_the_procedure_is_one_statement_of_migration_4() -> None:
    """A DELIMITER line keeps the procedure's body, whose statements end with `;`, one statement."""
    migration = next(m for m in load_migrations("gateway.datasources.mysql") if m.version == 4)
    (statement,) = migration.statements
    assert statement.startswith("CREATE PROCEDURE IF NOT EXISTS gateway_create_session(")
    assert statement.endswith("END")
    assert statement.count(";") > 5


@pytest.mark.parametrize("shots", [SHOTS, ()], ids=["four shots", "no shots"])
@pytest.mark.parametrize("in_group", [True, False], ids=["in a group", "alone"])
async def test_the_procedure_writes_what_the_statements_write(
    source: MysqlDataSource, database: str, shots: tuple[NewShot, ...], in_group: bool
) -> None:
    user, group = await member_and_group(database)
    new = NewSession(
        user_id=user,
        group_id=group if in_group else None,
        started_at=STARTED,
        discipline="10m Air Rifle",
        location=TRICKY,
        distance_meters=10,
        notes=TRICKY * 40,
        shots=shots,
    )
    called = await source.create_session(new)
    one_by_one = await SqlWrites.create_session(source, new)  # the statements, as every other backend
    assert replace(one_by_one, id=called.id) == called  # the record the mutation answers with
    assert (called.shot_count, called.total_tenths) == (len(shots), sum(s.score_tenths for s in shots))
    assert written(database, called.id) == written(database, one_by_one.id)
    session = written(database, called.id)
    assert session["session"][0][3] == TRICKY and session["session"][0][2] == STARTED.replace(tzinfo=None)
    assert [s[1:] for s in session["shots"]] == [(s.score_tenths, s.x, s.y) for s in shots]
    assert session["activity"] == [("SESSION_CREATED", user, group if in_group else None, 1, 1)]


@pytest.mark.parametrize("score", [250, 10**7], ids=["breaks the CHECK", "no SMALLINT"])
async def test_a_session_the_database_refuses_leaves_nothing_behind(
    source: MysqlDataSource, database: str, score: int
) -> None:
    """The last shot is refused by the database (inside the procedure, or by the statements for a
    score the procedure's records cannot carry): the session, its first shots and its activity are
    rolled back, and the connection it ran on serves the next write cleanly."""
    user, _ = await member_and_group(database)
    before = counts(database)
    broken = NewSession(user, None, STARTED, "10m Air Rifle", shots=(*SHOTS, NewShot(score)))
    with pytest.raises(pymysql.err.MySQLError):
        await source.create_session(broken)
    assert counts(database) == before
    assert rows(database, "SELECT COUNT(*) FROM information_schema.INNODB_TRX") == [(0,)]
    created = await source.create_session(NewSession(user, None, STARTED, "10m Air Rifle", shots=SHOTS))
    assert counts(database) == (before[0] + 1, before[1] + len(SHOTS), before[2] + 1)
    assert len(written(database, created.id)["shots"]) == len(SHOTS)


@pytest.mark.parametrize("missing", ["user", "group"])
async def test_an_unknown_user_or_group_is_named_and_nothing_is_written(
    source: MysqlDataSource, database: str, missing: str
) -> None:
    user, group = await member_and_group(database)
    before = counts(database)
    new = NewSession(
        user + 1000 if missing == "user" else user,
        group + 1000 if missing == "group" else group,
        STARTED,
        "10m Air Rifle",
        shots=SHOTS,
    )
    with pytest.raises(NotFound) as refused:
        await source.create_session(new)
    assert refused.value.kind == missing
    assert counts(database) == before


@pytest.fixture
def table_user(database: str) -> Iterator[tuple[str, str]]:
    """A user granted the tables' privileges on `database` but not EXECUTE: an application account
    whose administrator ran the migrations."""
    name, password = f"gw_app_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    mysql_admin(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'")
    mysql_admin(f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `{database}`.* TO '{name}'@'%'")
    yield name, password
    mysql_admin(f"DROP USER IF EXISTS '{name}'@'%'")


async def test_a_user_who_may_not_call_the_procedure_still_creates_sessions(
    source: MysqlDataSource,
    database: str,
    table_user: tuple[str, str],
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first write is refused EXECUTE: it and every later one run the statements instead, and
    one warning names the GRANT that would let them call it."""
    user, group = await member_and_group(database)
    name, password = table_user
    caplog.set_level(logging.WARNING, logger="gateway")
    app = MysqlDataSource(make_settings("mysql", db_name=database, db_user=name, db_password=password))
    await app.open()
    try:
        new = NewSession(user, group, STARTED, "10m Air Rifle", location=TRICKY, shots=SHOTS)
        first = await app.create_session(new)
        second = await app.create_session(new)
    finally:
        await app.close()
    assert written(database, first.id) == written(database, second.id)
    assert [s[1:] for s in written(database, first.id)["shots"]] == [
        (s.score_tenths, s.x, s.y) for s in SHOTS
    ]
    assert counts(database) == (2, 2 * len(SHOTS), 2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"GRANT EXECUTE ON PROCEDURE `{database}`.gateway_create_session TO '{name}'" in warnings[0]
    assert password not in caplog.text


async def test_a_dropped_procedure_leaves_sessions_written_statement_by_statement(
    source: MysqlDataSource, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    user, group = await member_and_group(database)
    rows(database, "DROP PROCEDURE gateway_create_session")
    caplog.set_level(logging.WARNING, logger="gateway")
    created = await source.create_session(NewSession(user, group, STARTED, "10m Air Rifle", shots=SHOTS))
    assert [s[1:] for s in written(database, created.id)["shots"]] == [
        (s.score_tenths, s.x, s.y) for s in SHOTS
    ]
    assert counts(database) == (1, len(SHOTS), 1)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "does not exist" in warning and "0004_create_session_procedure.sql" in warning


async def test_a_start_stopped_before_recording_migration_4_starts_again(
    make_settings: Callable[..., Settings],
    source: MysqlDataSource,
    database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A start that created the procedure and stopped before recording migration 4 (DDL commits at
    once): the next start creates nothing twice, and sessions go through the procedure."""
    rows(database, "DELETE FROM schema_migrations WHERE version = 4")
    user, group = await member_and_group(database)
    caplog.set_level(logging.WARNING, logger="gateway")
    again = MysqlDataSource(make_settings("mysql", db_name=database, db_pool_max=1))
    await again.open()
    try:
        created = await again.create_session(NewSession(user, group, STARTED, "10m Air Rifle", shots=SHOTS))
    finally:
        await again.close()
    assert rows(database, "SELECT version FROM schema_migrations WHERE version = 4") == [(4,)]
    assert written(database, created.id)["shots"] and counts(database) == (1, len(SHOTS), 1)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
