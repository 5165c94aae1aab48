"""`gateway setup` writes .env so that the settings loader reads back exactly what was answered."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.commands.setup import Answers, env_file_text, write_env_file
from gateway.datasources.registry import BACKENDS
from gateway.settings import Settings, load_settings
from tests.conftest import PG
from tests.processes import run_gateway

HOST, PORT, USER = str(PG["host"]), str(PG["port"]), str(PG["user"])

# What python-dotenv treats specially: quotes, escapes, ${NAME} and ${NAME:-default}, comments,
# and line breaks (the file is read with universal newlines: a raw \r comes back as \n).
_QUOTING = ["'", '"', "\\", "$", "{", "}", "${", ":-", "#", " ", "=", "`", "\\'", "\\\\", '\\"', "\\r", "\\n"]
_SPECIAL = st.sampled_from([*_QUOTING, "\r", "\n", "\r\n"])
_PRINTABLE = st.characters(codec="utf-8").filter(str.isprintable)
VALUES = st.lists(st.one_of(_SPECIAL, _PRINTABLE), max_size=24).map("".join)
NAMES = VALUES.filter(bool)  # DB_USER and DB_NAME may not be empty

ANSWERS = st.builds(
    Answers,
    backend=st.sampled_from(list(BACKENDS)),
    host=NAMES,
    port=st.none() | st.integers(1, 65535),
    user=NAMES,
    password=VALUES,
    database=NAMES,
    ssl=st.booleans(),
    ca_path=st.none() | NAMES.map(Path),
    sqlite_path=NAMES.map(Path),
)


@pytest.fixture
def no_db_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader prefers real environment variables to .env: keep the caller's out of the way."""
    for name in list(os.environ):
        if name.startswith(("DB_", "AWS_")):
            monkeypatch.delenv(name)


def read_back(a: Answers) -> Settings:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ".env"
        return write_env_file(path, env_file_text(a), lambda new: load_settings(_env_file=new))


def assert_reads_back(a: Answers, s: Settings) -> None:
    assert s.db_backend == a.backend
    if BACKENDS[a.backend].default_port is None:
        assert s.db_sqlite_path == a.sqlite_path
        return
    assert s.db_host == a.host
    assert s.database_port == (a.port or BACKENDS[a.backend].default_port)
    assert s.db_user == a.user
    assert s.db_password.get_secret_value() == a.password
    assert s.db_name == a.database
    assert s.db_ssl is a.ssl
    assert s.db_ca_cert_path == (a.ca_path if a.ssl else None)


def test_every_value_setup_writes_is_read_back_unchanged(no_db_environment: None) -> None:
    @settings(max_examples=400, deadline=None, database=None)
    @given(a=ANSWERS)
    @example(a=Answers(password="a'b${HOME}c", user="u", database="d"))
    @example(a=Answers(password="x${HOME}y ${A:-b} $${C} ${", user="u", database="d"))
    @example(a=Answers(password=" # lead, trail \\", user="'u'", database='"d"'))
    @example(a=Answers(backend="sqlite", sqlite_path=Path("a'b ${HOME}/c.db")))
    @example(a=Answers(password="a\rb\r\nc\n\\r", user="u", database="d"))
    def round_trip(a: Answers) -> None:
        assert_reads_back(a, read_back(a))

    round_trip()


PASSWORDS = ["a'b${HOME}c", "  both ends  ", "ends in a backslash\\", "#$'\"=${X:-y}\\'", "carriage\rreturn"]


@pytest.mark.parametrize("line_break", ["\n", "\r\n"])
@pytest.mark.parametrize("password", PASSWORDS)
def test_gateway_setup_from_flags_writes_the_password_byte_for_byte(
    password: str, line_break: str, pg_database: str, no_db_environment: None, tmp_path: Path
) -> None:
    flags = ["--non-interactive", "--backend", "postgres", "--host", HOST, "--port", PORT, "--user", USER]
    flags += ["--database", pg_database, "--no-ssl", "--password-stdin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
    result = run_gateway(["setup", *flags], env, tmp_path, stdin=password + line_break)
    # The machine's PostgreSQL trusts loopback: the check passes whatever the password.
    assert result.returncode == 0, result.stdout + result.stderr
    assert password not in result.stdout + result.stderr
    expected = Answers(host=HOST, port=int(PORT), user=USER, password=password, ssl=False)
    expected.database = pg_database
    assert_reads_back(expected, load_settings(_env_file=tmp_path / ".env"))


@pytest.mark.parametrize("port", ["0", "70000", "-5"])
def test_setup_from_flags_refuses_a_port_and_keeps_a_working_env(
    port: str, no_db_environment: None, tmp_path: Path
) -> None:
    working = "DB_BACKEND=sqlite\n"
    (tmp_path / ".env").write_text(working)
    flags = ["--non-interactive", "--force", "--backend", "postgres", "--port", port, "--user", USER]
    flags += ["--database", "club", "--no-ssl"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
    result = run_gateway(["setup", *flags], env, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"'{port}' is not a port number (1-65535)" in result.stderr
    assert (tmp_path / ".env").read_text() == working  # not replaced by a file the gateway cannot load
    assert [p.name for p in tmp_path.iterdir()] == [".env"]  # no temporary file left


def test_setup_keeps_the_env_it_would_replace_when_the_new_one_cannot_be_loaded(
    no_db_environment: None, tmp_path: Path
) -> None:
    # What setup writes is loaded before it replaces anything: here DB_SSL_MODE=verify-ca from the
    # environment, with no CA among the answers, is a configuration the gateway refuses.
    working = "DB_BACKEND=sqlite\n"
    (tmp_path / ".env").write_text(working)
    flags = ["--non-interactive", "--force", "--backend", "postgres", "--user", USER, "--database", "club"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")} | {"DB_SSL_MODE": "verify-ca"}
    result = run_gateway(["setup", *flags], env, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "configuration error: " in result.stderr and "(.env left unchanged)" in result.stderr
    assert (tmp_path / ".env").read_text() == working
    assert [p.name for p in tmp_path.iterdir()] == [".env"]


@pytest.mark.parametrize("line_break", ["\n", "\r\n"])
def test_the_wizard_keeps_the_spaces_around_a_piped_password(
    line_break: str, pg_database: str, no_db_environment: None, tmp_path: Path
) -> None:
    # A \r\n line (piped from a file saved on Windows) ends at its \r: the password is what precedes it.
    password = "  spaced ${HOME}  "
    answers = ["postgres", HOST, PORT, USER, password, pg_database, "n"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
    result = run_gateway(["setup"], env, tmp_path, stdin=line_break.join(answers) + line_break)
    assert result.returncode == 0, result.stdout + result.stderr
    loaded = load_settings(_env_file=tmp_path / ".env")
    assert loaded.db_password.get_secret_value() == password
