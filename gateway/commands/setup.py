"""setup: ask for the connection settings (or take them from flags), write .env, check the connection."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

from gateway.commands.check_connection import check_connection, render
from gateway.connect.tls import TlsError, parse_ca_pem
from gateway.datasources.registry import BACKENDS, backend_names
from gateway.settings import SettingsError, load_settings

__all__ = ["Answers", "SetupError", "ask", "env_file_text", "run_setup", "write_env_file"]

T = TypeVar("T")


class SetupError(Exception):
    """An answer or flag that cannot be used; the message says which and why."""


@dataclass
class Answers:
    backend: str = "postgres"
    host: str = "localhost"
    port: int | None = None
    user: str = ""
    password: str = ""
    database: str = ""
    ssl: bool = True
    ca_path: Path | None = None
    sqlite_path: Path = Path("gateway.db")


class _Prompter:
    def __init__(self, stdin: TextIO, stdout: TextIO) -> None:
        self._in, self._out = stdin, stdout

    def _read(self, question: str, prompt: str) -> str:
        self._out.write(prompt)
        self._out.flush()
        answer = self._in.readline()
        if not answer:
            raise SetupError(f"no answer to {question!r} (standard input ended)")
        return _without_line_break(answer)

    def line(self, question: str, default: str = "") -> str:
        return self._read(question, f"{question}{f' [{default}]' if default else ''}: ").strip() or default

    def secret(self, question: str) -> str:
        if self._in.isatty():
            return getpass.getpass(f"{question}: ", stream=self._out)
        # Spaces around a password are part of it: getpass keeps them, and so does this.
        return self._read(question, f"{question}: ")

    def choice(self, question: str, options: tuple[str, ...], default: str) -> str:
        while (answer := self.line(f"{question} ({'/'.join(options)})", default)) not in options:
            self._out.write(f"  please answer one of {', '.join(options)}\n")
        return answer

    def yes(self, question: str, default: bool) -> bool:
        while True:
            answer = self.line(f"{question} (y/n)", "y" if default else "n").lower()
            if answer in ("y", "yes", "n", "no"):
                return answer.startswith("y")
            self._out.write("  please answer y or n\n")

    def until_valid(self, question: str, default: str, check: Callable[[str], None]) -> str:
        while True:
            answer = self.line(question, default)
            try:
                check(answer)
                return answer
            except SetupError as exc:
                self._out.write(f"  {exc}\n")


def _without_line_break(line: str) -> str:
    """`line` without its line break: \\n, or \\r\\n from a file saved on Windows."""
    return line.removesuffix("\n").removesuffix("\r")


def check_ca_file(path: str) -> None:
    """SetupError unless `path` is a readable PEM certificate."""
    try:
        parse_ca_pem(Path(path).read_bytes(), path)
    except OSError as exc:
        raise SetupError(f"{path}: {exc.strerror}; download the CA certificate from your provider") from None
    except TlsError as exc:
        raise SetupError(str(exc)) from None


def ask(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> Answers:
    """The wizard's questions, in order, with sensible defaults."""
    p = _Prompter(stdin, stdout)
    a = Answers(backend=p.choice("database", backend_names(), "postgres"))
    if _default_port(a.backend) is None:
        a.sqlite_path = Path(p.line("SQLite file", str(a.sqlite_path)))
        return a
    a.host = p.line("host", a.host)
    a.port = int(p.until_valid("port", str(_default_port(a.backend)), _check_port))
    a.user = p.line("user")
    a.password = p.secret("password (not shown)")
    a.database = p.line("database")
    a.ssl = p.yes("encrypt and verify the connection with TLS", True)
    if a.ssl:
        a.ca_path = Path(p.until_valid("CA certificate file", "certs/ca.pem", check_ca_file))
    return a


def _default_port(backend: str) -> int | None:
    """The backend's standard port; None for one that is a file, not a server."""
    return BACKENDS[backend].default_port


def _check_port(value: str) -> None:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise SetupError(f"{value!r} is not a port number (1-65535)")


