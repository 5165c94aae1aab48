"""Configuration: the seed's defaults, and one clear line for a bad value."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gateway.settings import Settings, SettingsError, load_settings
from tests import processes


def run_gateway(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "APP_", "CORS_"))}
    return processes.run_gateway(args, {**clean, **env}, cwd)


def test_defaults_are_the_seeds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.db_backend == "sqlite"
    assert str(settings.db_sqlite_path) == "gateway.db"
    assert (settings.db_pool_max, settings.db_pool_min) == (10, 2)
    assert (settings.db_idle_timeout, settings.db_connect_timeout, settings.db_acquire_timeout) == (30, 5, 10)
    assert settings.port == 3001
    assert settings.app_env == "development"
    assert settings.allowed_origins == ["http://localhost:5173", "http://127.0.0.1:5173"]
    assert Settings(_env_file=None, db_backend="postgres", db_user="u", db_name="d").database_port == 5432  # type: ignore[call-arg]
    assert Settings(_env_file=None, db_backend="mysql", db_user="u", db_name="d").database_port == 3306  # type: ignore[call-arg]


def test_values_come_from_dotenv_and_cors_origins_split_on_commas(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "DB_BACKEND=postgres\nDB_USER=club\nDB_NAME=club\nDB_PASSWORD=s3cret-Value\n"
        "CORS_ORIGINS=https://a.example, https://b.example\nDB_PORT=\n"
    )
    settings = load_settings()
    assert settings.db_backend == "postgres"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.database_port == 5432
    assert "s3cret-Value" not in repr(settings)
    assert "s3cret-Value" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DB_POOL_MAX": "lots"}, "DB_POOL_MAX: Input should be a valid integer"),
        ({"DB_POOL_MIN": "5", "DB_POOL_MAX": "2"}, "DB_POOL_MIN (5) is greater than DB_POOL_MAX (2)"),
        ({"DB_BACKEND": "oracle"}, "DB_BACKEND: Input should be 'sqlite', 'postgres' or 'mysql'"),
        ({"DB_BACKEND": "postgres", "DB_NAME": "x"}, "DB_USER is required when DB_BACKEND=postgres"),
        ({"PORT": "70000"}, "PORT: Input should be less than or equal to 65535"),
        ({"CORS_ORIGINS": "localhost:5173"}, "CORS_ORIGINS: 'localhost:5173' is not an origin"),
        ({"DB_ACQUIRE_TIMEOUT": "inf"}, "DB_ACQUIRE_TIMEOUT: Input should be a finite number"),
        ({"DB_STATEMENT_TIMEOUT": "0.0004"}, "DB_STATEMENT_TIMEOUT: Input should be greater than or equal"),
    ],
)
def test_a_bad_value_stops_start_up_with_one_line_naming_it(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    result = run_gateway(["serve"], tmp_path, **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("DB_PASSWORD='clubpw", ".env line 2: DB_PASSWORD: cannot be parsed (a quote left open?)"),
        ('export DB_POOL_MAX="5', ".env line 2: DB_POOL_MAX: cannot be parsed (a quote left open?)"),
        ("'clubpw", ".env line 2: cannot be parsed (a quote left open?)"),
    ],
)
def test_a_dotenv_line_that_cannot_be_parsed_stops_start_up_naming_the_line(
    line: str, message: str, tmp_path: Path
) -> None:
    # python-dotenv only warned and dropped the line: the gateway ran on the default instead.
    (tmp_path / ".env").write_text(f"DB_POOL_MIN=1\n{line}\nLOG_LEVEL=INFO\n")
    result = run_gateway(["check-connection"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [f"configuration error: {message}"]
    assert "clubpw" not in result.stdout + result.stderr


def test_every_unparsable_dotenv_line_is_named(tmp_path: Path) -> None:
    env_file = tmp_path / "club.env"
    env_file.write_text("DB_PASSWORD='one\nDB_BACKEND=sqlite\nDB_USER=\"two\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=env_file)
    assert str(refused.value) == (
        f"{env_file} line 1: DB_PASSWORD: cannot be parsed (a quote left open?); "
        f"{env_file} line 3: DB_USER: cannot be parsed (a quote left open?)"
    )


SECONDS = (
    "DB_SECRET_TTL",
    "DB_IDLE_TIMEOUT",
    "DB_CONNECT_TIMEOUT",
    "DB_ACQUIRE_TIMEOUT",
    "REQUEST_TIMEOUT",
    "DB_STATEMENT_TIMEOUT",
    "HTTP_KEEPALIVE_TIMEOUT",
    "LIVE_KEEPALIVE",
    "LIVE_POLL_INTERVAL",
    "AUTH_LEEWAY",
)


@pytest.mark.parametrize("name", SECONDS)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "Input should be a finite number"),
        ("nan", "Input should be a finite number"),
        # Overflowed the drivers: SQLite's busy timeout in ms, PostgreSQL's statement_timeout.
        ("1e300", "Input should be less than or equal to"),
        ("86401", "Input should be less than or equal to"),
    ],
)
def test_a_duration_is_a_finite_number_of_seconds_up_to_a_day(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, **{name.lower(): value})
    assert str(refused.value).startswith(f"{name}: {message}")


@pytest.mark.parametrize("name", [name for name in SECONDS if name != "AUTH_LEEWAY"])
def test_a_duration_under_a_millisecond_is_refused_as_it_would_mean_no_timeout(name: str) -> None:
    # PostgreSQL's statement_timeout counts milliseconds: 0.0004 s was sent as '0', no timeout at all.
    with pytest.raises(SettingsError, match=f"^{name}: Input should be greater than or equal to 0.001"):
        load_settings(_env_file=None, **{name.lower(): "0.0004"})
    assert getattr(load_settings(_env_file=None, **{name.lower(): "0.001"}), name.lower()) == 0.001


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"db_backend": "postgres", "db_read_port": 5433}, "DB_READ_PORT needs DB_READ_HOST"),
        ({"db_backend": "mysql", "db_read_host": "r"}, "DB_READ_HOST is supported with DB_BACKEND=postgres"),
    ],
)
def test_a_read_replica_needs_postgres_and_its_host(
    values: dict[str, object], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=message):
        load_settings(db_user="u", db_name="d", **values)


def test_the_read_replica_listens_on_the_primarys_port_unless_told(tmp_path: Path) -> None:
    common = {"_env_file": None, "db_backend": "postgres", "db_user": "u", "db_name": "d", "db_port": 6432}
    assert Settings(**common, db_read_host="replica").read_port == 6432  # type: ignore[arg-type]
    assert Settings(**common, db_read_host="replica", db_read_port=5433).read_port == 5433  # type: ignore[arg-type]


@pytest.mark.parametrize("port", ["0", "70000", "-5", "x"])
def test_serve_refuses_a_port_flag_that_is_no_port(port: str, tmp_path: Path) -> None:
    # 70000 was served on 4464 (the port modulo 65536) while announced as 70000; 0 served on 3001.
    result = run_gateway(["serve", f"--port={port}"], tmp_path, PORT=str(processes.free_port()))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"argument --port: '{port}' is not a port number (1-65535)" in result.stderr
    assert "GraphQL API" not in result.stderr
