"""The `gateway` command: parse arguments, call into the package, print."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from gateway.logs import configure_logging
from gateway.settings import Settings, SettingsError, load_settings

__all__ = ["main"]

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from gateway.app import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    if settings.production and not settings.db_ssl and settings.db_backend != "sqlite":
        logging.getLogger("gateway").warning("DB_SSL is off: the connection to the database is unencrypted")
    print(f"GraphQL API and GraphiQL at http://{host}:{port}/graphql", file=sys.stderr)
    web.run_app(create_app(settings), host=host, port=port, shutdown_timeout=15, print=None)
    return 0


async def _init_db(settings: Settings, demo: bool) -> str:
    from gateway.datasources import create_data_source
    from gateway.demo import load_demo

    source = create_data_source(settings)
    await source.open()
    try:
        if demo:
            loaded = await load_demo(source)
            return "migrated; demo club loaded" if loaded else "migrated; data present, demo skipped"
        return "migrated"
    finally:
        await source.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the GraphQL API (default port 3001)")
    serve.add_argument("--host", help="address to listen on (default HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default PORT or 3001)")
    init = commands.add_parser("init-db", help="create or migrate the database tables")
    init.add_argument("--demo", action="store_true", help="also load a small sample club")
    commands.add_parser("export-schema", help="print the schema in SDL")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "export-schema":
        from gateway.schema import schema_sdl

        sys.stdout.write(schema_sdl())
        return 0
    from gateway.errors import Unavailable

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings)
    try:
        if args.command == "serve":
            return _serve(settings, args)
        print(asyncio.run(_init_db(settings, args.demo)))
        return 0
    except Unavailable as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
