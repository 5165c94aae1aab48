"""Log format and level, one set-up for every entry point (CLI, Vercel); no level prints a secret.

LOG_FORMAT=json writes each record as one JSON object per line: time, level, logger, message, the
current request's id, and the fields a line carries (the access log's status, duration, operation).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from gateway.settings import Settings
from gateway.telemetry.exchange import CURRENT

__all__ = ["QUIET_LOGGERS", "JsonLines", "configure_logging"]

# Libraries whose DEBUG (or INFO) lines carry what must never reach a log: botocore prints request
# and response bodies (the secret's JSON), headers with the session token, and presigned IAM
# tokens; aiosqlite prints SQL parameters (e-mails); urllib3 and s3transfer print request lines.
# They stay at WARNING whatever LOG_LEVEL says.
QUIET_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "aiosqlite", "aiomysql", "asyncpg")
# The gateway writes its own access line (gateway.access); these would repeat it, query string included.
_REPLACED_ACCESS_LOGS = ("aiohttp.access", "uvicorn.access")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per record; `extra={"fields": {...}}` adds keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        exchange = CURRENT.get()
        if exchange is not None:
            entry["request_id"] = exchange.request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(settings: Settings) -> None:
    """Log to stderr at LOG_LEVEL in LOG_FORMAT; hosts such as Vercel collect stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if settings.log_format == "json" else logging.Formatter(_TEXT_FORMAT))
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    level = logging.getLevelName(settings.log_level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
    for name in _REPLACED_ACCESS_LOGS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("gateway").debug(
        "LOG_LEVEL=DEBUG; %s log at WARNING only (below, they print secrets)", ", ".join(QUIET_LOGGERS)
    )
