"""The table of backends: every name in it is accepted, opened, checked and offered by setup; no other is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.datasources.registry import BACKENDS, Backend
from gateway.settings import SettingsError, load_settings
from tests.conftest import server_env
from tests.processes import ROOT, run_gateway

DATABASE_FIXTURES = {"postgres": "pg_database", "mysql": "mysql_database"}


def run_gateway_in(cwd: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_gateway(args, {**env, "PYTHONPATH": str(ROOT)}, cwd)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_check_connection_runs_each_backends_own_probe(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fixture = DATABASE_FIXTURES.get(backend)
    database = request.getfixturevalue(fixture) if fixture else None
    env = server_env(backend, database, DB_SSL="false", DB_SQLITE_PATH=str(tmp_path / "check.db"))
    result = run_gateway_in(tmp_path, ["check-connection", "--json"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["backend"] == backend and report["can_create_tables"] is True
    # Each probe reads the version its own way: SQLite's library, PostgreSQL's and MariaDB's servers.
    version = report["server_version"]
    assert {"sqlite": "." in version, "postgres": "MariaDB" not in version, "mysql": "MariaDB" in version}[
        backend
    ], version


@pytest.mark.parametrize("backend", [b for b in BACKENDS.values() if b.default_port is not None])
def test_a_server_backend_without_db_port_uses_its_standard_port(backend: Backend) -> None:
    settings = load_settings(_env_file=None, db_backend=backend.name, db_user="u", db_name="d")
    assert settings.database_port == backend.default_port


def test_an_unknown_backend_is_refused_with_every_valid_name() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, db_backend="oracle")
    assert str(caught.value) == "DB_BACKEND: Input should be 'sqlite', 'postgres' or 'mysql' (got 'oracle')"


def test_setup_offers_exactly_the_backends_of_the_table(tmp_path: Path) -> None:
    result = run_gateway_in(tmp_path, ["setup", "--non-interactive", "--backend", "oracle"], {})
    assert result.returncode == 2
    offered = result.stderr.partition("invalid choice: 'oracle' (choose from ")[2].splitlines()[0]
    assert offered.replace("'", "") == ", ".join(BACKENDS) + ")"
    assert not (tmp_path / ".env").exists()


def test_a_sqlite_gateway_never_loads_a_server_driver(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from gateway.datasources import create_data_source\n"
        "from gateway.settings import load_settings\n"
        f"create_data_source(load_settings(_env_file=None, db_sqlite_path={str(tmp_path / 'g.db')!r}))\n"
        "print(sorted(m for m in ('asyncpg', 'aiomysql', 'pymysql') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
