"""Log format and level, one set-up for every entry point (CLI, Vercel); no level prints a secret."""

from __future__ import annotations

import logging
import sys

from gateway.settings import Settings

__all__ = ["QUIET_LOGGERS", "configure_logging"]

# Libraries whose DEBUG (or INFO) lines carry what must never reach a log: botocore prints request
# and response bodies (the secret's JSON), headers with the session token, and presigned IAM
# tokens; aiosqlite prints SQL parameters (e-mails); urllib3 and s3transfer print request lines.
# They stay at WARNING whatever LOG_LEVEL says.
QUIET_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "aiosqlite", "aiomysql", "asyncpg")


def configure_logging(settings: Settings) -> None:
    """Log to stderr at LOG_LEVEL; hosts such as Vercel collect stderr."""
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    level = logging.getLevelName(settings.log_level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
    logging.getLogger("gateway").debug(
        "LOG_LEVEL=DEBUG; %s log at WARNING only (below, they print secrets)", ", ".join(QUIET_LOGGERS)
    )
