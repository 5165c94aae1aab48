"""Fixtures: a throwaway database per backend per test session, and a gateway client over each.

- SQLite: a file in a temporary folder, new for each test.
- PostgreSQL: a database created on this machine's server (127.0.0.1:5432), dropped at the end.
- MariaDB: a database created on this machine's server (127.0.0.1:3306), dropped at the end.
- PostgreSQL through PgBouncer in transaction mode ("postgres-pgbouncer"): the same server and
  database, reached through a PgBouncer started for the session (bench/pgbouncer.py).
With CI=true an unreachable server fails the run instead of skipping its tests.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg
import pymysql
import pytest
from aiohttp.test_utils import TestClient

from bench.pgbouncer import pgbouncer
from gateway.datasources.protocol import DataSource
from gateway.datasources.sql.source import SqlDataSource
from gateway.doors.aiohttp_app import create_app
from gateway.doors.app_keys import EXECUTOR
from gateway.settings import Settings
from tests.tls_servers import Certificates, TlsServer, mariadb_servers, postgres_servers

# PostgreSQL behind a transaction pooler: the whole backend-parametrized suite runs through it too.
PGBOUNCER = "postgres-pgbouncer"
BACKENDS = ("sqlite", "postgres", PGBOUNCER, "mysql")
# The same backends reached over verified TLS, on the throwaway servers of tests/tls_servers.py.
TLS_VARIANTS = ("postgres+tls", "mysql+tls")
PG = {"host": "127.0.0.1", "port": 5432, "user": os.environ.get("TEST_PG_USER", "postgres")}
MY = {"host": "127.0.0.1", "port": 3306, "user": os.environ.get("TEST_MYSQL_USER", "root")}
TABLES = ("activities", "shots", "memberships", "shooting_sessions", "club_groups", "users")


def pytest_collection_finish() -> None:
    # Modules and schemas live for the whole session: keep them out of every collection below.
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """Collect cycles as each test ends, so a socket it leaked fails that test, not a later one."""
    yield
    gc.collect()


def engine(backend: str) -> str:
    """The DB_BACKEND a test backend runs: `postgres` for postgres-pgbouncer and postgres+tls."""
    return "postgres" if backend.startswith("postgres") else backend.removesuffix("+tls")


def unreachable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; database tests may not skip in CI")
    pytest.skip(message)


def pg_admin(sql: str) -> None:
    """Run one statement as the PostgreSQL superuser, from any thread or event loop."""

    async def run() -> None:
        conn = await asyncpg.connect(database="postgres", ssl=False, timeout=5, **PG)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # A thread of its own, because fixtures may call this while an event loop runs.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session."""
    name = f"gw_test_{uuid.uuid4().hex[:10]}"
    try:
        pg_admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        unreachable("PostgreSQL at 127.0.0.1:5432", exc)
    yield name
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mysql_database() -> Iterator[str]:
    """A fresh MariaDB/MySQL database for this test session."""
    name = f"gw_test_{uuid.uuid4().hex[:10]}"
    try:
        mysql_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    except pymysql.err.MySQLError as exc:
        unreachable("MariaDB at 127.0.0.1:3306", exc)
    yield name
    mysql_admin(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def fresh_database() -> Iterator[Callable[[str], str]]:
    """Creates empty databases on a server backend ("postgres" or "mysql"); drops them after."""
    made: list[tuple[str, str]] = []

    def create(backend: str) -> str:
        name = f"gw_fresh_{uuid.uuid4().hex[:8]}"
        backend = engine(backend)
        if backend == "postgres":
            pg_admin(f'CREATE DATABASE "{name}"')
        else:
            mysql_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        made.append((backend, name))
        return name

    yield create
    for backend, name in made:
        if backend == "postgres":
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            mysql_admin(f"DROP DATABASE IF EXISTS `{name}`")


def mysql_admin(sql: str) -> None:
    """Run one statement as MariaDB's root."""
    conn = pymysql.connect(connect_timeout=5, **MY)  # type: ignore[arg-type]
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
    finally:
        conn.close()


def server_env(backend: str, database: str | None, **extra: str) -> dict[str, str]:
    """Environment for a gateway process on `backend`, free of the caller's DB_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "APP_", "CORS_", "PORT"))}
    env["DB_BACKEND"] = backend
    if backend == "postgres":
        env.update(DB_HOST=PG["host"], DB_PORT=str(PG["port"]), DB_USER=PG["user"], DB_NAME=database or "")
    elif backend == "mysql":
        env.update(DB_HOST=MY["host"], DB_PORT=str(MY["port"]), DB_USER=MY["user"], DB_NAME=database or "")
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def pgbouncer_port() -> Iterator[int]:
    """PgBouncer in transaction mode in front of 127.0.0.1:5432, started on first use."""
    with ExitStack() as stack:
        try:
            port = stack.enter_context(pgbouncer(PG["host"], PG["port"], users=(PG["user"],)))
        except (OSError, RuntimeError) as exc:
            unreachable("PgBouncer", exc)
        yield port


@pytest.fixture
def pgbouncer_env(pgbouncer_port: int) -> dict[str, str]:
    """What a gateway on `postgres` changes to go through the session's PgBouncer."""
    return {"DB_PORT": str(pgbouncer_port), "DB_STATEMENT_CACHE": "false"}


@pytest.fixture
def make_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a backend, ignoring any .env in the working directory."""

    def make(backend: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"db_backend": backend, "db_pool_min": 1}
        if backend in TLS_VARIANTS:
            server: TlsServer = request.getfixturevalue("tls_server")(backend.removesuffix("+tls"))
            values.update({key.lower(): value for key, value in server.env().items()})
        elif backend == "sqlite":
            values["db_sqlite_path"] = tmp_path / "gateway.db"
        elif backend in ("postgres", PGBOUNCER):
            values.update(
                db_backend="postgres",
                db_host=PG["host"],
                db_port=PG["port"],
                db_user=PG["user"],
                db_name=request.getfixturevalue("pg_database"),
            )
            if backend == PGBOUNCER:
                values.update(db_port=request.getfixturevalue("pgbouncer_port"), db_statement_cache=False)
        else:
            values.update(
                db_host=MY["host"],
                db_port=MY["port"],
                db_user=MY["user"],
                db_name=request.getfixturevalue("mysql_database"),
            )
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


async def empty_tables(source: DataSource | None) -> None:
    """Delete every row, children first, so each test starts from an empty club."""
    async with sql_source(source).transaction() as conn:
        for table in TABLES:
            await conn.execute(f"DELETE FROM {table}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test taking `backend` runs on each backend; modules with OVER_TLS_TOO also over TLS."""
    if "backend" not in metafunc.fixturenames:
        return
    if any("backend" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize")):
        return
    over_tls = TLS_VARIANTS if getattr(metafunc.module, "OVER_TLS_TOO", False) else ()
    metafunc.parametrize("backend", BACKENDS + over_tls)


@pytest.fixture
async def client(
    backend: str, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> AsyncIterator[TestClient]:
    """A running gateway on `backend`, its database emptied."""
    app = create_app(make_settings(backend))
    test_client: TestClient = await aiohttp_client(app)
    await empty_tables(app[EXECUTOR].data_source)
    yield test_client


@pytest.fixture
def source(client: TestClient) -> SqlDataSource:
    """The data source of the running `client`, to inspect what was written."""
    return sql_source(client.app[EXECUTOR].data_source)


async def count_rows(source: DataSource | None, table: str) -> int:
    """How many rows `table` holds, read straight from the database."""
    async with sql_source(source).connection() as conn:
        rows = await conn.fetch(f"SELECT COUNT(*) AS n FROM {table}")
    return int(rows[0]["n"])


@pytest.fixture(scope="session")
def tls_certs() -> Iterator[Certificates]:
    folder = Path(tempfile.mkdtemp(prefix="gw-certs-"))
    yield Certificates(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def tls_postgres(tls_certs: Certificates) -> Iterator[dict[str, TlsServer]]:
    """PostgreSQL servers that speak only TLS: "valid" and "expired" certificates."""
    with postgres_servers(tls_certs) as servers:
        yield servers


@pytest.fixture(scope="session")
def tls_mysql(tls_certs: Certificates) -> Iterator[dict[str, TlsServer]]:
    """MariaDB servers that require TLS: "valid" and "expired" certificates."""
    with mariadb_servers(tls_certs) as servers:
        yield servers


@pytest.fixture
def tls_server(request: pytest.FixtureRequest) -> Callable[[str, str], TlsServer]:
    """`tls_server(backend, "valid" | "expired")`, starting that backend's servers on first use."""

    def get(backend: str, which: str = "valid") -> TlsServer:
        servers: dict[str, TlsServer] = request.getfixturevalue(f"tls_{backend}")
        return servers[which]

    return get


def sql_source(source: DataSource | None) -> SqlDataSource:
    """`source` as the SQL data source every backend is, for tests that run SQL or count statements."""
    if not isinstance(source, SqlDataSource):
        raise TypeError(f"not an SQL data source: {source!r}")
    return source
