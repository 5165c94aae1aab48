"""The `gateway` command: parse arguments, call into the package, print."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.datasources.registry import BACKENDS, backend_names
from gateway.logs import configure_logging
from gateway.settings import Settings, SettingsError, load_settings

__all__ = ["main"]

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3
EXIT_CA = 10  # as gateway.commands.check_connection.Failure.CA


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _port(text: str) -> int:
    # Past 65535 the event loop would listen on the port modulo 65536; 0 read as "unset".
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.auth.tokens import warn_if_open
    from gateway.connect.tls import warn_if_unencrypted
    from gateway.doors.workers import PoolSplitError, serve, split_pool

    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    try:
        split_pool(settings, args.workers)
    except PoolSplitError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    warn_if_unencrypted(settings)
    warn_if_open(settings)
    served = "GraphQL API and GraphiQL" if settings.graphiql_enabled else "GraphQL API"
    print(f"{served} at http://{host}:{port}/graphql", file=sys.stderr)
    return serve(settings, host, port, args.workers)


async def _init_db(settings: Settings, demo: bool) -> str:
    from gateway.commands.demo import load_demo
    from gateway.datasources import create_data_source

    source = create_data_source(settings)
    await source.open()
    try:
        if demo:
            loaded = await load_demo(source)
            return "migrated; demo club loaded" if loaded else "migrated; data present, demo skipped"
        return "migrated"
    finally:
        await source.close()


def _check_connection(settings: Settings, as_json: bool) -> int:
    from gateway.commands.check_connection import check_connection, render

    report = asyncio.run(check_connection(settings))
    print(json.dumps(report.as_json()) if as_json else render(report))
    return report.exit_code


def _encode_cert(path: Path) -> int:
    from gateway.commands.encode_cert import encode_cert
    from gateway.connect.tls import TlsError

    try:
        encoded = encode_cert(path)
    except TlsError as exc:
        print(f"encode-cert: {exc}", file=sys.stderr)
        return EXIT_CA
    first = encoded.certificates[0]
    print(encoded.value)
    print(
        f"{path}: {len(encoded.certificates)} certificate(s), {first.subject!r}, expires "
        f"{first.not_after:%Y-%m-%d}\n"
        f"written to {encoded.written_to} (git-ignored)\n"
        "On Vercel: Project > Settings > Environment Variables, add DB_CA_CERT with the line above,\n"
        f"or run: vercel env add DB_CA_CERT production < {encoded.written_to}",
        file=sys.stderr,
    )
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.auth.issuing import TokenIssueError, issue_token, parse_ttl

    try:
        ttl = parse_ttl(args.ttl)
        token = issue_token(
            settings, subject=args.sub, email=args.email, name=args.name, roles=args.role, ttl=ttl
        )
    except TokenIssueError as exc:
        print(f"token: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(token)
    print(f"valid for {ttl}; send it as the header  Authorization: Bearer <token>", file=sys.stderr)
    if settings.auth_disabled:
        print("note: AUTH_DISABLED=true, so the gateway does not read tokens", file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the GraphQL API (default port 3001)")
    serve.add_argument("--host", help="address to listen on (default HOST or 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to listen on (default PORT or 3001)")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="processes sharing the port (SO_REUSEPORT), DB_POOL_MAX split between them (default 1)",
    )
    init = commands.add_parser("init-db", help="create or migrate the database tables")
    init.add_argument("--demo", action="store_true", help="also load a small sample club")
    commands.add_parser("export-schema", help="print the schema in SDL")
    check = commands.add_parser("check-connection", help="diagnose the database connection, step by step")
    check.add_argument("--json", action="store_true", help="print the report as one JSON object")
    encode = commands.add_parser("encode-cert", help="base64 a CA certificate for DB_CA_CERT")
    encode.add_argument("path", type=Path, help="the CA certificate PEM file, e.g. certs/ca.pem")
    token = commands.add_parser("token", help="print a token signed with AUTH_JWT_SECRET, to try the API")
    token.add_argument("--sub", required=True, help="the subject: who the token signs in")
    token.add_argument("--email", help="the email claim")
    token.add_argument("--name", help="the name claim")
    token.add_argument("--role", action="append", default=[], help="a role, e.g. admin (repeat for several)")
    token.add_argument("--ttl", default="1h", help="lifetime like 30m, 1h or 2d (default 1h)")
    setup = commands.add_parser("setup", help="write .env interactively (or from flags) and check it")
    setup.add_argument("--env-file", default=".env", help="file to write (default .env)")
    setup.add_argument("--non-interactive", action="store_true", help="take everything from flags")
    setup.add_argument("--force", action="store_true", help="overwrite an existing file without asking")
    setup.add_argument(
        "--backend",
        choices=backend_names(),
        default="postgres",
        help=", ".join(f"{b.name} ({b.label})" for b in BACKENDS.values()) + " (default postgres)",
    )
    setup.add_argument("--host", default="localhost")
    setup.add_argument("--port", type=int)
    setup.add_argument("--user")
    setup.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    setup.add_argument("--database")
    setup.add_argument("--ssl", action=argparse.BooleanOptionalAction, default=True, help="TLS (default on)")
    setup.add_argument("--ca-cert", type=Path, help="CA certificate file, e.g. certs/ca.pem")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "encode-cert":
        return _encode_cert(args.path)
    if args.command == "setup":
        from gateway.commands.setup import run_setup

        return run_setup(args)
    if args.command == "export-schema":
        from gateway.schema import schema_sdl

        sys.stdout.write(schema_sdl())
        return 0
    from gateway.connect.tls import TlsError
    from gateway.errors import Unavailable

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings)
    if args.command == "check-connection":
        return _check_connection(settings, args.json)
    if args.command == "token":
        return _token(settings, args)
    try:
        if args.command == "serve":
            return _serve(settings, args)
        print(asyncio.run(_init_db(settings, args.demo)))
        return 0
    except TlsError as exc:
        print(f"TLS to the database refused: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except Unavailable as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