def _quote(value: str) -> str:
    """`value` as a .env value that python-dotenv (so the settings loader) reads back unchanged."""
    # python-dotenv expands ${NAME} in every value, quoted too, and has no escape for `$`:
    # `${:-$}` is the variable with the empty name, which never exists, so it reads as its default `$`.
    literal = value.replace("${", "${:-$}{")
    if literal.endswith("\\"):
        # Before python-dotenv 1.2.3 a backslash right before the closing quote escapes that quote.
        literal = literal[:-1] + "${:-\\}"
    # Double quotes, where python-dotenv decodes escapes (\\ \" \r \n among them): a raw \r would
    # come back as \n, the file being read with universal newlines, so line breaks are escaped.
    for char, escape in (("\\", "\\\\"), ('"', '\\"'), ("\r", "\\r"), ("\n", "\\n")):
        literal = literal.replace(char, escape)
    return f'"{literal}"'


def env_file_text(a: Answers) -> str:
    """The .env content for these answers."""
    lines = ["# Written by `gateway setup`; keep it out of version control.", f"DB_BACKEND={a.backend}"]
    if _default_port(a.backend) is None:
        lines.append(f"DB_SQLITE_PATH={_quote(str(a.sqlite_path))}")
    else:
        lines += [
            f"DB_HOST={_quote(a.host)}",
            f"DB_PORT={a.port or _default_port(a.backend)}",
            f"DB_USER={_quote(a.user)}",
            f"DB_PASSWORD={_quote(a.password)}",
            f"DB_NAME={_quote(a.database)}",
            f"DB_SSL={'true' if a.ssl else 'false'}",
        ]
        if a.ssl and a.ca_path is not None:
            lines.append(f"DB_CA_CERT_PATH={_quote(str(a.ca_path))}")
    return "\n".join(lines) + "\n"


def write_env_file(path: Path, text: str, load: Callable[[Path], T]) -> T:
    """Replace `path` atomically with mode 0600, once `load` has read the new file (what it
    returns): never half-written, never readable by others, never replaced by a file that `load`
    refuses (the error propagates, `path` unchanged)."""
    fd, temporary = tempfile.mkstemp(prefix=".env.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o600)
        loaded = load(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return loaded


def _from_flags(args: argparse.Namespace) -> Answers:
    answers = Answers(
        backend=args.backend,
        host=args.host,
        port=args.port,
        user=args.user or "",
        password=_without_line_break(sys.stdin.readline()) if args.password_stdin else "",
        database=args.database or "",
        ssl=args.ssl,
        ca_path=args.ca_cert,
    )
    if answers.port is not None:
        _check_port(str(answers.port))  # as the wizard does: 0 or 70000 is no port
    if _default_port(answers.backend) is not None and not (answers.user and answers.database):
        servers = [name for name, b in BACKENDS.items() if b.default_port is not None]
        raise SetupError(f"--user and --database are required for {' and '.join(servers)}")
    if answers.ssl and answers.ca_path is not None:
        check_ca_file(str(answers.ca_path))
    return answers


def run_setup(args: argparse.Namespace) -> int:
    """`gateway setup`: the wizard (or flags), then .env, then check-connection's verdict as exit code."""
    env_path = Path(args.env_file)
    try:
        if args.non_interactive:
            if env_path.exists() and not args.force:
                raise SetupError(f"{env_path} exists; pass --force to overwrite it")
            answers = _from_flags(args)
        else:
            prompter = _Prompter(sys.stdin, sys.stdout)
            if (
                env_path.exists()
                and not args.force
                and not prompter.yes(f"{env_path} exists; overwrite it", False)
            ):
                print(f"{env_path} left unchanged")
                return 1
            answers = ask()
    except SetupError as exc:
        print(f"setup: {exc}", file=sys.stderr)
        return 2
    try:
        settings = write_env_file(env_path, env_file_text(answers), lambda new: load_settings(_env_file=new))
    except SettingsError as exc:
        print(f"configuration error: {exc} ({env_path} left unchanged)", file=sys.stderr)
        return 2
    print(f"wrote {env_path} (mode 0600); checking the connection")
    report = asyncio.run(check_connection(settings))
    print(render(report))
    return report.exit_code
